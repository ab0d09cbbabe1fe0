"""Tests of the example scripts and of the training package they share (utils/training/).

Scripts run in-process through ``main(argv)`` on tiny models, and the module keeps the compiled
models between runs (``training.reuse_compiled_models``), since compiling the NTM's training
function costs about the same for a tiny model as for a large one. One test runs a script as a
command in a subprocess.
"""
import csv
import json
import os
import shlex
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from examples import (
    associative_recall_task,
    babi_task,
    copy_task,
    dyck_words_task,
    dynamic_ngrams_task,
    priority_sort_task,
    repeat_copy_task,
    reversed_copy_task,
    sort_task,
    upside_down_copy_task,
)
from ntm.lasagne import layers
from utils import training
from utils.training import checkpoints

from tests.nan_steps import poison_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

MODEL = ["--mode", "FAST_COMPILE", "--memory-shape", "8", "4", "--num-units", "8"]
RUN = ["--batch-size", "2", "--log-every", "1", "--validate-every", "2",
       "--validation-batches", "2", "--eval-batches", "2"]

# script -> (tiny task options, --eval-lengths, --plot-params); the sizes are chosen so that
# tasks share networks of the same shape, compiled once: copy-like and repeat copy (4 inputs, 3
# outputs); associative recall (4 inputs, 2 outputs) and priority sort, whose heads are its own.
SCRIPTS = {
    "copy": (copy_task, ["--size", "3", "--max-length", "3"], "2,4", "length=3"),
    "reversed_copy": (reversed_copy_task, ["--size", "3", "--max-length", "3"], "2,4", "length=3"),
    "upside_down_copy": (upside_down_copy_task, ["--size", "3", "--max-length", "3"], "2,4",
                         "length=3"),
    "sort": (sort_task, ["--size", "3", "--max-length", "3"], "2,4", "length=3"),
    "repeat_copy": (repeat_copy_task, ["--size", "2", "--max-length", "2", "--max-repeats", "2"],
                    "1,3", "length=2,repeats=2"),
    "associative_recall": (associative_recall_task,
                           ["--size", "2", "--item-length", "1", "--max-items", "3"], "2,4",
                           "num_items=3"),
    "priority_sort": (priority_sort_task, ["--size", "2", "--num-items", "4", "--num-sorted", "3"],
                      "3,5", "num_items=4"),
    "dynamic_ngrams": (dynamic_ngrams_task, ["--n", "3", "--length", "8"], "8,12", "length=8"),
    "dyck_words": (dyck_words_task, ["--max-pairs", "3"], "2,4", "num_pairs=3"),
    "babi": (babi_task, ["--max-sentences", "3"], "2,4", "num_sentences=3"),
}
SHARED_OPTIONS = ["--iterations", "--batch-size", "--seed", "--optimizer", "--learning-rate",
                  "--learning-rate-schedule",
                  "--max-norm", "--grad-clip", "--clip-spikes", "--focus-penalty",
                  "--focus-penalty-after", "--controller", "--num-units",
                  "--num-reads", "--num-writes", "--memory-shape", "--num-shifts",
                  "--learn-memory-init", "--model", "--save", "--load", "--resume", "--checkpoint-every", "--validate-every",
                  "--validation-batches", "--plot", "--plot-params", "--eval-lengths",
                  "--eval-batches", "--log", "--mode", "--quiet", "--keep-best",
                  "--average-after", "--overwrite", "--kernel-threads"]
COPY_TASK = SCRIPTS["copy"][1]


@pytest.fixture(scope="module", autouse=True)
def reuse_models():
    training.reuse_compiled_models(True)
    yield
    training.reuse_compiled_models(False)


def copy_args(*extra, iterations=3):
    return MODEL + COPY_TASK + RUN + ["--iterations", str(iterations), "--quiet"] + list(extra)


def read_checkpoint(path):
    """A checkpoint's arrays and document, read by :mod:`utils.training.checkpoints`; its readable copy
    ``PATH.json`` must be the document."""
    arrays, info = checkpoints.read_checkpoint(path)
    with open(path[:-4] + ".json", encoding="utf-8") as stream:
        assert json.load(stream) == info
    return arrays, info


def rewrite_document(path, info):
    """Replace a checkpoint's document (e.g. to make it look older)."""
    arrays, _ = checkpoints.read_checkpoint(path)
    checkpoints.write_checkpoint(path, arrays, info)


def assert_png(path):
    with open(path, "rb") as stream:
        assert stream.read(8) == PNG_SIGNATURE, path


def fixed_inputs():
    x, _, _ = copy_task.CopyTask(size=3, min_length=3, max_length=3, batch_size=2,
                                 seed=123).sample_with_mask()
    return x


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    """Three iterations of the copy task with every output, and what they left."""
    directory = tmp_path_factory.mktemp("copy")
    paths = {name: str(directory / name) for name in ("run.npz", "run.png", "run.csv")}
    result = copy_task.main(copy_args("--save", paths["run.npz"], "--plot", paths["run.png"],
                                      "--log", paths["run.csv"], "--eval-lengths", "2,4"))
    # The trainer is reused by later runs, so keep what it gives now.
    return {"result": result, "paths": paths, "directory": directory,
            "predictions": result.trainer.predict(fixed_inputs()),
            "checkpoint": read_checkpoint(paths["run.npz"])}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_lists_the_shared_options(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        SCRIPTS[name][0].main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in SHARED_OPTIONS:
        assert option in text, f"{name}: {option} missing from --help"
    assert "--debug-nan-at" not in text
    assert "-curve" in text  # where the learning curve goes
    # The learning rate's help names the script's own default, where it has one.
    rate = SCRIPTS[name][0].make_parser().get_default("learning_rate")
    flat = " ".join(text.split())
    assert ("this script's default: " + str(rate) in flat) == (rate is not None), flat


@pytest.mark.parametrize("extra, option", [
    (["--min-length", "5", "--max-length", "2"], "--min-length"),
    (["--memory-shape", "0", "4"], "--memory-shape"),
    (["--optimizer", "sgd"], "--optimizer"),
    (["--num-shifts", "2"], "--num-shifts"),
    (["--batch-size", "0"], "--batch-size"),
    (["--learning-rate", "-1"], "--learning-rate"),
    (["--clip-spikes", "-1"], "--clip-spikes"),
    (["--focus-penalty", "-0.1"], "--focus-penalty"),
    (["--focus-penalty-after", "-1"], "--focus-penalty-after"),
    (["--focus-penalty", "0", "--focus-penalty-after", "5"], "--focus-penalty-after"),
    (["--eval-lengths", "0,2"], "--eval-lengths"),
    (["--plot-params", "colour=3"], "--plot-params"),
    (["--log", "run.txt"], "--log"),
    (["--save", "run.pkl"], "--save"),
    (["--load", "no-such-checkpoint.npz"], "--load"),
    (["--mode", "NO_SUCH_MODE"], "--mode"),
    (["--kernel-threads", "0"], "--kernel-threads"),
    (["--kernel-threads", "many"], "--kernel-threads"),
    (["--mode", "JAX"], "--mode"),  # PyTensor 3.0.7's JAX backend cannot run a scan of these
])
def test_bad_options_fail_early_naming_the_option(extra, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        copy_task.main(copy_args(*extra))
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_bad_episode_values_are_checked_before_training(capsys):
    with pytest.raises(SystemExit):
        dynamic_ngrams_task.main(MODEL + ["--n", "3", "--length", "8", "--eval-lengths", "2"])
    assert "--eval-lengths" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Every script end to end
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_runs_end_to_end(name, tmp_path, capsys):
    module, task_options, eval_lengths, plot_params = SCRIPTS[name]
    log = str(tmp_path / ("log.jsonl" if name in ("babi", "dyck_words", "sort") else "log.csv"))
    save, plot = str(tmp_path / "model.npz"), str(tmp_path / "episode.png")
    result = module.main(MODEL + task_options + RUN + [
        "--iterations", "3", "--save", save, "--plot", plot, "--plot-params", plot_params,
        "--log", log, "--eval-lengths", eval_lengths])
    out = capsys.readouterr().out
    assert result.exit_code == 0 and result.iteration == 3

    arrays, info = read_checkpoint(save)
    assert info["iteration"] == 3 and int(arrays["iteration"]) == 3
    assert info["config"]["num_units"] == 8 and info["config"]["memory_shape"] == [8, 4]
    assert set(info["task_state"]) == {"bit_generator", "num_iter"}
    assert len(info["history"]) == 3 and info["command_line"]
    params = [key for key in arrays if key.startswith("params/")]
    state = [key for key in arrays if key.startswith("optimizer/")]
    # Associative recall, bAbI and dynamic n-grams train with Adam by default, the other tasks
    # with Graves' RMSProp.
    optimizer = ("adam" if name in ("associative_recall", "babi", "dynamic_ngrams")
                 else "graves_rmsprop")
    assert result.config.optimizer == optimizer and info["config"]["optimizer"] == optimizer
    prefix = optimizer.split("_")[0] + "_"
    assert params and state
    # Only the copy task clips gradient spikes by default; their state is the optimizer's too.
    spikes = sorted(key for key in state if key.startswith("optimizer/clip_spikes."))
    assert spikes == (["optimizer/clip_spikes.grad_norm_average", "optimizer/clip_spikes.steps"]
                      if name == "copy" else [])
    assert all(key.rsplit("/", 1)[-1].split(".")[-1].startswith(prefix)
               for key in state if key not in spikes)
    assert all(np.all(np.isfinite(arrays[key])) for key in params + state)

    assert_png(plot)
    assert_png(training.curve_path(plot))
    if log.endswith(".csv"):
        with open(log, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        assert tuple(rows[0]) == training.LOG_COLUMNS
        missing = ""
    else:
        with open(log, encoding="utf-8") as stream:
            rows = [json.loads(line) for line in stream]
        missing = None
    assert [int(row["iteration"]) for row in rows] == [1, 2, 3]
    # validated every 2 iterations and at the end
    assert rows[0]["val_bits_per_seq"] == missing
    assert all(float(row["val_bits_per_seq"]) > 0 for row in rows[1:])
    assert all(float(row["loss"]) > 0 for row in rows)
    # --log-every 1: each row's largest gradient norm is that step's
    assert all(0 < float(row["grad_norm_max"]) < np.inf for row in rows)

    values = [int(value) for value in eval_lengths.split(",")]
    assert [row["value"] for row in result.evaluation] == values
    assert all(row["sequences"] == 4 and 0 <= row["perfect"] <= 1 for row in result.evaluation)
    assert "bits/seq" in out and "perfect" in out
    if name == "dynamic_ngrams":
        assert all(row["reference_bits_per_seq"] > 0 for row in result.evaluation)
        assert "reference bits/seq" in out


# --------------------------------------------------------------------------------------------
# Checkpoints: load, resume, configuration checks
# --------------------------------------------------------------------------------------------

def test_checkpoint_holds_parameters_and_optimizer_state(copy_run):
    arrays, info = copy_run["checkpoint"]
    trainer = copy_run["result"].trainer
    assert {f"params/{p.name}" for p in trainer.all_params} <= set(arrays)
    assert {f"optimizer/controller.W_in_to_hid.graves_{name}" for name in ("n", "g", "delta")} \
        <= set(arrays)
    assert info["config"]["optimizer"] == "graves_rmsprop" and info["iteration"] == 3
    assert info["task_state"]["bit_generator"]["bit_generator"] == "PCG64"
    leftovers = [name for name in os.listdir(copy_run["directory"]) if name.startswith(".tmp")]
    assert leftovers == []


def test_load_reproduces_the_predictions(copy_run):
    # Model options are taken from the checkpoint when the command line leaves them out.
    result = copy_task.main(["--load", copy_run["paths"]["run.npz"], "--iterations", "0",
                             "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0
    assert result.config.num_units == 8 and result.config.memory_shape == [8, 4]
    np.testing.assert_array_equal(result.trainer.predict(fixed_inputs()), copy_run["predictions"])


def test_resume_continues_bitwise(copy_run, tmp_path):
    uninterrupted = str(tmp_path / "six.npz")
    copy_task.main(copy_args("--save", uninterrupted, iterations=6))
    resumed = str(tmp_path / "resumed.npz")
    result = copy_task.main(["--resume", copy_run["paths"]["run.npz"], "--iterations", "6",
                             "--save", resumed, "--log", str(tmp_path / "resumed.csv"),
                             "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0
    expected, expected_info = read_checkpoint(uninterrupted)
    actual, actual_info = read_checkpoint(resumed)
    assert sorted(expected) == sorted(actual)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    assert actual_info["task_state"] == expected_info["task_state"]
    assert [row["iteration"] for row in actual_info["history"]] == [1, 2, 3, 4, 5, 6]


def test_load_refuses_a_checkpoint_of_another_model(copy_run, capsys):
    path = copy_run["paths"]["run.npz"]
    with pytest.raises(SystemExit):
        copy_task.main(["--load", path, "--num-units", "16", "--size", "4", "--iterations", "0"])
    err = capsys.readouterr().err
    assert "--num-units 16 (checkpoint: 8)" in err and "--size 4 (checkpoint: 3)" in err
    with pytest.raises(SystemExit):
        copy_task.main(["--resume", path, "--optimizer", "adam"])
    assert "--optimizer adam (checkpoint: graves_rmsprop)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        repeat_copy_task.main(["--load", path, "--iterations", "0"])
    assert "does not match" in capsys.readouterr().err


def test_load_takes_the_count_encoding_of_a_repeat_copy_checkpoint(tmp_path, capsys):
    """A model reads its count one way: --load takes --unary from the checkpoint (the
    evaluation then encodes the count as in training) and refuses the other encoding."""
    path = str(tmp_path / "unary.npz")
    options = MODEL + SCRIPTS["repeat_copy"][1] + ["--batch-size", "2", "--quiet"]
    trained = repeat_copy_task.main(options + ["--unary", "--iterations", "1", "--save", path])
    assert trained.exit_code == 0 and trained.config.unary
    loaded = repeat_copy_task.main(options + ["--load", path, "--iterations", "0"])
    assert loaded.exit_code == 0 and loaded.config.unary is True
    with pytest.raises(SystemExit):
        repeat_copy_task.main(options + ["--load", path, "--no-unary", "--iterations", "0"])
    assert "(checkpoint: True)" in capsys.readouterr().err


def test_babi_trains_a_sentence_per_step_and_keeps_the_encoding_of_its_checkpoint(tmp_path,
                                                                                   capsys):
    path = str(tmp_path / "sentences.npz")
    options = MODEL + SCRIPTS["babi"][1] + ["--batch-size", "2", "--quiet"]
    trained = babi_task.main(options + ["--encoding", "sentences", "--iterations", "2", "--save",
                                        path, "--eval-lengths", "3", "--eval-batches", "1"])
    assert trained.exit_code == 0 and trained.config.encoding == "sentences"
    # Two statements, a question and its answer step, the third statement, the last question
    # and its answer step (a question after every two statements, and after the last): seven
    # steps, not the words' ~30.
    x, _, mask = babi_task.make_task(trained.config, batch_size=2, seed=0).sample_with_mask(
        num_sentences=3)
    assert x.shape[1] == 7 and mask.tolist() == [[0, 0, 0, 1, 0, 0, 1]] * 2
    loaded = babi_task.main(options + ["--load", path, "--iterations", "0"])
    assert loaded.exit_code == 0 and loaded.config.encoding == "sentences"
    # A loaded model is evaluated on the task it learned unless another is named.
    task_2 = str(tmp_path / "task2.npz")
    babi_task.main(options + ["--task-id", "2", "--iterations", "1", "--save", task_2])
    assert babi_task.main(options + ["--load", task_2, "--iterations", "0"]).config.task_id == 2
    assert babi_task.main(options + ["--load", task_2, "--task-id", "1", "--iterations",
                                     "0"]).config.task_id == 1
    with pytest.raises(SystemExit):
        babi_task.main(options + ["--load", path, "--encoding", "words", "--iterations", "0"])
    assert "--encoding words (checkpoint: sentences)" in capsys.readouterr().err
    # A checkpoint from before --encoding existed was trained a word per step.
    words = str(tmp_path / "words.npz")
    babi_task.main(options + ["--encoding", "words", "--iterations", "1", "--save", words])
    _, info = read_checkpoint(words)
    del info["config"]["encoding"]
    rewrite_document(words, info)
    assert babi_task.main(options + ["--load", words, "--iterations", "0"]).config.encoding \
        == "words"


def test_resume_refuses_fewer_iterations_than_done(copy_run, capsys):
    with pytest.raises(SystemExit):
        copy_task.main(["--resume", copy_run["paths"]["run.npz"], "--iterations", "2"])
    assert "--iterations" in capsys.readouterr().err


def test_torn_checkpoint_is_detected(copy_run, tmp_path):
    # A pair of the two-file format of version 1, torn between its writes.
    arrays, info = copy_run["checkpoint"]
    path = str(tmp_path / "torn.npz")
    np.savez(path, **dict(arrays, iteration=np.asarray(2)))
    with open(path[:-4] + ".json", "w", encoding="utf-8") as stream:
        json.dump(dict(info, version=1), stream)
    with pytest.raises(ValueError, match="different iterations"):
        training.load_checkpoint(path)


# --------------------------------------------------------------------------------------------
# Non-finite steps
# --------------------------------------------------------------------------------------------

@pytest.fixture
def nan_at():
    """``nan_at(step)``: the ``step``-th training step of the test gets NaN inputs."""
    undo = []
    yield lambda step: undo.append(poison_step(step))
    for restore in undo:
        restore()


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(copy_run, tmp_path, capsys,
                                                               nan_at):
    path = str(tmp_path / "nan.npz")
    nan_at(4)
    result = copy_task.main(copy_args("--save", path, iterations=6))
    err = capsys.readouterr().err
    assert result.exit_code != 0 and result.iteration == 3
    assert "stopped at iteration 4" in err and "after iteration 3" in err and path in err
    arrays, info = read_checkpoint(path)
    assert info["iteration"] == 3
    expected, expected_info = copy_run["checkpoint"]
    assert sorted(arrays) == sorted(expected)
    for key in expected:
        assert np.all(np.isfinite(arrays[key]))
        np.testing.assert_array_equal(arrays[key], expected[key], err_msg=key)
    assert info["task_state"] == expected_info["task_state"]
    reloaded = copy_task.main(["--load", path, "--iterations", "0", "--mode", "FAST_COMPILE",
                               "--quiet"])
    np.testing.assert_array_equal(reloaded.trainer.predict(fixed_inputs()),
                                  copy_run["predictions"])


def test_command_line_exits_non_zero_on_nan(tmp_path):
    # The one run in a subprocess: the script as a command, its exit status and message.
    path = str(tmp_path / "nan.npz")
    command = [sys.executable, "-m", "tests.nan_steps", "2",
               os.path.join("examples", "copy_task.py")] + copy_args(
        "--save", path, "--optimizer", "adam", iterations=3)
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 1, process.stderr
    assert "stopped at iteration 2" in process.stderr
    arrays, info = read_checkpoint(path)
    assert info["iteration"] == 1 and all(np.all(np.isfinite(a)) for a in arrays.values())
    assert int(arrays["optimizer/adam_t"]) == 1  # the failed step did not count


# --------------------------------------------------------------------------------------------
# LSTM baseline
# --------------------------------------------------------------------------------------------

def test_memory_init_is_trained_unless_asked_not_to():
    def trainable(*argv):
        config, _ = training.parse_config(copy_task.make_parser(), list(argv) + MODEL)
        model = training.build_model(config, SimpleNamespace(input_size=4, output_size=3))
        params = layers.get_all_params(model.l_output, trainable=True)
        return model, [param.name for param in params]

    fixed, fixed_names = trainable("--no-learn-memory-init")
    learned, learned_names = trainable()
    assert "memory.memory_init" not in fixed_names and "memory.memory_init" in learned_names
    N, M = fixed.memory_shape
    assert learned.num_params - fixed.num_params == N * M


def test_lstm_units_for_matches_the_parameter_count():
    for params, inputs, outputs in [(391, 4, 3), (62_000, 9, 8), (10, 2, 1)]:
        units = training.lstm_units_for(params, inputs, outputs)
        counts = {u: 4 * u * u + (4 * inputs + 7 + outputs) * u + outputs
                  for u in range(1, units + 3)}
        assert units == min(counts, key=lambda u: abs(counts[u] - params))


def test_lstm_baseline_trains_with_about_the_ntm_parameter_count(tmp_path, capsys):
    plot = str(tmp_path / "lstm.png")
    result = copy_task.main(MODEL + COPY_TASK + RUN + [
        "--model", "lstm", "--optimizer", "rmsprop", "--iterations", "2", "--plot", plot,
        "--eval-lengths", "2"])
    out = capsys.readouterr().out
    model = result.model
    assert model.l_ntm is None and "LSTM baseline" in out
    assert f"{model.num_params:,} parameters" in out and f"{model.ntm_params:,} parameters" in out
    assert abs(model.num_params - model.ntm_params) <= 0.1 * model.ntm_params
    assert result.exit_code == 0 and result.iteration == 2
    assert result.trainer.optimizer_state[0].name.endswith(".rmsprop_accu")
    assert_png(plot)
    assert_png(training.curve_path(plot))


def test_stop_below_ends_training_at_the_first_validation_under_the_threshold(tmp_path, capsys):
    log = str(tmp_path / "log.csv")
    # Any finite cost is below 1e9 bits, so training stops at the first validation (iteration 2).
    result = copy_task.main(copy_args("--stop-below", "1e9", "--log", log, iterations=6))
    assert result.exit_code == 0 and result.iteration == 2
    with open(log) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["iteration"]) for row in rows] == [1, 2]
    assert float(rows[-1]["val_bits_per_seq"]) < 1e9
    # Stopped before the copy task's focus penalty turns on, the run says so.
    capsys.readouterr()
    copy_task.main(MODEL + COPY_TASK + RUN + ["--iterations", "1600", "--stop-below", "1e9"])
    assert "before the focus penalty turns on after iteration 1500" in capsys.readouterr().out
    # And it is an option like the others: a bad value fails early, naming it.
    with pytest.raises(SystemExit):
        copy_task.main(copy_args("--stop-below", "-1"))
    assert "--stop-below" in capsys.readouterr().err


# A rate at which the tiny copy model's validation cost first falls, then rises far above it
# (8.3, 7.2, 7.6, 7.9, 17, 34 bits per sequence): its best validation is not its last.
UNSTABLE = ["--keep-best", "--validate-every", "1", "--learning-rate", "0.1"]


def parameters_after(*args, iterations):
    result = copy_task.main(copy_args(*args, iterations=iterations))
    assert result.exit_code == 0
    return result, result.trainer.parameter_values()


def test_keep_best_ends_with_the_best_validations_parameters_and_saves_them(tmp_path):
    path = str(tmp_path / "run.npz")
    result, kept = parameters_after(*UNSTABLE, "--save", path, "--eval-lengths", "2,4",
                                    iterations=6)
    costs = [row["val_bits_per_seq"] for row in result.history]
    best = int(np.argmin(costs)) + 1
    assert best < 6 and costs[-1] > costs[best - 1]  # the test means something
    assert result.best == {"iteration": best, "val_bits_per_seq": costs[best - 1],
                           "val_errors_per_seq": result.history[best - 1]["val_errors_per_seq"]}
    # The same run stopped at the best iteration has these parameters, bit for bit.
    _, expected = parameters_after("--learning-rate", "0.1", iterations=best)
    assert sorted(kept) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(kept[name], expected[name], err_msg=name)
    # PATH.npz keeps the last iteration (for --resume) and the best parameters beside it;
    # PATH-best.npz is a checkpoint of the best iteration.
    last, last_info = read_checkpoint(path)
    best_arrays, best_info = read_checkpoint(training.best_checkpoint_path(path))
    assert last_info["iteration"] == 6 and best_info["iteration"] == best
    assert last_info["best"] == result.best
    stored = training.load_best_parameters(path)
    for name in expected:
        np.testing.assert_array_equal(best_arrays[f"params/{name}"], expected[name])
        np.testing.assert_array_equal(stored[name], expected[name])
    assert any(not np.array_equal(last[f"params/{name}"], expected[name]) for name in expected)
    # The evaluation was of the best parameters: loading them gives the same table.
    loaded = copy_task.main(["--load", training.best_checkpoint_path(path), "--iterations", "0",
                             "--eval-lengths", "2,4", "--eval-batches", "2", "--batch-size",
                             "2", "--mode", "FAST_COMPILE", "--quiet"])
    assert loaded.evaluation == result.evaluation


def test_keep_best_survives_a_resume(tmp_path):
    _, straight = parameters_after(*UNSTABLE, iterations=6)
    first = str(tmp_path / "first.npz")
    parameters_after(*UNSTABLE, "--save", first, iterations=3)
    moved = str(tmp_path / "moved.npz")
    result = copy_task.main(["--resume", first, "--iterations", "6", "--save", moved,
                             "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0 and result.config.keep_best
    resumed = result.trainer.parameter_values()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    # The best (iteration 2) came before the resume: its checkpoint moved with --save.
    assert result.best["iteration"] == 2
    _, info = read_checkpoint(training.best_checkpoint_path(moved))
    assert info["iteration"] == 2


def test_keep_best_takes_the_best_of_the_validations_with_the_runs_last_objective(
        tmp_path, capsys):
    # Its best validation overall is iteration 2, before the focus penalty turns on.
    path = str(tmp_path / "run.npz")
    result = copy_task.main(copy_args(*UNSTABLE, "--save", path, "--focus-penalty", "0.5",
                                      "--focus-penalty-after", "3", iterations=6))
    assert result.exit_code == 0
    costs = [row["val_bits_per_seq"] for row in result.history]
    assert int(np.argmin(costs)) + 1 <= 3  # the test means something
    penalised = [row for row in result.history if "focus_penalty" in row]
    assert [row["iteration"] for row in penalised] == [4, 5, 6]
    best = min(penalised, key=lambda row: row["val_bits_per_seq"])
    assert result.best["iteration"] == best["iteration"]
    assert read_checkpoint(training.best_checkpoint_path(path))[1]["iteration"] == \
        best["iteration"]
    # Resumed with the penalty turned on, the checkpoint's best (trained without it) is left.
    plain = str(tmp_path / "plain.npz")
    parameters_after(*UNSTABLE, "--save", plain, "--focus-penalty", "0", iterations=3)
    assert read_checkpoint(plain)[1]["best"]["iteration"] == 2
    capsys.readouterr()
    resumed = copy_task.main(["--resume", plain, "--focus-penalty", "0.5",
                              "--focus-penalty-after", "0", "--iterations", "6",
                              "--mode", "FAST_COMPILE"])
    assert resumed.exit_code == 0 and resumed.best["iteration"] >= 4
    assert "the checkpoint's best (iteration 2) was trained without the focus penalty, this " \
        "run ends with the focus penalty at 0.5" in capsys.readouterr().out


def test_without_keep_best_the_run_ends_with_its_last_parameters():
    result, last = parameters_after("--validate-every", "1", "--learning-rate", "0.1",
                                    iterations=6)
    assert result.best is None
    _, kept = parameters_after(*UNSTABLE, iterations=6)
    assert any(not np.array_equal(last[name], kept[name]) for name in last)


def test_functions_compiled_after_a_run_use_the_runs_float_type():
    from utils.generators import CopyTask

    result = copy_task.main(copy_args(iterations=1))
    assert result.config.floatX == "float32"
    x, _ = CopyTask(size=3, batch_size=2, seed=0, dtype="float32").sample(length=3)
    # Compiled here, after run() returned, outside its float32 context.
    memory, hidden, state, write_weights, read_weights = result.trainer.details(x)
    assert memory.dtype == np.float32 and memory.shape == (2, x.shape[1], 8, 4)
    assert write_weights.shape == read_weights.shape == (2, x.shape[1], 1, 8)
    np.testing.assert_allclose(read_weights.sum(axis=-1), 1.0, rtol=1e-5)


def test_resume_keeps_the_runs_float_type_and_log(tmp_path):
    path, log = str(tmp_path / "run.npz"), str(tmp_path / "run.csv")
    copy_task.main(copy_args("--save", path, "--log", log, "--floatX", "float64", iterations=2))
    result = copy_task.main(["--resume", path, "--iterations", "4", "--quiet"])
    assert result.exit_code == 0 and result.config.floatX == "float64"
    assert all(value.dtype == np.float64
               for value in result.trainer.parameter_values().values())
    with open(log) as handle:
        assert [int(row["iteration"]) for row in csv.DictReader(handle)] == [1, 2, 3, 4]


def test_a_resumed_run_appends_to_a_log_of_fewer_columns_in_its_columns(tmp_path):
    path, log = str(tmp_path / "run.npz"), str(tmp_path / "run.csv")
    copy_task.main(copy_args("--save", path, "--log", log, iterations=2))
    with open(log, newline="") as handle:
        rows = list(csv.reader(handle))
    older = [row[:-1] for row in rows]  # a log written before grad_norm_max was a column
    with open(log, "w", newline="") as handle:
        csv.writer(handle).writerows(older)
    copy_task.main(["--resume", path, "--iterations", "3", "--quiet"])
    with open(log, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(training.LOG_COLUMNS[:-1])
    assert [len(row) for row in rows] == [len(rows[0])] * 4
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]


def test_resume_keeps_learn_memory_init(tmp_path):
    path = str(tmp_path / "run.npz")
    copy_task.main(copy_args("--save", path, "--no-learn-memory-init", iterations=2))
    with open(training.checkpoint_paths(path)[1]) as handle:
        assert json.load(handle)["config"]["learn_memory_init"] is False
    result = copy_task.main(["--resume", path, "--iterations", "3", "--quiet"])
    assert result.exit_code == 0 and not result.config.learn_memory_init
    assert "memory.memory_init" not in [param.name for param in result.trainer.params]
    assert result.iteration == 3


def test_checkpoints_record_every_run_that_trained_them(copy_run, tmp_path):
    first = copy_run["paths"]["run.npz"]
    _, info = read_checkpoint(first)
    assert len(info["runs"]) == 1
    assert info["runs"][0]["first_iteration"] == 0 and info["runs"][0]["last_iteration"] == 3
    assert info["runs"][0]["started_from"] is None
    assert info["runs"][0]["command_line"] == info["command_line"]

    resumed = str(tmp_path / "resumed.npz")
    copy_task.main(["--resume", first, "--iterations", "5", "--save", resumed,
                    "--log", str(tmp_path / "resumed.csv"), "--mode", "FAST_COMPILE", "--quiet"])
    loaded = str(tmp_path / "loaded.npz")
    copy_task.main(["--load", resumed, "--iterations", "2", "--save", loaded,
                    "--mode", "FAST_COMPILE", "--quiet"])
    _, info = read_checkpoint(loaded)
    runs = info["runs"]
    assert [(run["first_iteration"], run["last_iteration"]) for run in runs] == \
        [(0, 3), (3, 5), (0, 2)]
    assert [run["started_from"] for run in runs] == [None, first, resumed]
    assert "--resume" in runs[1]["command_line"] and "--load" in runs[2]["command_line"]
    assert all(run["mode"] == "FAST_COMPILE" for run in runs)
    assert info["command_line"] == runs[-1]["command_line"] and info["iteration"] == 2


def test_a_checkpoint_without_runs_counts_its_last_command_as_one():
    # Checkpoints written before runs were recorded hold only their last command line.
    legacy = {"iteration": 6000, "command_line": "copy_task.py --iterations 6000"}
    assert training.migrations.runs_of(legacy) == [
        {"command_line": "copy_task.py --iterations 6000", "last_iteration": 6000}]
    assert training.migrations.runs_of({"iteration": 3}) == []
    recorded = {"iteration": 3, "command_line": "b", "runs": [{"command_line": "a"}]}
    runs = training.migrations.runs_of(recorded)
    assert runs == [{"command_line": "a"}] and runs[0] is not recorded["runs"][0]


# --------------------------------------------------------------------------------------------
# --clip-spikes
# --------------------------------------------------------------------------------------------

def _spike_trainer(spike_factor, seed=5):
    """A tiny NTM's trainer (Adam, no norm clipping) with the given spike clipping."""
    from ntm.lasagne import random as lasagne_random

    previous = lasagne_random.get_rng()
    lasagne_random.set_rng(np.random.RandomState(seed))
    try:
        model = training.build_ntm(4, 3, num_units=8, memory_shape=(8, 4))
    finally:
        lasagne_random.set_rng(previous)
    return training.Trainer(model, "adam", 1e-2, max_norm=0, mode="FAST_COMPILE",
                            spike_factor=spike_factor)


def _spike_batches():
    from utils.generators import CopyTask

    task = CopyTask(size=3, max_length=3, batch_size=2, seed=11)
    return [task.sample_with_mask(length=3) for _ in range(4)]


def test_clip_spikes_rescales_to_a_multiple_of_the_running_average():
    import pytensor

    with pytensor.config.change_flags(floatX="float64"):
        trainer = _spike_trainer(0.02)  # far below 1: the later steps are rescaled
        state = {var.name: var for var in trainer.optimizer_state}
        average, steps, rescaled = 0.0, 0, 0
        previous_m = None
        for x, y, mask in _spike_batches():
            raw = trainer.train_step(x, y, mask).grad_norm
            limit = 0.02 * average / (1 - 0.99 ** max(steps, 1))
            kept = limit if steps > 0 and raw > limit else raw
            average, steps = 0.99 * average + 0.01 * kept, steps + 1
            assert state["clip_spikes.grad_norm_average"].get_value() == pytest.approx(average)
            assert state["clip_spikes.steps"].get_value() == steps
            # Adam's first moments: m_t = 0.9 m_{t-1} + 0.1 g_t, so the applied gradient is
            # (m_t - 0.9 m_{t-1}) / 0.1, and its total norm is the kept norm.
            m = {name: var.get_value() for name, var in state.items() if name.endswith("adam_m")}
            applied = [(m[name] - (0.9 * previous_m[name] if previous_m else 0)) / 0.1
                       for name in sorted(m)]
            norm = np.sqrt(sum(np.sum(g ** 2) for g in applied))
            assert norm == pytest.approx(kept, rel=1e-9)
            rescaled += kept < raw
            previous_m = m
        assert rescaled == 3  # every step but the first


def test_clip_spikes_that_never_fires_changes_nothing():
    import pytensor

    with pytensor.config.change_flags(floatX="float64"):
        runs = []
        for factor in (None, 1e6):
            trainer = _spike_trainer(factor)
            for x, y, mask in _spike_batches():
                trainer.train_step(x, y, mask)
            runs.append(trainer.parameter_values())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[1][name], runs[0][name], err_msg=name)


def test_the_copy_task_clips_spikes_at_5_by_default_and_0_turns_it_off(tmp_path):
    on, off = str(tmp_path / "on.npz"), str(tmp_path / "off.npz")
    assert copy_task.main(copy_args("--save", on)).config.clip_spikes == 5
    result = copy_task.main(copy_args("--save", off, "--clip-spikes", "0"))
    # "off" is one value: no spike state, and the graph of a run without the option.
    assert result.exit_code == 0 and result.config.clip_spikes is None
    assert not any("clip_spikes" in key for key in read_checkpoint(off)[0])
    assert "optimizer/clip_spikes.steps" in read_checkpoint(on)[0]
    # The other scripts keep it off unless asked.
    assert reversed_copy_task.main(copy_args()).config.clip_spikes is None


def test_a_checkpoint_from_before_clip_spikes_resumes_without_it(tmp_path):
    old = str(tmp_path / "old.npz")
    copy_task.main(copy_args("--save", old, "--clip-spikes", "0", iterations=2))
    arrays, info = read_checkpoint(old)
    del info["config"]["clip_spikes"]  # as written before the option existed
    rewrite_document(old, info)
    result = copy_task.main(["--resume", old, "--iterations", "3", "--mode", "FAST_COMPILE",
                             "--quiet"])
    assert result.exit_code == 0 and result.config.clip_spikes is None
    assert not any("clip_spikes" in key for key in read_checkpoint(old)[0])


def test_clip_spikes_can_be_turned_on_or_off_when_resuming(tmp_path, capsys):
    on, off = str(tmp_path / "on.npz"), str(tmp_path / "off.npz")
    copy_task.main(copy_args("--save", on, "--clip-spikes", "2", iterations=2))
    copy_task.main(copy_args("--save", off, "--clip-spikes", "0", iterations=2))
    resume = ["--iterations", "5", "--mode", "FAST_COMPILE"]
    result = copy_task.main(["--resume", off, "--clip-spikes", "2"] + resume)
    assert result.exit_code == 0 and result.config.clip_spikes == 2
    # Its average starts afresh: it has seen the three steps since the resume, not five.
    assert int(read_checkpoint(off)[0]["optimizer/clip_spikes.steps"]) == 3
    assert "--clip-spikes on: its running average" in capsys.readouterr().out
    result = copy_task.main(["--resume", on, "--clip-spikes", "0"] + resume)
    assert result.exit_code == 0 and result.config.clip_spikes is None
    assert not any("clip_spikes" in key for key in read_checkpoint(on)[0])
    assert "--clip-spikes off: the checkpoint's running average" in capsys.readouterr().out


def test_clip_spikes_is_checkpointed_and_resumed_exactly(tmp_path):
    uninterrupted = str(tmp_path / "four.npz")
    copy_task.main(copy_args("--save", uninterrupted, "--clip-spikes", "2", iterations=4))
    first = str(tmp_path / "two.npz")
    copy_task.main(copy_args("--save", first, "--clip-spikes", "2", iterations=2))
    resumed = str(tmp_path / "resumed.npz")
    result = copy_task.main(["--resume", first, "--iterations", "4", "--save", resumed,
                             "--mode", "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0 and result.config.clip_spikes == 2
    expected, _ = read_checkpoint(uninterrupted)
    actual, _ = read_checkpoint(resumed)
    assert "optimizer/clip_spikes.grad_norm_average" in actual
    assert int(actual["optimizer/clip_spikes.steps"]) == 4
    assert sorted(expected) == sorted(actual)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


# --------------------------------------------------------------------------------------------
# --focus-penalty
# --------------------------------------------------------------------------------------------

def _entropy(weights):
    """NumPy: the mean over batch, steps and heads of -sum_i w ln w."""
    return float(np.mean(-(weights * np.log(np.maximum(weights, 1e-12))).sum(axis=-1)))


def test_focus_penalty_is_the_mean_entropy_of_the_weightings_and_its_gradient_checks():
    import pytensor

    with pytensor.config.change_flags(floatX="float64"):
        from ntm.lasagne import random as lasagne_random

        previous = lasagne_random.get_rng()
        lasagne_random.set_rng(np.random.RandomState(3))
        try:
            model = training.build_ntm(4, 3, num_units=8, memory_shape=(8, 4), num_reads=2)
        finally:
            lasagne_random.set_rng(previous)
        trainer = training.Trainer(model, "adam", 1e-2, max_norm=0, mode="FAST_COMPILE",
                                   focus_penalty=0.3)
        term = trainer._focus_penalty_term()
        x, _, _ = _spike_batches()[0]
        value = pytensor.function([model.l_input.input_var], term, mode="FAST_COMPILE")(x)
        _, _, _, write_weights, read_weights = trainer.details(x)
        assert read_weights.shape[2] == 2  # the mean runs over both read heads
        assert value == pytest.approx(0.3 * (_entropy(write_weights) + _entropy(read_weights)),
                                      rel=1e-10)
        # Its gradient against central differences, for a weight of the read heads' gate and
        # of the controller.
        for param in [p for p in trainer.params if p.name in ("read0.W_hid_to_gate",
                                                               "controller.W_in_to_hid")]:
            grad = pytensor.function([model.l_input.input_var], pytensor.grad(term, param),
                                     mode="FAST_COMPILE")(x)
            f = pytensor.function([model.l_input.input_var], term, mode="FAST_COMPILE")
            original = param.get_value()
            for index in [(0, 0), (1, 0), (original.shape[0] - 1, original.shape[1] - 1)]:
                if len(original.shape) == 1:
                    index = index[:1]
                step = np.zeros_like(original)
                step[index] = 1e-6
                param.set_value(original + step)
                up = f(x)
                param.set_value(original - step)
                down = f(x)
                param.set_value(original)
                assert grad[index] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def test_focus_penalty_pulls_the_heads_onto_one_location():
    import pytensor

    with pytensor.config.change_flags(floatX="float64"):
        entropies = []
        for penalty in (None, 1.0):
            trainer = training.Trainer(_spike_trainer(None).model, "adam", 5e-2, max_norm=0,
                                       mode="FAST_COMPILE", focus_penalty=penalty)
            batches = _spike_batches()
            for _ in range(5):
                for x, y, mask in batches:
                    assert np.isfinite(trainer.train_step(x, y, mask).loss)
            details = trainer.details(batches[0][0])
            entropies.append(_entropy(details[3]) + _entropy(details[4]))
        assert entropies[1] < 0.5 * entropies[0]


def test_focus_penalty_options(tmp_path, capsys):
    # The copy task turns it on at 0.1 after 1,500 of its 3,000 iterations; the others not.
    result = copy_task.main(MODEL + COPY_TASK + RUN + ["--iterations", "3"])
    assert "the focus penalty never turns on: --focus-penalty-after 1500 is not below " \
           "--iterations 3" in capsys.readouterr().out
    assert (result.config.focus_penalty, result.config.focus_penalty_after) == (0.1, 1500)
    assert result.config.iterations == 3 and copy_task.COPY_TRAINING_DEFAULTS["iterations"] == 3000
    assert reversed_copy_task.main(copy_args()).config.focus_penalty is None
    # Before it turns on, only the plain step is compiled.
    assert result.trainer.is_compiled(False) and not result.trainer.is_compiled(True)
    # 0 is off, the graph of no option; the penalty is in the key of its own step only, so
    # that the plain step of a run with it is the cached one of a run without.
    off = copy_task.main(copy_args("--focus-penalty", "0"))
    assert off.config.focus_penalty is None and off.trainer.cache_key == result.trainer.cache_key
    on = str(tmp_path / "on.npz")
    # A seed of its own: a kept model of another test's run with the penalty (whatever its
    # learning rate) would have its plain step compiled already.
    result = copy_task.main(copy_args("--focus-penalty", "0.5", "--focus-penalty-after", "0",
                                      "--save", on, "--seed", "8", iterations=2))
    assert result.exit_code == 0 and result.trainer.focus_penalty == 0.5
    assert result.trainer.is_compiled(True) and not result.trainer.is_compiled(False)
    # A resumed run keeps it, as the other training options.
    resumed = copy_task.main(["--resume", on, "--iterations", "3", "--mode", "FAST_COMPILE",
                              "--quiet"])
    assert resumed.exit_code == 0 and resumed.config.focus_penalty == 0.5
    assert resumed.config.focus_penalty_after == 0
    with pytest.raises(SystemExit):
        copy_task.main(copy_args("--model", "lstm", "--focus-penalty", "0.1"))
    # The copy task's default penalty is for the NTM's heads: its LSTM baseline has none.
    assert copy_task.main(copy_args("--model", "lstm")).config.focus_penalty is None
    with pytest.raises(ValueError, match="focus_penalty"):
        training.Trainer(_spike_trainer(None).model, focus_penalty=-1.0)


def test_focus_penalty_after_trains_plainly_then_as_a_resume_with_the_penalty_would(tmp_path):
    scheduled = str(tmp_path / "scheduled.npz")
    result = copy_task.main(copy_args("--save", scheduled, "--focus-penalty", "0.5",
                                      "--focus-penalty-after", "2", iterations=4))
    assert result.exit_code == 0 and result.trainer.is_compiled(False)
    assert result.trainer.is_compiled(True)
    # The same two plain iterations, then the penalty turned on by resuming with it.
    plain = str(tmp_path / "plain.npz")
    copy_task.main(copy_args("--save", plain, "--focus-penalty", "0", iterations=2))
    resumed = copy_task.main(["--resume", plain, "--focus-penalty", "0.5",
                              "--focus-penalty-after", "0", "--iterations", "4",
                              "--mode", "FAST_COMPILE", "--quiet"])
    assert resumed.exit_code == 0
    expected, _ = read_checkpoint(plain)
    actual, info = read_checkpoint(scheduled)
    assert info["config"]["focus_penalty_after"] == 2
    # The history marks the rows trained with it (the learning curve draws where it began).
    assert [row["iteration"] for row in info["history"] if "focus_penalty" in row] == [3, 4]
    assert training.reports.training_events(info["history"]) == [(2, "focus penalty 0.5 on")]
    assert sorted(expected) == sorted(actual)  # one optimizer state for both steps
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    # ... and the penalty did change the last two steps.
    unpenalised = str(tmp_path / "unpenalised.npz")
    copy_task.main(copy_args("--save", unpenalised, "--focus-penalty", "0", iterations=4))
    other, _ = read_checkpoint(unpenalised)
    assert not np.array_equal(other["params/controller.W_in_to_hid"],
                              actual["params/controller.W_in_to_hid"])


def test_learning_rate_schedule_trains_as_resumes_at_each_rate_would(tmp_path):
    # With the focus penalty turning on in between: each step is that of its rate and penalty.
    options = ["--focus-penalty", "0.5", "--focus-penalty-after", "2"]
    scheduled = str(tmp_path / "scheduled.npz")
    result = copy_task.main(copy_args("--save", scheduled, "--learning-rate-schedule",
                                      "1:1e-3,3:2e-4", *options, iterations=4))
    assert result.exit_code == 0 and result.trainer.learning_rate == 2e-4
    # Resumed at each rate in turn.
    chained = str(tmp_path / "chained.npz")
    copy_task.main(copy_args("--save", chained, *options, iterations=1))
    for rate, iterations in (("1e-3", "3"), ("2e-4", "4")):
        resumed = copy_task.main(["--resume", chained, "--learning-rate", rate, "--iterations",
                                  iterations, "--mode", "FAST_COMPILE", "--quiet"])
        assert resumed.exit_code == 0
    expected, _ = read_checkpoint(chained)
    actual, info = read_checkpoint(scheduled)
    assert sorted(expected) == sorted(actual)  # one optimizer state for every step
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    assert info["config"]["learning_rate_schedule"] == [[1, 1e-3], [3, 2e-4]]
    # The rows say each iteration's rate, and the learning curve marks the changes.
    assert [row["learning_rate"] for row in info["history"]] == [5e-4, 1e-3, 1e-3, 2e-4]
    assert training.reports.training_events(info["history"]) == [
        (1, "learning rate 0.001"), (2, "focus penalty 0.5 on"), (3, "learning rate 0.0002")]
    # ... and the schedule did change the steps.
    constant = str(tmp_path / "constant.npz")
    copy_task.main(copy_args("--save", constant, *options, iterations=4))
    other, other_info = read_checkpoint(constant)
    assert not np.array_equal(other["params/controller.W_in_to_hid"],
                              actual["params/controller.W_in_to_hid"])
    assert all("learning_rate" not in row for row in other_info["history"])


def test_learning_rate_schedule_options(tmp_path, capsys):
    for bad in ("3:1e-3,2:1e-4", "2:1e-3,2:1e-4", "0:1e-3", "2:0", "2:-1e-3", "2:nan", "2",
                "x:1e-3"):
        with pytest.raises(SystemExit):
            copy_task.main(copy_args("--learning-rate-schedule", bad))
        assert "--learning-rate-schedule" in capsys.readouterr().err
    path = str(tmp_path / "scheduled.npz")
    result = copy_task.main(copy_args("--save", path, "--learning-rate-schedule", "2:1e-3,5:1e-4",
                                      iterations=2))
    assert result.exit_code == 0 and result.trainer.learning_rate == 5e-4
    # A resume goes on with the checkpoint's schedule ...
    resume = ["--resume", path, "--mode", "FAST_COMPILE"]
    resumed = copy_task.main(resume + ["--iterations", "3"])
    assert resumed.config.learning_rate_schedule == [[2, 1e-3], [5, 1e-4]]
    assert resumed.trainer.learning_rate == 1e-3
    assert "learning rate 0.001, then 0.0001 after 5" not in capsys.readouterr().out
    resumed = copy_task.main(resume + ["--iterations", "6"])
    out = capsys.readouterr().out
    assert "learning rate 0.001, then 0.0001 after 5" in out
    # One compiled step serves every rate: the change compiles nothing.
    assert "iteration 6: the learning rate is 0.0001\n" in out
    assert "compiling its training step" not in out
    assert resumed.trainer.learning_rate == 1e-4
    # ... unless a rate is given: it replaces the whole schedule, and says so.
    resumed = copy_task.main(resume + ["--iterations", "7", "--learning-rate", "3e-4"])
    assert "--learning-rate 0.0003 given: the checkpoint's --learning-rate-schedule " \
           "2:0.001,5:0.0001 is not used" in capsys.readouterr().out
    assert resumed.config.learning_rate_schedule == [] and resumed.trainer.learning_rate == 3e-4


@pytest.mark.parametrize("name, task_options", [
    ("priority_sort", ("size", "num_items", "num_sorted")),
    ("sort", ("size", "min_length", "max_length")),
])
def test_the_scripts_defaults_are_the_shipped_models_recipe(name, task_options):
    """The script's defaults train models/NAME.npz: its model, its averaging, its iterations
    and its learning rates: its own schedule, or the rates of its chain of resumes, each from
    the iteration the run that set it began at."""
    parser = SCRIPTS[name][0].make_parser()
    config, _ = training.parse_config(parser, [])
    with open(os.path.join(REPO, "models", name + ".json"), encoding="utf-8") as stream:
        shipped = json.load(stream)
    saved = training.migrations.saved_config(shipped)  # with the values of options it predates
    for option in task_options + (
            "model", "controller", "num_units", "num_reads", "num_writes", "memory_shape",
            "num_shifts", "learn_memory_init", "batch_size", "seed", "optimizer", "max_norm",
            "grad_clip", "clip_spikes", "focus_penalty", "average_after"):
        assert getattr(config, option) == saved[option], option
    assert config.iterations == shipped["iteration"]
    if saved["learning_rate_schedule"]:
        assert [config.learning_rate] + config.learning_rate_schedule == \
            [saved["learning_rate"]] + saved["learning_rate_schedule"]
        return
    rates = []
    for run in shipped["runs"]:
        recorded, given = training.parse_config(parser, shlex.split(run["command_line"])[1:])
        # A resume without a rate goes on at its checkpoint's.
        if "learning_rate" in given and (not rates or recorded.learning_rate != rates[-1][1]):
            rates.append([run["first_iteration"], recorded.learning_rate])
    assert config.learning_rate == rates[0][1]
    assert config.learning_rate_schedule == rates[1:]


def test_a_learning_rate_given_replaces_the_scripts_default_schedule(capsys):
    module, task_options, _, _ = SCRIPTS["priority_sort"]
    run = MODEL + task_options + RUN + ["--iterations", "1"]
    default = module.make_parser().get_default("learning_rate_schedule")
    assert default  # the script's own schedule
    result = module.main(run + ["--quiet"])
    assert result.config.learning_rate_schedule == default
    assert result.trainer.learning_rate == 5e-4
    capsys.readouterr()
    result = module.main(run + ["--learning-rate", "1e-3"])
    assert "--learning-rate 0.001 given: this script's --learning-rate-schedule " \
           "24000:0.0002,30000:0.0001,100000:5e-05,130000:2e-05,160000:1e-05 is not used" \
           in capsys.readouterr().out
    assert result.config.learning_rate_schedule == [] and result.trainer.learning_rate == 1e-3
    # Given both, both are kept; 'none' is no schedule.
    result = module.main(run + ["--learning-rate", "1e-3", "--learning-rate-schedule", "5:1e-4",
                                "--quiet"])
    assert result.config.learning_rate_schedule == [[5, 1e-4]]
    result = module.main(run + ["--learning-rate-schedule", "none", "--quiet"])
    assert result.config.learning_rate_schedule == [] and result.trainer.learning_rate == 5e-4


def test_the_learning_curve_draws_the_validations_and_their_mean():
    history = [{"iteration": 1, "train_bits_per_seq": 9.0},
               {"iteration": 2, "train_bits_per_seq": 8.0, "val_bits_per_seq": 7.5},
               {"iteration": 3, "train_bits_per_seq": 7.0},
               {"iteration": 4, "train_bits_per_seq": 6.0, "val_bits_per_seq": 5.5,
                "avg_val_bits_per_seq": 5.0}]
    assert training.reports.validation_curves(history) == {
        "validation": ([2, 4], [7.5, 5.5]), "validation, mean of the parameters": ([4], [5.0])}
    assert training.reports.validation_curves(history[:1]) == {}


def test_keep_best_given_replaces_the_scripts_default_averaging(tmp_path, capsys):
    module, task_options, _, _ = SCRIPTS["priority_sort"]
    assert module.make_parser().get_default("average_after")  # the script averages
    save = str(tmp_path / "run.npz")
    result = module.main(MODEL + task_options + RUN + ["--iterations", "2", "--keep-best",
                                                       "--save", save])
    out = capsys.readouterr().out
    assert result.exit_code == 0 and result.config.average_after is None
    assert "--keep-best given: this script's --average-after 160000 is not used" in out
    assert os.path.exists(str(tmp_path / "run-best.npz"))
    # 'none' turns the script's averaging off; a count that is not one is refused.
    config, _ = training.parse_config(module.make_parser(), ["--average-after", "none"])
    assert config.average_after is None
    with pytest.raises(SystemExit):
        training.parse_config(module.make_parser(), ["--average-after", "soon"])
    assert "--average-after" in capsys.readouterr().err
    # Without training there is nothing to say about averaging.
    module.main(["--load", save, "--iterations", "0", "--mode", "FAST_COMPILE"])
    assert "average" not in capsys.readouterr().out


def test_average_after_ends_with_the_mean_of_the_parameters_after_each_iteration(tmp_path):
    path = str(tmp_path / "averaged.npz")
    result = copy_task.main(copy_args("--save", path, "--average-after", "2",
                                      "--eval-lengths", "2,4", iterations=4))
    assert result.exit_code == 0
    validation = result.averaged.pop("val_bits_per_seq"), \
        result.averaged.pop("val_errors_per_seq")
    assert result.averaged == {"first_iteration": 3, "last_iteration": 4, "count": 2}
    ended = result.trainer.parameter_values()  # before the trainer is reused below
    # The same run without it, stopped after iterations 3 and 4.
    after = {}
    for iterations in (3, 4):
        after[iterations] = str(tmp_path / f"plain{iterations}.npz")
        copy_task.main(copy_args("--save", after[iterations], iterations=iterations))
    third, _ = read_checkpoint(after[3])
    fourth, _ = read_checkpoint(after[4])
    # PATH.npz is the last iteration's checkpoint, untouched by the averaging ...
    last, info = read_checkpoint(path)
    for key in fourth:
        np.testing.assert_array_equal(last[key], fourth[key], err_msg=key)
    assert info["average"] == {"after": 2, "first_iteration": 3, "count": 2}
    # ... and PATH-average.npz holds the mean of the parameters after iterations 3 and 4.
    averaged, averaged_info = read_checkpoint(training.average_checkpoint_path(path))
    assert averaged_info["averaged"] == {"after": 2, "first_iteration": 3, "count": 2,
                                         "last_iteration": 4}
    params = [key for key in fourth if key.startswith("params/")]
    assert params
    for key in params:
        mean = ((third[key].astype(np.float64) + fourth[key]) / 2).astype(fourth[key].dtype)
        np.testing.assert_array_equal(averaged[key], mean, err_msg=key)
        np.testing.assert_array_equal(ended[key[len("params/"):]], mean, err_msg=key)
    moved = [key for key in params if not np.array_equal(third[key], fourth[key])]
    assert moved  # so the mean is not simply either of them
    # The run's evaluation is the averaged parameters', as a --load of them evaluates.
    loaded = copy_task.main(["--load", training.average_checkpoint_path(path), "--iterations",
                             "0", "--mode", "FAST_COMPILE", "--quiet", "--eval-lengths", "2,4",
                             "--eval-batches", "2", "--batch-size", "2"])
    assert loaded.evaluation == result.evaluation
    # Its validation cost, on the run's validation set, is the mean's too.
    predict = result.trainer.predict
    result.trainer.set_parameter_values(ended)
    import pytensor
    from utils.generators import CopyTask

    with pytensor.config.change_flags(floatX=result.config.floatX):  # as the run had it
        batches = training.evaluation.validation_set(
            training.tasks.Script(copy_task.make_copy_like_task(CopyTask)), result.config)
    scores = training.evaluation.evaluate(predict, batches, "bits")
    assert validation == (scores["bits_per_seq"], scores["errors_per_seq"])
    # The validations once it started give the mean's cost too (the last one: the same).
    rows = {row["iteration"]: row for row in info["history"]
            if row["val_bits_per_seq"] is not None}
    assert "avg_val_bits_per_seq" not in rows[2]
    assert (rows[4]["avg_val_bits_per_seq"], rows[4]["avg_val_errors_per_seq"]) == validation


def test_average_after_resumes_exactly(tmp_path, capsys):
    straight = str(tmp_path / "straight.npz")
    copy_task.main(copy_args("--save", straight, "--average-after", "1", iterations=5))
    stopped = str(tmp_path / "stopped.npz")
    copy_task.main(copy_args("--save", stopped, "--average-after", "1", iterations=3))
    assert read_checkpoint(stopped)[1]["average"]["count"] == 2
    resumed = copy_task.main(["--resume", stopped, "--iterations", "5", "--mode",
                              "FAST_COMPILE", "--quiet"])
    assert {key: resumed.averaged[key] for key in ("first_iteration", "last_iteration",
                                                    "count")} == \
        {"first_iteration": 2, "last_iteration": 5, "count": 4}
    expected, _ = read_checkpoint(training.average_checkpoint_path(straight))
    actual, _ = read_checkpoint(training.average_checkpoint_path(stopped))
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    # A checkpoint without the sums (trained without the option) averages from the resume on.
    plain = str(tmp_path / "plain.npz")
    copy_task.main(copy_args("--save", plain, iterations=3))
    resumed = copy_task.main(["--resume", plain, "--iterations", "5", "--average-after", "1",
                              "--mode", "FAST_COMPILE"])
    assert "--average-after 1: the checkpoint holds no average of the iterations after 1; " \
           "averaging from iteration 4" in capsys.readouterr().out
    assert (resumed.averaged["first_iteration"], resumed.averaged["count"]) == (4, 2)


def test_average_after_options(capsys):
    for bad, message in ((["--average-after", "-1"], "--average-after: must be >= 0"),
                         (["--average-after", "1", "--keep-best"], "--average-after: give")):
        with pytest.raises(SystemExit):
            copy_task.main(copy_args(*bad))
        assert message in capsys.readouterr().err
    result = copy_task.main(MODEL + COPY_TASK + RUN + ["--iterations", "3", "--average-after",
                                                       "3"])
    assert "--average-after 3 is not below --iterations 3: nothing to average" in \
        capsys.readouterr().out
    assert result.exit_code == 0 and result.averaged is None


def test_a_trainer_takes_every_learning_rate_with_one_compiled_step():
    trainer = _spike_trainer(None)
    x, y, mask = _spike_batches()[0]
    trainer.train_step(x, y, mask)
    state = [v.name for v in trainer.optimizer_state]
    assert trainer.is_compiled()
    step = trainer._train_fns[False]
    trainer.learning_rate = 1e-3
    assert trainer.is_compiled()
    trainer.train_step(x, y, mask)
    assert [v.name for v in trainer.optimizer_state] == state
    assert trainer._train_fns == {False: step}  # the same function, nothing compiled
    steps = [v for v in trainer.optimizer_state if v.name.endswith("adam_t")]
    assert [int(v.get_value()) for v in steps] == [2]  # both steps moved one state
    for bad in (0, -1e-3, float("nan"), float("inf"), "1e-3", None):
        with pytest.raises(ValueError, match="learning_rate"):
            trainer.learning_rate = bad


def _steps_at_constant_rates(trainer, rates, batches):
    """Train ``trainer`` with one step compiled per rate, the rate a constant of its graph as
    a float learning rate enters an update rule's graph (how every step was compiled before
    the rate became a variable of the step)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import clone_replace

    updates, outputs = trainer._step_graph(False)
    inputs = [trainer.model.l_input.input_var, trainer.target_var, trainer.mask_var]
    steps = {}
    with trainer._accelerated() as mode:
        for rate in sorted(set(rates)):
            values = clone_replace(list(updates.values()) + list(outputs),
                                   {trainer._learning_rate_var: pt.as_tensor_variable(rate)})
            steps[rate] = pytensor.function(inputs, values[len(updates):], mode=mode,
                                            updates=list(zip(updates, values[:len(updates)])))
            used = [put.variable for put in steps[rate].maker.inputs]
            assert trainer._learning_rate_var not in used and steps[rate].maker.inputs
    for rate, (x, y, mask) in zip(rates, batches):
        steps[rate](x, y, mask)


@pytest.mark.parametrize("optimizer, mode, floatX", [
    ("adam", "FAST_COMPILE", "float32"),
    pytest.param("graves_rmsprop", "FAST_COMPILE", "float32", marks=pytest.mark.slow),
    pytest.param("rmsprop", "CVM", "float64", marks=pytest.mark.slow),
])
def test_a_schedule_trains_as_steps_compiled_with_each_rate_as_a_constant(optimizer, mode,
                                                                          floatX):
    """One compiled step serves every rate of a schedule, with the parameters and optimizer
    state, bit for bit, of steps compiled each with its rate as a constant of its type.

    (Not CVM in float32: PyTensor's C code writes a float32 constant as a decimal literal,
    which C reads as a double, so a step compiled with a constant rate multiplies by that
    double rather than by the float32 rate.)"""
    import pytensor

    with pytensor.config.change_flags(floatX=floatX):
        _check_schedule_against_constant_rates(optimizer, mode)


def _check_schedule_against_constant_rates(optimizer, mode):
    from ntm.lasagne import random as lasagne_random

    previous = lasagne_random.get_rng()
    lasagne_random.set_rng(np.random.RandomState(5))
    try:
        model = training.build_ntm(4, 3, num_units=8, memory_shape=(8, 4))
    finally:
        lasagne_random.set_rng(previous)
    trainer = training.Trainer(model, optimizer, max_norm=1.0, mode=mode, spike_factor=2.0)
    initial = trainer.parameter_values()
    from utils.generators import CopyTask

    task = CopyTask(size=3, max_length=3, batch_size=2, seed=11, dtype=trainer.floatX)
    rates, batches = [1e-2, 1e-2, 3e-3, 7e-4], [task.sample_with_mask(length=3)
                                                for _ in range(4)]
    for rate, (x, y, mask) in zip(rates, batches):
        trainer.learning_rate = rate
        assert trainer.train_step(x, y, mask).finite
    assert list(trainer._train_fns) == [False]  # one step for the four
    scheduled = {**trainer.parameter_values(), **trainer.optimizer_values()}
    trainer.reset(initial)
    _steps_at_constant_rates(trainer, rates, batches)
    constant = {**trainer.parameter_values(), **trainer.optimizer_values()}
    assert sorted(constant) == sorted(scheduled)
    for name, value in constant.items():
        np.testing.assert_array_equal(scheduled[name], value, err_msg=name)
    assert any(not np.array_equal(scheduled[name], initial[name]) for name in initial)


def test_a_trainer_with_the_focus_penalty_steps_without_it_on_the_same_state():
    import pytensor

    with pytensor.config.change_flags(floatX="float64"):
        plain = _spike_trainer(None)
        focused = training.Trainer(_spike_trainer(None).model, "adam", 1e-2, max_norm=0,
                                   mode="FAST_COMPILE", focus_penalty=1.0)
        focused.set_parameter_values(plain.parameter_values())
        batches = _spike_batches()
        for x, y, mask in batches[:2]:
            plain.train_step(x, y, mask)
            focused.train_step(x, y, mask, with_focus_penalty=False)
        for name, value in plain.parameter_values().items():
            np.testing.assert_array_equal(focused.parameter_values()[name], value, err_msg=name)
        assert [v.name for v in focused.optimizer_state] == [v.name for v in plain.optimizer_state]
        steps = [v for v in focused.optimizer_state if v.name.endswith("adam_t")]
        x, y, mask = batches[2]
        focused.train_step(x, y, mask)  # with it: the moments and step count it moves are those
        assert [int(v.get_value()) for v in steps] == [3]
        plain.train_step(x, y, mask)
        differs = [not np.array_equal(focused.parameter_values()[name], value)
                   for name, value in plain.parameter_values().items()]
        assert any(differs)


# --------------------------------------------------------------------------------------------
# The kernels' threads
# --------------------------------------------------------------------------------------------

@pytest.fixture
def threads_of_steps(monkeypatch):
    """The kernels' thread setting in force at each training step."""
    from ntm.accel import kernel_threads
    seen, original = [], training.Trainer.train_step

    def recording(self, *args, **kwargs):
        seen.append(kernel_threads.get_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "train_step", recording)
    return seen


def test_the_steps_take_the_kernel_threads_asked_for(threads_of_steps):
    from ntm.accel import kernel_threads
    copy_task.main(copy_args("--kernel-threads", "2"))
    assert threads_of_steps == [2, 2, 2] and kernel_threads.get_threads() is None


def test_automatic_kernel_threads_time_the_settings_in_turns_and_say_the_choice(
        threads_of_steps, monkeypatch, capsys):
    from ntm.accel import kernel_threads
    from utils.training import loop
    # FAST_COMPILE runs no C kernel, and this machine may have one core: the loop is told
    # otherwise, to see what it does with the kernels' threads.
    monkeypatch.setattr(kernel_threads, "available_threads", lambda: 2)
    monkeypatch.setattr(loop, "backend_of", lambda mode: "c")
    # Steps of a few milliseconds: no setting is dropped from the trial for one slow step.
    monkeypatch.setattr(kernel_threads.ThreadChoice, "DROP_RATIO", np.inf)
    copy_task.main(MODEL + COPY_TASK + RUN + ["--iterations", "24"])
    assert threads_of_steps[:22] == [None, 2] * 11  # one untimed step each, then 10 each
    assert threads_of_steps[22:] in ([None] * 2, [2] * 2)
    assert "iteration 22: kernel threads: " in capsys.readouterr().out
    assert kernel_threads.get_threads() is None
