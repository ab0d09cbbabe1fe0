"""utils.function_cache: a function loaded from the cache computes and updates as compiled."""
import os
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne.random import set_rng
from ntm.accel.modes import keep_storage
from utils import function_cache, training
from utils.function_cache import cached_function


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "functions"
    monkeypatch.setenv(function_cache.ENVIRONMENT_VARIABLE, str(directory))
    return directory


def regression(seed=0):
    """A least-squares step with a shared weight vector and its momentum."""
    rng = np.random.RandomState(seed)
    w = pytensor.shared(rng.normal(size=3), name="w")
    velocity = pytensor.shared(np.zeros(3), name="velocity")
    x, y = pt.matrix("x", dtype="float64"), pt.vector("y", dtype="float64")
    loss = pt.mean(pt.sqr(pt.dot(x, w) - y))
    new_velocity = 0.9 * velocity - 0.1 * pytensor.grad(loss, w)
    updates = [(velocity, new_velocity), (w, w + new_velocity)]
    return [x, y], loss, updates, [w, velocity]


def compile_regression(seed=0, key="regression", mode="FAST_COMPILE", **kwargs):
    inputs, loss, updates, shared = regression(seed)
    function, loaded = cached_function(inputs, loss, updates=updates, mode=mode, name="step",
                                       key=key, shared=shared, **kwargs)
    return function, loaded, shared


def batches():
    rng = np.random.RandomState(1)
    return [(rng.normal(size=(4, 3)), rng.normal(size=4)) for _ in range(3)]


def test_before_compiling_runs_only_when_compiling(cache_dir):
    calls = []
    _, loaded, _ = compile_regression(before_compiling=lambda: calls.append("compile"))
    assert not loaded and calls == ["compile"]
    _, loaded, _ = compile_regression(before_compiling=lambda: calls.append("load"))
    assert loaded and calls == ["compile"]


def test_second_compilation_is_loaded_and_updates_the_new_shared_variables(cache_dir):
    compiled, loaded, compiled_shared = compile_regression()
    assert not loaded
    assert len(list(cache_dir.iterdir())) == 1
    cached, loaded, cached_shared = compile_regression()
    assert loaded
    # the loaded function reads and writes this process's variables, not the pickled ones
    cached_shared[0].set_value(compiled_shared[0].get_value())
    for x, y in batches():
        assert cached(x, y) == compiled(x, y)
    for ours, theirs in zip(cached_shared, compiled_shared, strict=True):
        np.testing.assert_array_equal(ours.get_value(), theirs.get_value())
        assert not np.all(ours.get_value() == 0)


def test_another_key_or_mode_is_compiled_afresh(cache_dir):
    compile_regression(key="a")
    assert not compile_regression(key="b")[1]
    assert not compile_regression(key="a", mode="CVM")[1]
    assert compile_regression(key="a", mode="CVM")[1]
    assert len(list(cache_dir.iterdir())) == 3


def test_a_mode_object_is_keyed_by_its_settings_and_loaded_with_them(cache_dir):
    kept = keep_storage("CVM")
    assert not compile_regression(mode=kept)[1]
    function, loaded, _ = compile_regression(mode=keep_storage("CVM"))  # an equal new object
    assert loaded and function.maker.linker.allow_gc is False
    assert not compile_regression(mode="CVM")[1]  # the name: PyTensor's default settings


def test_unreadable_file_is_ignored_and_replaced(cache_dir):
    compile_regression()
    (path,) = cache_dir.iterdir()
    path.write_bytes(b"not a compiled function")
    with pytest.warns(UserWarning, match="ignoring the cached compiled function"):
        function, loaded, shared = compile_regression()
    assert not loaded
    x, y = batches()[0]
    assert np.isfinite(function(x, y))
    assert compile_regression()[1]


def test_off_and_unlisted_shared_variables_compile_without_a_file(cache_dir, monkeypatch):
    inputs, loss, updates, shared = regression()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_function(inputs, loss, updates=updates, name="step", key="k", shared=shared[:1])
    assert not cache_dir.exists()  # velocity was not listed: nothing to link it back to
    monkeypatch.setenv(function_cache.ENVIRONMENT_VARIABLE, "off")
    assert function_cache.default_cache_dir() is None
    assert not compile_regression()[1]
    assert not cache_dir.exists()


def test_only_the_most_recently_used_files_are_kept(cache_dir, monkeypatch):
    monkeypatch.setattr(function_cache, "MAX_FILES", 2)
    compile_regression(key="a")
    compile_regression(key="b")
    assert compile_regression(key="a")[1]  # used again: now the most recent
    compile_regression(key="c")            # a third file: the least recently used goes
    assert len(list(cache_dir.iterdir())) == 2
    assert compile_regression(key="a")[1] and compile_regression(key="c")[1]
    assert not compile_regression(key="b")[1]


def test_jit_backends_are_not_cached():
    assert function_cache.is_cacheable("CVM")
    assert function_cache.is_cacheable("FAST_COMPILE")
    assert not function_cache.is_cacheable("NUMBA")


def test_trainer_loaded_from_the_cache_trains_bitwise_like_a_compiled_one(cache_dir):
    """The NTM's training step in the default (C) mode, as the training loop caches it."""
    def trainer():
        set_rng(np.random.RandomState(5))
        model = training.build_ntm(4, 4, num_units=8, memory_shape=(6, 3))
        return training.Trainer(model, "graves_rmsprop", mode="CVM",
                                cache_key=["test model", 4, 4])

    first, second = trainer(), trainer()
    first.compile()
    second.compile()
    assert first.loaded == set() and second.loaded == {"train"}
    rng = np.random.RandomState(0)
    for _ in range(3):
        x = rng.randint(0, 2, (2, 5, 4)).astype(pytensor.config.floatX)
        mask = np.ones((2, 5), dtype=pytensor.config.floatX)
        assert first.train_step(x, x, mask) == second.train_step(x, x, mask)
    for ours, theirs in [(first.parameter_values(), second.parameter_values()),
                         (first.optimizer_values(), second.optimizer_values())]:
        assert list(ours) == list(theirs)
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    np.testing.assert_array_equal(first.predict(x), second.predict(x))
    assert second.loaded == {"train", "predict"}
    assert sorted(name.split("-")[0] for name in os.listdir(cache_dir)) == ["predict", "train"]
