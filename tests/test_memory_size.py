"""A trained model with another number of memory locations N (``--memory-shape N M`` with
``--load``, :func:`utils.training.load_model` with ``memory_shape``)."""
import os

import numpy as np
import pytest

from examples import copy_task
from ntm.lasagne import layers
from utils import training
from utils.generators import CopyTask

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY_MODEL = os.path.join(REPO, "models", "copy.npz")
TINY = ["--mode", "FAST_COMPILE", "--num-units", "8", "--size", "3", "--max-length", "3",
        "--batch-size", "2", "--validation-batches", "1", "--quiet"]


def _evaluate_copy(memory_size, length):
    result = copy_task.main(["--load", COPY_MODEL, "--iterations", "0", "--memory-shape",
                             str(memory_size), "20", "--eval-lengths", str(length),
                             "--batch-size", "4", "--eval-batches", "1", "--mode",
                             "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0 and result.model.memory_shape == (memory_size, 20)
    (row,) = result.evaluation
    assert row["sequences"] == 4
    return row


def test_the_copy_model_copies_as_many_vectors_as_its_memory_holds_less_one():
    # Trained with 128 locations on lengths 1-20. Its write head puts vector t at location
    # t + 1 while the read head waits on location 0: with N locations the N-th vector
    # overwrites location 0, so 32 locations hold a copy of 31 vectors, not of 40 (at chance:
    # about half of the 320 bits wrong); 48 locations copy 40 without a bit error.
    assert _evaluate_copy(32, 31)["errors_per_seq"] == 0
    assert _evaluate_copy(32, 40)["errors_per_seq"] > 80
    assert _evaluate_copy(48, 40)["errors_per_seq"] == 0


def test_load_model_builds_the_checkpoint_with_another_number_of_locations():
    params, _, info = training.load_checkpoint(COPY_MODEL)
    model, resized_info = training.load_model(COPY_MODEL, CopyTask(), memory_shape=(48, 20))
    assert model.memory_shape == (48, 20) and resized_info["config"]["memory_shape"] == [48, 20]
    assert info["config"]["memory_shape"] == [128, 20]  # the checkpoint's document is kept
    values = {param.name: param.get_value() for param in
              layers.get_all_params(model.l_output)}
    assert set(values) == set(params)
    # The constants that span the memory, at the new size: M_0 = 1e-6, w_0 = (1, 0, ..., 0).
    np.testing.assert_array_equal(values["memory.memory_init"],
                                  np.full((48, 20), 1e-6, dtype=np.float32))
    for head in ("read0", "write0"):
        np.testing.assert_array_equal(values[f"{head}.weights_init"], np.eye(48)[0])
    for name, value in params.items():
        if name not in ("memory.memory_init", "read0.weights_init", "write0.weights_init"):
            np.testing.assert_array_equal(values[name], value)
    with pytest.raises(ValueError, match="memory_shape: .*location size M .* is 20, got 10"):
        training.load_model(COPY_MODEL, CopyTask(), memory_shape=(48, 10))


def test_a_model_whose_parameters_depend_on_n_refuses_another_n(tmp_path, capsys):
    learned = str(tmp_path / "learned.npz")
    trained = copy_task.main(TINY + ["--memory-shape", "8", "4", "--learn-memory-init",
                                     "--iterations", "1", "--save", learned])
    assert trained.exit_code == 0
    with pytest.raises(SystemExit) as stop:
        copy_task.main(TINY + ["--load", learned, "--iterations", "0", "--memory-shape", "16",
                               "4"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith("error: --memory-shape 16 4: --load " + learned + ": the model's "
                          "parameters depend on the number of memory locations N (8): "
                          "memory.memory_init (learned, 8 x 4); only a model whose initial "
                          "memory and weightings are constants (--no-learn-memory-init) runs "
                          "with another N")
    with pytest.raises(ValueError, match=r"memory.memory_init \(learned, 8 x 4\)"):
        training.load_model(learned, CopyTask(size=3), memory_shape=(16, 4))

    fixed = str(tmp_path / "fixed.npz")
    copy_task.main(TINY + ["--memory-shape", "8", "4", "--no-learn-memory-init",
                           "--iterations", "1", "--save", fixed])
    resized = copy_task.main(TINY + ["--load", fixed, "--iterations", "0", "--memory-shape", "16",
                                     "4", "--eval-lengths", "12", "--eval-batches", "1"])
    assert resized.exit_code == 0 and resized.model.memory_shape == (16, 4)
    for option in (["--memory-shape", "16", "5"], ):
        with pytest.raises(SystemExit):
            copy_task.main(TINY + ["--load", fixed, "--iterations", "0"] + option)
        assert "location size M" in capsys.readouterr().err
    # A resumed run goes on with the memory it was trained with.
    with pytest.raises(SystemExit):
        copy_task.main(TINY + ["--resume", fixed, "--iterations", "2", "--memory-shape", "16",
                               "4"])
    assert "--memory-shape 16 4 (checkpoint: 8 4)" in capsys.readouterr().err
    # A constant that spans the memory but no longer holds its initial value is refused too.
    with np.load(fixed) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["params/read0.weights_init"] = np.roll(arrays["params/read0.weights_init"], 1)
    np.savez(fixed, **arrays)
    with pytest.raises(SystemExit):
        copy_task.main(TINY + ["--load", fixed, "--iterations", "0", "--memory-shape", "16",
                               "4"])
    assert "read0.weights_init (8, not its initial value)" in capsys.readouterr().err
