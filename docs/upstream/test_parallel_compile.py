"""Test for ``parallel-compile.patch`` (PyTensor's ``tests/link/c/``).

The compiler now runs without the compile lock, so: a directory being compiled into is not
removed by another cache's clean-up, and a module that another cache registered meanwhile is
used and the one just compiled discarded. A function of many C nodes compiled into an empty
compile directory, by processes of their own (the directory is fixed when PyTensor is
imported): with several compile threads the compiler runs for several modules at once, the
function computes what it computes with one thread, and each module is in the cache once;
two processes compiling the same function into the same directory at the same time both
succeed and leave each module in the cache once.

Run against a patched PyTensor as ``docs/upstream/README.md`` says.
"""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import pytensor.tensor as pt
from pytensor.graph.fg import FunctionGraph
from pytensor.link.c.basic import CLinker
from pytensor.link.c.cmodule import ModuleCache, dlimport_workdir

# Compiles a function of eleven distinct C nodes (no rewrites, so none is fused away) and
# prints its values and the largest number of compiler calls that ran at once.
COMPILE_SCRIPT = """
import json, threading
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.link.c.cmodule import GCC_compiler

guard = threading.Lock()
running = [0, 0]  # now, most at once
compile_str = GCC_compiler.compile_str

def counting_compile_str(*args, **kwargs):
    with guard:
        running[0] += 1
        running[1] = max(running)
    try:
        return compile_str(*args, **kwargs)
    finally:
        with guard:
            running[0] -= 1

GCC_compiler.compile_str = staticmethod(counting_compile_str)
x = pt.dvector("x")
outputs = [op(x) for op in (pt.exp, pt.tanh, pt.sin, pt.cos, pt.log1p, pt.sqrt,
                            pt.arctan, pt.sigmoid)]
outputs += [x[1:], x[::2], x[:-1] * 3.0]
fn = pytensor.function([x], outputs, mode=Mode(linker="cvm", optimizer=None))
values = fn(np.linspace(0.1, 1.0, 7))
print(json.dumps({"most_at_once": running[1], "values": [v.tolist() for v in values]}))
"""


def _expected(x):
    return [np.exp(x), np.tanh(x), np.sin(x), np.cos(x), np.log1p(x), np.sqrt(x),
            np.arctan(x), 1 / (1 + np.exp(-x)), x[1:], x[::2], x[:-1] * 3.0]


def _start(compiledir, threads):
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"compiledir={compiledir},compile__threads={threads}"
    return subprocess.Popen([sys.executable, "-c", COMPILE_SCRIPT], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _registered_keys(compiledir):
    """The keys of every module directory; each such directory must hold a key."""
    keys = []
    for name in os.listdir(compiledir):
        path = os.path.join(compiledir, name)
        if name.startswith("tmp") and os.path.isdir(path):
            # a module compiled twice must not be left behind half-registered
            assert os.path.exists(os.path.join(path, "key.pkl")), os.listdir(path)
            with open(os.path.join(path, "key.pkl"), "rb") as f:
                keys.extend(pickle.load(f).keys)
    return keys


def _check_values(result):
    expected = _expected(np.linspace(0.1, 1.0, 7))
    assert len(result["values"]) == len(expected)
    for value, want in zip(result["values"], expected, strict=True):
        np.testing.assert_allclose(value, want, rtol=1e-12)


def test_refresh_keeps_a_directory_being_compiled_into(tmp_path):
    location = dlimport_workdir(tmp_path)
    ModuleCache(tmp_path).refresh(cleanup=True)
    assert os.path.isdir(location)


class _LinkerRacedByAnotherCache:
    """Compiles like ``linker``; meanwhile another cache compiles and registers the module."""

    def __init__(self, linker, key, other_cache):
        self.linker = linker
        self.key = key
        self.other_cache = other_cache
        self.other_module = None

    def get_src_code(self):
        return self.linker.get_src_code()

    def compile_cmodule(self, location):
        other_linker = CLinker().accept(self.linker.fgraph.clone())
        self.other_module = self.other_cache.module_from_key(self.key, other_linker)
        return self.linker.compile_cmodule(location)


def test_module_registered_meanwhile_is_used_and_own_discarded(tmp_path):
    x = pt.dvector("x")
    linker = CLinker().accept(FunctionGraph([x], [pt.exp(x) * 2.5 - x]))
    key = linker.cmodule_key()
    first, second = ModuleCache(tmp_path), ModuleCache(tmp_path)
    raced = _LinkerRacedByAnotherCache(linker, key, first)
    module = second.module_from_key(key, raced)
    assert raced.other_module is not None
    assert module.__file__ == raced.other_module.__file__
    # the module compiled second is gone, the first is in the cache once
    assert [name for name in os.listdir(tmp_path) if name.startswith("tmp")] == [
        os.path.basename(os.path.dirname(module.__file__))]
    assert _registered_keys(tmp_path) == [key]


@pytest.mark.slow
def test_threads_compile_at_once_with_the_same_result_and_cache(tmp_path):
    one = _finish(_start(tmp_path / "one", 1))
    several = _finish(_start(tmp_path / "several", 4))
    assert one["most_at_once"] == 1
    # the modules are compiled by a pool: more than one compiler at a time
    assert several["most_at_once"] > 1
    _check_values(one)
    assert several["values"] == one["values"]
    keys_one = _registered_keys(tmp_path / "one")
    keys_several = _registered_keys(tmp_path / "several")
    assert len(keys_one) >= 11
    # one cache entry per distinct key, the same entries as one thread leaves
    assert len(set(keys_several)) == len(keys_several) == len(keys_one)
    assert set(keys_several) == set(keys_one)


@pytest.mark.slow
def test_two_processes_compile_into_one_directory_at_once(tmp_path):
    reference = _finish(_start(tmp_path / "reference", 1))
    both = [_start(tmp_path / "shared", 2) for _ in range(2)]
    results = [_finish(process) for process in both]
    for result in results:
        assert result["values"] == reference["values"]
    keys = _registered_keys(tmp_path / "shared")
    assert len(set(keys)) == len(keys)
    assert set(keys) == set(_registered_keys(tmp_path / "reference"))
