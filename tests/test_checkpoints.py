"""Checkpoints that survive anything: atomic commits, kills, signals, full disks, concurrent
runs, non-finite steps and bad files (utils/training/checkpoints.py, utils/interrupts.py and the
training loop's use of them).

Training processes are forked from the test process, which has compiled the tiny model
already, so that each starts training at once; they are stopped with real signals. One test,
marked slow, kills the example script itself, started as a command.
"""
import errno
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from examples import copy_task
from utils import files, interrupts, resources, training
from utils.training import checkpoints

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(REPO, "models")

# The tiny checkpointing run of the issue, compiled once for the whole module.
TINY = ["--memory-shape", "16", "8", "--num-units", "20", "--batch-size", "2", "--max-length",
        "5", "--checkpoint-every", "1", "--mode", "FAST_COMPILE", "--validation-batches", "2",
        "--log-every", "100000"]


@pytest.fixture(scope="module", autouse=True)
def reuse_models():
    training.reuse_compiled_models(True)
    yield
    training.reuse_compiled_models(False)


# The processes a test started, killed when it ends (passed or not).
RUNNING = []


@pytest.fixture(autouse=True)
def no_process_left():
    yield
    while RUNNING:
        runner = RUNNING.pop()
        if runner.poll() is None:
            runner.send(signal.SIGKILL)
            runner.wait()


def tiny(*extra, iterations, quiet=True):
    return TINY + ["--iterations", str(iterations)] + (["--quiet"] if quiet else []) + \
        [str(item) for item in extra]


def train(*extra, iterations):
    return copy_task.main(tiny(*extra, iterations=iterations))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Three iterations of the tiny run, saved; the model compiled for the forked runs."""
    directory = tmp_path_factory.mktemp("base")
    path = str(directory / "base.npz")
    result = train("--save", path, iterations=3)
    assert result.exit_code == 0
    return {"path": path, "checkpoint": checkpoints.read_checkpoint(path)}


def compile_before_forking(base, tmp_path):
    """Have the training step of the tiny run's learning rate compiled (a test may have
    compiled another's), so that a forked run inherits it rather than compiling its own."""
    warm = str(tmp_path / "warm.npz")
    assert train("--load", base["path"], "--save", warm, iterations=1).exit_code == 0
    for name in os.listdir(tmp_path):
        if name.startswith("warm."):
            os.remove(os.path.join(tmp_path, name))


def copy_of(base_checkpoint, path):
    arrays, document = base_checkpoint
    checkpoints.write_checkpoint(path, arrays, document)
    return path


def usage_error(err):
    """The message of argparse's last line ``PROG: error: MESSAGE``; none of the lines a
    traceback."""
    assert "Traceback" not in err
    prog, sep, message = err.strip().splitlines()[-1].partition(": error: ")
    assert sep and " " not in prog, err
    return message


def leftovers(directory):
    """Temporary files and locks in a directory."""
    return sorted(name for name in os.listdir(directory) if ".tmp-" in name
                  or name.endswith(".lock"))


def assert_same_state(actual, expected):
    """Two checkpoints' parameters and optimizer state, bit for bit."""
    names = [name for name in expected[0] if name.startswith(("params/", "optimizer/"))]
    assert names and sorted(names) == sorted(name for name in actual[0]
                                             if name.startswith(("params/", "optimizer/")))
    for name in names:
        np.testing.assert_array_equal(actual[0][name], expected[0][name], err_msg=name)
    assert actual[1]["iteration"] == expected[1]["iteration"]
    assert actual[1]["task_state"] == expected[1]["task_state"]


class Child:
    """A training run in a forked process (the module's compiled models are inherited).

    Parameters
    ----------
    argv : list of str
        The copy script's arguments.
    log : str
        Where its standard output and error go.
    prepare : callable, optional
        Called in the child before the run (e.g. to slow its writes down).
    """

    def __init__(self, argv, log, prepare=None):
        self.log = log
        open(log, "w").close()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the test
            code = 99
            try:
                handle = os.open(log, os.O_WRONLY | os.O_APPEND)
                os.dup2(handle, 1)
                os.dup2(handle, 2)
                sys.stdout = sys.stderr = open(log, "a", buffering=1, encoding="utf-8")
                # As in a fresh Python process.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for signum in (signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                if prepare is not None:
                    prepare()
                code = copy_task.main(argv).exit_code
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 2
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                os._exit(code)
        self.pid = pid
        self.status = None
        RUNNING.append(self)

    def output(self):
        with open(self.log, encoding="utf-8") as stream:
            return stream.read()

    def wait_for(self, text, timeout=120):
        """Wait until the output holds ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.poll() is None, f"the run ended ({self.status}): {self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} in {self.output()}"
            time.sleep(0.01)

    def poll(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout=120):
        """The exit status (minus the signal's number when killed by one)."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"the run did not end: {self.output()}")
            time.sleep(0.01)
        return self.status

    def send(self, signum):
        os.kill(self.pid, signum)


# --------------------------------------------------------------------------------------------
# The file: one atomic commit, earlier formats migrated
# --------------------------------------------------------------------------------------------

def test_a_checkpoint_is_one_file_holding_its_document(tmp_path):
    path = str(tmp_path / "one.npz")
    arrays = {"params/w": np.arange(6, dtype=np.float32).reshape(2, 3), "iteration":
              np.asarray(7)}
    checkpoints.write_checkpoint(path, arrays, {"iteration": 7, "history": [{"loss": 0.5}]})
    with np.load(path) as data:
        assert sorted(data.files) == ["checkpoint.json", "iteration", "params/w"]
        document = json.loads(data["checkpoint.json"].tobytes().decode())
    assert document == {"iteration": 7, "history": [{"loss": 0.5}],
                        "format": "ntm-checkpoint", "version": 2}
    read, info = checkpoints.read_checkpoint(path)
    assert info == document and sorted(read) == ["iteration", "params/w"]
    np.testing.assert_array_equal(read["params/w"], arrays["params/w"])
    # PATH.json is a copy for readers, never read: a stale or missing copy changes nothing.
    with open(str(tmp_path / "one.json"), encoding="utf-8") as stream:
        assert json.load(stream) == document
    os.remove(str(tmp_path / "one.json"))
    assert checkpoints.read_checkpoint(path)[1] == document
    assert leftovers(tmp_path) == []


def test_non_finite_values_are_never_written(tmp_path):
    path = str(tmp_path / "guarded.npz")
    checkpoints.write_checkpoint(path, {"params/w": np.ones(3)}, {"iteration": 1})
    for bad in (np.nan, np.inf):
        with pytest.raises(checkpoints.CheckpointError, match="params/w are not finite"):
            checkpoints.write_checkpoint(path, {"params/w": np.array([1.0, bad, 2.0])},
                                         {"iteration": 2})
    arrays, info = checkpoints.read_checkpoint(path)
    assert info["iteration"] == 1 and arrays["params/w"].tolist() == [1.0, 1.0, 1.0]


def failing_writes(monkeypatch, fail_on, after_bytes=100):
    """Make the checkpoint writes of files ending in ``fail_on`` stop with a full disk after
    ``after_bytes`` bytes, as a disk that fills up does; returns the calls seen."""
    real = checkpoints.atomic_write
    calls = []

    def atomic_write(path, write):
        calls.append(path)
        if not path.endswith(fail_on):
            return real(path, write)

        def write_part(stream):
            class Full:
                written = 0

                def write(self, data):
                    data = bytes(data)
                    room = after_bytes - Full.written
                    stream.write(data[:max(room, 0)])
                    Full.written += len(data)
                    if Full.written > after_bytes:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write(Full())
        return real(path, write_part)

    monkeypatch.setattr(checkpoints, "atomic_write", atomic_write)
    return calls


def test_a_write_that_fails_part_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "run.npz")
    checkpoints.write_checkpoint(path, {"params/w": np.zeros(1000)}, {"iteration": 1})
    before = open(path, "rb").read()
    calls = failing_writes(monkeypatch, ".npz")
    with pytest.raises(checkpoints.CheckpointWriteError,
                       match=f"cannot write {path}: No space left on device"):
        checkpoints.write_checkpoint(path, {"params/w": np.ones(1000)}, {"iteration": 2})
    assert calls == [path]
    assert open(path, "rb").read() == before
    assert checkpoints.read_checkpoint(path)[1]["iteration"] == 1
    assert leftovers(tmp_path) == []


def test_a_write_that_fails_after_the_first_file_leaves_a_whole_checkpoint(tmp_path,
                                                                           monkeypatch):
    path = str(tmp_path / "run.npz")
    copy = str(tmp_path / "run.json")
    checkpoints.write_checkpoint(path, {"params/w": np.zeros(3)}, {"iteration": 1})
    failing_writes(monkeypatch, ".json", after_bytes=10)
    with pytest.raises(checkpoints.CheckpointWriteError) as failure:
        checkpoints.write_checkpoint(path, {"params/w": np.ones(3)}, {"iteration": 2})
    assert str(failure.value) == (
        f"cannot write {copy}: No space left on device; the checkpoint {path} (iteration 2) is "
        f"complete, its readable copy {copy} is removed")
    # The checkpoint committed is the new one, whole; no stale copy says otherwise.
    arrays, info = checkpoints.read_checkpoint(path)
    assert info["iteration"] == 2 and arrays["params/w"].tolist() == [1.0, 1.0, 1.0]
    assert not os.path.exists(copy) and leftovers(tmp_path) == []
    monkeypatch.undo()
    # The next run that writes it puts the copy back.
    assert checkpoints.recover([path]) == [
        f"rewrote {copy} from {path} (iteration 2): the process that wrote the checkpoint "
        f"stopped before its readable copy"]
    with open(copy, encoding="utf-8") as stream:
        assert json.load(stream) == info


def test_a_full_disk_stops_training_with_the_last_checkpoint_whole(base, tmp_path,
                                                                   monkeypatch, capsys):
    path = str(tmp_path / "run.npz")
    real = checkpoints.atomic_write
    writes = []

    def third_write_fails(target, write):  # the checkpoint of iteration 3 fills the disk
        writes.append(target)
        if len(writes) != 5:
            return real(target, write)

        def half_then_full(stream):
            class Full:
                def write(self, data):
                    data = bytes(data)
                    stream.write(data[:len(data) // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write(Full())
        return real(target, half_then_full)

    monkeypatch.setattr(checkpoints, "atomic_write", third_write_fails)
    result = train("--save", path, iterations=6)
    assert result.exit_code == 2 and result.iteration == 3
    assert capsys.readouterr().err.strip() == (
        f"error: training stopped after iteration 3: cannot write {path}: No space left on "
        f"device; the checkpoint {path} holds iteration 2")
    assert checkpoints.read_checkpoint(path)[1]["iteration"] == 2
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    # ... from which --resume goes on, as a run that never stopped.
    resumed = train("--resume", path, iterations=3)
    assert resumed.exit_code == 0
    assert_same_state(checkpoints.read_checkpoint(path), base["checkpoint"])


def test_every_shipped_model_loads_through_the_migration():
    paths = sorted(glob.glob(os.path.join(MODELS, "*.npz")))
    assert len(paths) >= 12
    for path in paths:
        arrays, info = checkpoints.read_checkpoint(path)
        with open(path[:-4] + ".json", encoding="utf-8") as stream:
            shipped = json.load(stream)
        assert shipped["version"] == 1
        assert info == dict(shipped, version=2), path
        with np.load(path) as data:
            assert sorted(arrays) == sorted(data.files)
        params, _, loaded = training.load_checkpoint(path)
        assert loaded == info and params


def test_a_version_1_checkpoint_resumes_and_is_written_back_as_version_2(base, tmp_path):
    arrays, document = base["checkpoint"]
    old = str(tmp_path / "old.npz")
    np.savez(old, **arrays)
    with open(old[:-4] + ".json", "w", encoding="utf-8") as stream:
        json.dump(dict(document, version=1), stream)
    assert checkpoints.read_checkpoint(old)[1] == document
    assert train("--resume", old, iterations=4).exit_code == 0
    arrays, document = checkpoints.read_checkpoint(old)
    assert document["version"] == 2 and document["iteration"] == 4
    with np.load(old) as data:
        assert "checkpoint.json" in data.files


# --------------------------------------------------------------------------------------------
# Bad files and options: one line naming the file or option, status 2
# --------------------------------------------------------------------------------------------

def make_truncated(base, path):
    data = open(base["path"], "rb").read()
    with open(path, "wb") as stream:
        stream.write(data[:len(data) // 2])


def make_shape_mismatch(base, path):
    arrays, document = base["checkpoint"]
    arrays = dict(arrays)
    name = next(name for name in arrays if name.startswith("params/") and arrays[name].ndim == 2)
    arrays[name] = np.zeros((3, 3), dtype=arrays[name].dtype)
    checkpoints.write_checkpoint(path, arrays, document)


def make_list_document(base, path):
    arrays, _ = base["checkpoint"]
    np.savez(path, **arrays)  # version 1: the document beside
    with open(path[:-4] + ".json", "w", encoding="utf-8") as stream:
        stream.write("[]\n")


def make_text_file(base, path):
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("these are notes, not a checkpoint\n")


def make_npy_file(base, path):
    with open(path, "wb") as stream:
        np.save(stream, np.ones(3))


def make_other_npz(base, path):
    np.savez(path, weights=np.ones(3))


@pytest.mark.parametrize("make, expected", [
    (make_truncated, "{path}: not a readable .npz checkpoint (truncated, damaged or another "
                     "kind of file"),
    (make_shape_mismatch, "--load {path}: the checkpoint's arrays do not fit the model its "
                          "document describes: the checkpoint's parameters"),
    (make_list_document, "{json}: not a checkpoint document (expected a JSON object, found "
                         "list)"),
    (make_text_file, "{path}: not a .npz checkpoint (a .npz file is a zip archive; this one "
                     "does not start as one)"),
    (make_npy_file, "{path}: not a .npz checkpoint (a .npz file is a zip archive"),
    (make_other_npz, "{path}: holds no checkpoint document, and there is no {json} beside it"),
])
def test_a_bad_checkpoint_file_is_named_in_one_line(base, tmp_path, capsys, make, expected):
    path = str(tmp_path / "bad.npz")
    make(base, path)
    with pytest.raises(SystemExit) as stop:
        copy_task.main(["--load", path, "--iterations", "0", "--mode", "FAST_COMPILE",
                        "--quiet"])
    message = usage_error(capsys.readouterr().err)
    assert stop.value.code == 2 and message.startswith("--load")
    assert expected.format(path=path, json=path[:-4] + ".json") in message


@pytest.mark.parametrize("extra, expected", [
    (["--learning-rate", "inf"], "--learning-rate: inf is not a finite number > 0 in float32 "
                                 "(--floatX), whose range is 1.18e-38 to 3.4e+38"),
    (["--learning-rate", "1e39"], "--learning-rate: 1e+39 is not a finite number > 0 in "
                                  "float32"),
    (["--learning-rate", "1e-50"], "--learning-rate: 1e-50 is not a finite number > 0 in "
                                   "float32"),
    (["--learning-rate", "nan"], "--learning-rate: must be > 0, got nan"),
    (["--learning-rate-schedule", "2:1e39"], "--learning-rate-schedule: 1e+39 is not a finite "
                                             "number > 0 in float32"),
    (["--seed", "99999999999"], "--seed: must be an integer from 0 to 4294967295, got "
                                "99999999999"),
    (["--seed", "-1"], "--seed: must be an integer from 0 to 4294967295, got -1"),
])
def test_bad_numbers_are_refused_naming_the_option(capsys, extra, expected):
    with pytest.raises(SystemExit) as stop:
        train(*extra, iterations=1)
    assert stop.value.code == 2
    assert usage_error(capsys.readouterr().err).startswith(expected)


def test_memory_that_cannot_be_allocated_is_refused_before_compiling(capsys, monkeypatch):
    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 2 ** 30)
    started = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        copy_task.main(["--memory-shape", "100000", "1000", "--batch-size", "2",
                        "--max-length", "5", "--iterations", "1", "--quiet"])
    err = usage_error(capsys.readouterr().err)
    assert stop.value.code == 2 and time.perf_counter() - started < 30
    # Copies of up to 5 vectors: 2 x 5 + 2 steps at most, 12 when the longest was drawn.
    steps = int(err.split(" sequences (--batch-size) x ")[1].split()[0])
    assert 8 <= steps <= 12
    needed = resources.scan_memory_bytes((100000, 1000), 2, steps, 4)
    assert needed == 2 * 100000 * 1000 * 2 * steps * 4
    assert err == (
        f"--memory-shape 100000 1000: a training step needs at least "
        f"{resources.format_bytes(needed)} for the memory's states (2 x 100000 x 1000 x 2 "
        f"sequences (--batch-size) x {steps} steps x 4 bytes: the scan's and its gradient's), "
        f"more than the 1.0 GiB available; choose a smaller --memory-shape or --batch-size, or "
        f"shorter sequences")
    # The tiny model fits.
    assert train(iterations=0).exit_code == 0


def test_an_unwritable_save_directory_is_found_before_compiling(tmp_path, capsys,
                                                                monkeypatch):
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        open(directory / "probe", "w").close()
    except PermissionError:
        pass
    else:  # run as root: permissions do not stop it, so the system's refusal is simulated
        os.remove(directory / "probe")
        real = checkpoints.tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir == str(directory):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(*args, dir=dir, **kwargs)
        monkeypatch.setattr(checkpoints.tempfile, "mkstemp", refuse)
    path = str(directory / "run.npz")
    try:
        with pytest.raises(SystemExit) as stop:
            train("--save", path, "--checkpoint-every", "0", iterations=600)
    finally:
        directory.chmod(0o700)
    err = usage_error(capsys.readouterr().err)
    assert stop.value.code == 2
    assert err == (f"--save {path}: cannot write in {directory} "
                   f"(Permission denied)")


# --------------------------------------------------------------------------------------------
# Overwriting and the lock
# --------------------------------------------------------------------------------------------

def test_replacing_another_runs_checkpoint_needs_overwrite(base, tmp_path, capsys):
    path = copy_of(base["checkpoint"], str(tmp_path / "run.npz"))
    for extra in (["--save", path], ["--load", path, "--save", path]):
        with pytest.raises(SystemExit) as stop:
            train(*extra, iterations=1)
        err = usage_error(capsys.readouterr().err)
        assert stop.value.code == 2 and err.startswith(
            f"--save {path}: a checkpoint is there already")
        assert err.endswith(f"give --overwrite to replace it, or --resume {path} to continue "
                            f"its run")
    assert "(the one --load reads)" in err
    assert checkpoints.read_checkpoint(path)[1]["iteration"] == 3
    assert train("--save", path, "--overwrite", iterations=1).exit_code == 0
    assert checkpoints.read_checkpoint(path)[1]["iteration"] == 1
    # Continuing its own run is no overwrite.
    assert train("--resume", path, iterations=2).exit_code == 0
    assert train("--resume", path, "--save", path, iterations=3).exit_code == 0
    assert leftovers(tmp_path) == []


def test_a_checkpoint_held_by_another_run_is_refused_at_once(base, tmp_path, capsys):
    compile_before_forking(base, tmp_path)
    path = copy_of(base["checkpoint"], str(tmp_path / "run.npz"))
    runner = Child(tiny("--resume", path, "--checkpoint-every", "0", iterations=10 ** 6,
                        quiet=False), str(tmp_path / "first.log"))
    try:
        runner.wait_for("training from iteration 3")
        with open(checkpoints.lock_path(path), encoding="utf-8") as stream:
            assert json.load(stream)["pid"] == runner.pid
        started = time.perf_counter()
        with pytest.raises(SystemExit) as stop:
            train("--resume", path, iterations=10)
        assert stop.value.code == 2 and time.perf_counter() - started < 10
        err = usage_error(capsys.readouterr().err)
        assert err.startswith(f"--save {path}: another run (pid "
                              f"{runner.pid}, started ")
        assert err.endswith(f"is writing this checkpoint; wait for it to end or stop it (its "
                            f"lock: {checkpoints.lock_path(path)})")
    finally:
        runner.send(signal.SIGKILL)
        assert runner.wait() == -signal.SIGKILL
    # Killed, it left its lock file: the next run takes it over and says so.
    assert os.path.exists(checkpoints.lock_path(path))
    result = copy_task.main(tiny("--resume", path, iterations=4, quiet=False))
    assert result.exit_code == 0
    assert f"took over the lock {checkpoints.lock_path(path)} of process {runner.pid}, which " \
           f"no longer runs" in capsys.readouterr().out
    assert leftovers(tmp_path) == []


def test_the_lock_is_exclusive_and_released(tmp_path):
    path = str(tmp_path / "run.npz")
    with checkpoints.CheckpointLock(path, "first") as first:
        assert first.notes == []
        with pytest.raises(checkpoints.CheckpointLocked) as locked:
            checkpoints.CheckpointLock(path, "second").acquire()
        assert locked.value.holder["pid"] == os.getpid()
        assert locked.value.holder["command"] == "first"
    assert not os.path.exists(checkpoints.lock_path(path))
    with checkpoints.CheckpointLock(path) as again:
        assert again.notes == []


def test_temporary_files_of_killed_writes_are_removed_and_named(base, tmp_path, capsys):
    path = copy_of(base["checkpoint"], str(tmp_path / "run.npz"))
    left = [str(tmp_path / ".run.npz.tmp-abc123"), str(tmp_path / ".run-best.json.tmp-x")]
    other = str(tmp_path / ".other.npz.tmp-abc123")  # another checkpoint's: not ours to remove
    for name in left + [other]:
        open(name, "wb").close()
    assert files.temporary_files_of(path) == left[:1]
    result = copy_task.main(tiny("--resume", path, iterations=4, quiet=False))
    assert result.exit_code == 0
    out = capsys.readouterr().out
    for name in left:
        assert not os.path.exists(name)
    assert f"removed {left[0]}, left by a write of {path} that was interrupted" in out
    assert f"removed {left[1]}, left by a write of {str(tmp_path / 'run-best.json')} that " \
           f"was interrupted" in out
    assert os.path.exists(other)


# --------------------------------------------------------------------------------------------
# Non-finite steps: never applied, never written
# --------------------------------------------------------------------------------------------

def test_a_step_whose_updates_overflow_is_not_applied(base, tmp_path, capsys):
    """Graves' RMSProp at 3e38 (finite in float32) turns a finite loss and gradient into
    parameters beyond float32's range: the step is refused as one with a NaN loss is."""
    path = str(tmp_path / "overflow.npz")
    result = train("--resume", base["path"], "--save", path, "--learning-rate", "3e38",
                   iterations=6)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert result.exit_code == 1 and result.iteration == 3
    assert err.startswith("error: training stopped at iteration 4: the loss (")
    assert "are finite, but the updated parameters or optimizer state would not be (is the " \
           "learning rate, 3e+38, too large?); the step was not applied, so the model holds " \
           f"the parameters and optimizer state after iteration 3; they are in the checkpoint " \
           f"{path}" in err
    saved = checkpoints.read_checkpoint(path)
    assert all(np.all(np.isfinite(value)) for value in saved[0].values())
    assert_same_state(saved, base["checkpoint"])
    # The model holds them too.
    for param in result.trainer.all_params:
        np.testing.assert_array_equal(param.get_value(),
                                      base["checkpoint"][0]["params/" + param.name])


def test_the_trainer_refuses_a_step_with_non_finite_updates(base):
    result = train("--load", base["path"], iterations=0)
    trainer = result.trainer
    rate = trainer.learning_rate
    before = trainer.parameter_values(), trainer.optimizer_values()
    x, y, mask = copy_task.CopyTask(size=8, max_length=5, batch_size=2, seed=5).sample_with_mask()
    trainer.learning_rate = 3e38
    step = trainer.train_step(x, y, mask, with_focus_penalty=False)
    assert np.isfinite(step.loss) and np.isfinite(step.grad_norm)
    assert not step.updates_finite and not step.finite
    for values, kept in zip((trainer.parameter_values(), trainer.optimizer_values()), before):
        for name in kept:
            np.testing.assert_array_equal(values[name], kept[name], err_msg=name)
    trainer.learning_rate = rate
    step = trainer.train_step(x, y, mask, with_focus_penalty=False)
    assert step.updates_finite and step.finite


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_saves_says_where_and_exits_non_zero(base, tmp_path, signum):
    compile_before_forking(base, tmp_path)
    path = copy_of(base["checkpoint"], str(tmp_path / "run.npz"))
    runner = Child(tiny("--resume", path, "--checkpoint-every", "0", iterations=10 ** 6,
                        quiet=False), str(tmp_path / "run.log"))
    runner.wait_for("training from iteration 3")
    time.sleep(0.5)
    runner.send(signum)
    assert runner.wait() == 128 + signum
    name = signal.Signals(signum).name
    last = runner.output().strip().splitlines()[-1]
    assert last.startswith(f"error: interrupted ({name}) after iteration ")
    iteration = int(last.split(" after iteration ")[1].split(";")[0])
    assert last == (f"error: interrupted ({name}) after iteration {iteration}; checkpoint "
                    f"written to {path}; resume with --resume {path}")
    assert iteration > 3
    saved = checkpoints.read_checkpoint(path)
    assert saved[1]["iteration"] == iteration
    assert leftovers(tmp_path) == []
    # The saved state is the one of a run that trained `iteration` iterations.
    straight = str(tmp_path / "straight.npz")
    assert train("--save", straight, "--checkpoint-every", "0", iterations=iteration).exit_code \
        == 0
    assert_same_state(saved, checkpoints.read_checkpoint(straight))


def slow_checkpoint_writes():
    """In a child: each checkpoint write stops half-way for a while, saying so."""
    real = checkpoints.atomic_write

    def atomic_write(path, write):
        def slowly(stream):
            class Slow:
                def write(self, data):
                    data = bytes(data)
                    stream.write(data[:len(data) // 2])
                    stream.flush()
                    os.write(2, f"writing {path}\n".encode())
                    time.sleep(30)
                    stream.write(data[len(data) // 2:])
            write(Slow())
        return real(path, slowly)
    checkpoints.atomic_write = atomic_write


def test_a_second_ctrl_c_while_saving_keeps_the_last_checkpoint(base, tmp_path):
    compile_before_forking(base, tmp_path)
    path = copy_of(base["checkpoint"], str(tmp_path / "run.npz"))
    runner = Child(tiny("--resume", path, "--checkpoint-every", "0", iterations=10 ** 6,
                        quiet=False), str(tmp_path / "run.log"), prepare=slow_checkpoint_writes)
    runner.wait_for("training from iteration 3")
    time.sleep(0.3)
    runner.send(signal.SIGINT)
    runner.wait_for(f"writing {path}")  # the save of the interrupt, half-way
    runner.send(signal.SIGINT)
    assert runner.wait(timeout=20) == 130
    last = runner.output().strip().splitlines()[-1]
    assert last.startswith("error: interrupted (SIGINT) after iteration ")
    assert last.endswith(f"; interrupted again while saving: stopped without saving; the "
                         f"checkpoint {path} holds iteration 3")
    # The checkpoint is the one before, whole; no temporary file or lock is left.
    assert_same_state(checkpoints.read_checkpoint(path), base["checkpoint"])
    assert leftovers(tmp_path) == []
    assert train("--resume", path, iterations=4).exit_code == 0


@pytest.fixture
def default_signal_handlers():
    """Python's own handlers while the test runs, as in an interactive process: a shell
    starts a background job with SIGINT ignored and ``nohup`` ignores SIGHUP, and the guard
    leaves an ignored signal ignored."""
    previous = {signum: signal.getsignal(signum) for signum in interrupts.HANDLED_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_a_first_signal_waits_for_the_critical_section_a_second_does_not(
        default_signal_handlers):
    announced = []
    with interrupts.InterruptGuard(announce=announced.append) as guard:
        with pytest.raises(interrupts.Interrupted) as stop:
            with guard.critical():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                finished = True  # the section ran to its end
        assert finished and stop.value.name == "SIGTERM" and not stop.value.again
        assert stop.value.exit_code == 143
        assert announced == ["SIGTERM received: stopping after the iteration in progress "
                             "(send it again to stop at once, without saving)"]
        with pytest.raises(interrupts.Interrupted) as again:
            with guard.critical():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                pytest.fail("a second signal waited for the end of the section")
        assert again.value.again and again.value.exit_code == 130
    # Outside, the handlers are the previous ones again.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_first_signal_in_a_loop_ends_it_between_iterations(default_signal_handlers):
    guard = interrupts.InterruptGuard(announce=lambda text: None)
    done = []
    with guard, pytest.raises(interrupts.Interrupted):
        for item in guard.between_iterations(range(5)):
            if item == 2:
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.05)
            done.append(item)
    assert done == [0, 1, 2]


# --------------------------------------------------------------------------------------------
# kill -9 at random moments
# --------------------------------------------------------------------------------------------

def kill_loop(directory, kills, iterations, start, seed):
    """Kill a checkpointing run (SIGKILL) ``kills`` times at random moments, resuming after
    each from whatever is on disk; then let it finish.

    ``start(argv, log)`` starts a run and returns a :class:`Child`-like object. Returns the
    counts and the final checkpoint; asserts that every kill left a whole checkpoint, never
    older than the one before.
    """
    rng = random.Random(seed)
    path = os.path.join(directory, "run.npz")
    counts = {"kills": 0, "resumes": 0, "resumes_that_worked": 0, "temporaries_left": 0,
              "copies_behind": 0}
    committed = None
    for attempt in range(kills):
        log = os.path.join(directory, f"run-{attempt}.log")
        resumed = committed is not None
        argv = tiny("--resume", path, iterations=iterations, quiet=False) if resumed \
            else tiny("--save", path, "--overwrite", iterations=iterations, quiet=False)
        runner = start(argv, log)
        time.sleep(rng.uniform(0.0, 1.5))
        runner.send(signal.SIGKILL)
        status = runner.wait()
        output = runner.output()
        assert "Traceback" not in output and "error:" not in output, output
        if resumed and "resumed " in output:  # it got as far as reading the checkpoint
            counts["resumes"] += 1
            # ... the last committed one.
            counts["resumes_that_worked"] += f"resumed {path} (iteration {committed})" in output
        if status == 0:  # finished before the kill: what the final resume should read
            committed = checkpoints.read_checkpoint(path)[1]["iteration"]
            break
        assert status == -signal.SIGKILL, output
        counts["kills"] += 1
        counts["temporaries_left"] += bool(files.temporary_files_of(path)
                                           or files.temporary_files_of(path[:-4] + ".json"))
        if not os.path.exists(path):
            continue
        arrays, document = checkpoints.read_checkpoint(path)  # never torn
        assert committed is None or document["iteration"] >= committed
        committed = document["iteration"]
        try:
            with open(path[:-4] + ".json", encoding="utf-8") as stream:
                counts["copies_behind"] += json.load(stream) != document
        except (OSError, ValueError):
            counts["copies_behind"] += 1
    final = start(tiny("--resume", path, iterations=iterations, quiet=False)
                  if committed is not None else
                  tiny("--save", path, "--overwrite", iterations=iterations, quiet=False),
                  os.path.join(directory, "final.log"))
    assert final.wait(timeout=600) == 0, final.output()
    if committed is not None:
        counts["resumes"] += 1
        counts["resumes_that_worked"] += f"resumed {path} (iteration {committed})" in \
            final.output()
    assert leftovers(directory) == []
    with open(path[:-4] + ".json", encoding="utf-8") as stream:
        assert json.load(stream) == checkpoints.read_checkpoint(path)[1]
    return counts, checkpoints.read_checkpoint(path)


def fork_run(argv, log):
    return Child(argv, log)


def check_kill_loop(base, tmp_path, kills, start, seed, iterations=40):
    compile_before_forking(base, tmp_path)
    reference = str(tmp_path / "reference.npz")
    assert train("--save", reference, "--checkpoint-every", "0",
                 iterations=iterations).exit_code == 0
    directory = str(tmp_path / "killed")
    os.mkdir(directory)
    counts, final = kill_loop(directory, kills, iterations, start, seed)
    print(f"kill loop: {counts}")
    assert counts["kills"] >= 1 and counts["resumes_that_worked"] == counts["resumes"]
    # Killed and resumed any number of times, the run is the run that never stopped.
    assert_same_state(final, checkpoints.read_checkpoint(reference))
    return counts


def test_kill_9_at_random_moments_then_resume(base, tmp_path):
    check_kill_loop(base, tmp_path, kills=4, start=fork_run, seed=1)


@pytest.mark.slow
def test_kill_9_at_many_random_moments_then_resume(base, tmp_path):
    kills = int(os.environ.get("NTM_KILL_LOOP", "100"))
    # Enough iterations that no run ends before its kill (about 5 an attempt).
    counts = check_kill_loop(base, tmp_path, kills=kills, start=fork_run, seed=2,
                             iterations=40 + 10 * kills)
    assert counts["kills"] == kills


class Command(Child):
    """The copy script as a command in a new process."""

    def __init__(self, argv, log):
        self.log = log
        with open(log, "w", encoding="utf-8") as stream:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join("examples", "copy_task.py")] + argv, cwd=REPO,
                stdout=stream, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        self.status = None
        RUNNING.append(self)

    def poll(self):
        if self.status is None:
            self.status = self.process.poll()
        return self.status


def command_run(argv, log):
    command = Command(argv, log)
    # Kill it in training, not while Python starts: wait until it trains (or ends).
    deadline = time.monotonic() + 300
    while "training from iteration" not in command.output() and command.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return command


@pytest.mark.slow
def test_kill_9_of_the_script_at_random_moments_then_resume(base, tmp_path):
    kills = int(os.environ.get("NTM_KILL_LOOP_COMMANDS", "10"))
    counts = check_kill_loop(base, tmp_path, kills=kills, start=command_run, seed=3,
                             iterations=40 + 10 * kills)
    assert counts["kills"] == kills
