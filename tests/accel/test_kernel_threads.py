"""ntm.accel.kernel_threads: the C kernels split the batch between threads with the same
results; the automatic setting keeps calls of a training step's size on one thread, a set
number of threads is taken."""
import json
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytest

from ntm.accel import kernel_threads
from ntm.accel.memory_kernels import MemoryRead

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Computes every kernel and its gradient at batch 16 on the threads given in argv[1] and
# prints them as JSON lists of float32 bit patterns.
WORKER = r"""
import json, sys
import numpy as np
import pytensor, pytensor.tensor as pt
from ntm.accel import kernel_threads
from ntm.accel.addressing_kernels import Addressing
from ntm.accel.memory_kernels import CosineSimilarity, MemoryRead, MemoryWrite

rng = np.random.RandomState(0)
B, H, N, W, S = 16, 2, 128, 20, 3
f32 = lambda a: np.asarray(a, dtype="float32")
values = dict(
    keys=f32(rng.normal(size=(B, H, W))), memory=f32(rng.normal(size=(B, N, W))),
    weights=f32(rng.dirichlet(np.ones(N), (B, H))), erase=f32(rng.uniform(size=(B, H, W))),
    add=f32(rng.normal(size=(B, H, W))), beta=f32(rng.uniform(0.5, 5, (B, H))),
    gate=f32(rng.uniform(size=(B, H))), shift=f32(rng.dirichlet(np.ones(S), (B, H))),
    gamma=f32(rng.uniform(1, 3, (B, H))))
v = {name: pt.tensor(name, dtype="float32", shape=(None,) * value.ndim)
     for name, value in values.items()}
similarity = CosineSimilarity()(v["keys"], v["memory"])
weights = Addressing()(similarity, v["beta"], v["gate"], v["shift"], v["gamma"], v["weights"])
written = MemoryWrite()(v["memory"], weights, v["erase"], v["add"])
read = MemoryRead()(weights, written)
cost = (read * f32(rng.normal(size=(B, H, W)))).sum() + (written ** 2).sum()
grads = pytensor.grad(cost, list(v.values()))
function = pytensor.function(list(v.values()), [similarity, weights, written, read] + grads,
                             mode="CVM")
kernel_threads.set_threads(int(sys.argv[1]))
results = function(*values.values())
assert kernel_threads.last_call_threads() == int(sys.argv[1]), kernel_threads.last_call_threads()
print(json.dumps([np.asarray(r, dtype="float32").view("uint32").ravel().tolist()
                  for r in results]))
"""


def run_worker(threads):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    finished = subprocess.run([sys.executable, "-c", WORKER, str(threads)], capture_output=True,
                              text=True,
                              cwd=ROOT, env=env, timeout=600)
    assert finished.returncode == 0, finished.stderr
    return [np.array(bits, dtype=np.uint32) for bits in
            json.loads(finished.stdout.strip().splitlines()[-1])]


def test_results_do_not_depend_on_the_number_of_threads():
    if not kernel_threads.openmp_flags():
        pytest.skip("no OpenMP in this C++ compiler: the kernels run on one thread")
    one, two = run_worker(1), run_worker(2)
    assert len(one) == len(two) == 4 + 9
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)  # bit for bit
    assert any(np.any(a != 0) for a in one)


def test_a_split_batch_matches_numpy():
    """Split between two threads: the C kernel against NumPy's matmul."""
    rng = np.random.RandomState(1)
    weights = rng.dirichlet(np.ones(128), (16, 2))
    memory = rng.normal(size=(16, 128, 20))
    w, m = pytensor.tensor.tensor3("w"), pytensor.tensor.tensor3("m")
    read = pytensor.function([w, m], MemoryRead()(w, m), mode="CVM")
    with kernel_threads.threads(2):
        result = read(weights, memory)
        if kernel_threads.openmp_flags():
            assert kernel_threads.last_call_threads() == 2
    np.testing.assert_allclose(result, np.matmul(weights, memory), rtol=1e-12)


# Prints the threads MemoryRead's calls could take in the automatic setting, for a batch of
# 16 (a training step's) and for one of more than 2 * AUTO_PARALLEL_WORK values, and with
# three threads set.
AUTOMATIC = r"""
import json
import numpy as np
import pytensor, pytensor.tensor as pt
from ntm.accel import kernel_threads
from ntm.accel.memory_kernels import MemoryRead

w, m = pt.tensor3("w"), pt.tensor3("m")
read = pytensor.function([w, m], MemoryRead()(w, m), mode="CVM")
seen = []
large = 2 * kernel_threads.AUTO_PARALLEL_WORK // (128 * 20) + 1
for batch, setting in ((16, None), (large, None), (16, 3), (2, 3), (16, None)):
    kernel_threads.set_threads(setting)
    read(np.ones((batch, 1, 128)), np.ones((batch, 128, 20)))
    seen.append(kernel_threads.last_call_threads())
print(json.dumps(seen))
"""


def test_the_automatic_setting_splits_only_large_calls():
    if not kernel_threads.openmp_flags():
        pytest.skip("no OpenMP in this C++ compiler: the kernels run on one thread")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}
    finished = subprocess.run([sys.executable, "-c", AUTOMATIC], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=600)
    assert finished.returncode == 0, finished.stderr
    # batch 16: one thread although OpenMP has two; a large call: two; set: three (at most
    # one per item); automatic again: one
    assert json.loads(finished.stdout.strip().splitlines()[-1]) == [1, 2, 3, 2, 1]


def test_the_setting_is_checked_and_restored():
    assert kernel_threads.get_threads() is None  # automatic by default
    with kernel_threads.threads(3):
        assert kernel_threads.get_threads() == 3
        assert kernel_threads.set_threads(1) == 3
        assert kernel_threads.get_threads() == 1
    assert kernel_threads.get_threads() is None
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_threads: count must be"):
            kernel_threads.set_threads(bad)
    assert kernel_threads.get_threads() is None


def test_the_kernels_are_compiled_with_the_openmp_flags():
    from ntm.accel.memory_kernels import CosineSimilarity

    flags = kernel_threads.openmp_flags()
    if os.path.basename(pytensor.config.cxx).startswith("g++"):
        assert flags == ["-fopenmp"]  # GCC has OpenMP
    args = CosineSimilarity().c_compile_args()
    assert args[len(args) - len(flags):] == flags  # the flags come last, or there are none


def test_openmp_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(kernel_threads, "OPENMP_ENABLED", False)
    assert kernel_threads.openmp_flags() == []


def test_the_compilers_answer_is_kept_in_the_compile_directory(tmp_path):
    answer = kernel_threads._compiler_supports_openmp(str(tmp_path))
    (kept,) = tmp_path.glob("ntm-openmp-*")
    assert kept.read_text() == ("1" if answer else "0")
    kept.write_text("0")  # the next process reads the answer instead of compiling
    assert kernel_threads._compiler_supports_openmp(str(tmp_path)) is False
    assert [p.name for p in tmp_path.iterdir()] == [kept.name]  # no temporary file left


# --- ThreadChoice: the setting of a loop's steps, chosen by timing the steps ---------------

class StepCosts:
    """A fake clock whose steps cost, per unit of work, what ``costs`` gives for the thread
    setting in force when the step ends."""

    def __init__(self, costs):
        self.costs, self.now, self.work = dict(costs), 0.0, 1.0

    def __call__(self):
        return self.now

    def run(self, choice, work=1.0):
        with choice.step(work=work) as setting:
            assert setting == kernel_threads.get_threads()
            self.now += self.costs[kernel_threads.get_threads()] * work
        return setting


@pytest.fixture
def automatic():
    previous = kernel_threads.set_threads(None)
    yield
    kernel_threads.set_threads(previous)


def test_a_choice_tries_the_settings_in_turns_and_keeps_the_fastest(automatic):
    clock = StepCosts({None: 3.0, 4: 1.0})
    choice = kernel_threads.ThreadChoice(settings=[None, 4], trial_steps=3, retry_every=5,
                                         clock=clock)
    # One step each not timed (it pays for starting threads), then three each, in turns.
    clock.costs[4] = 50.0
    taken = [clock.run(choice)]
    clock.costs[4] = 1.0
    taken += [clock.run(choice, work=w) for w in (1, 2, 3, 1, 2, 3, 1)]
    assert taken == [None, 4] * 4
    assert choice.trials == 1 and choice.chosen == 4
    assert choice.measured == {None: 3.0, 4: 1.0}  # seconds per unit of work
    assert [clock.run(choice) for _ in range(5)] == [4] * 5
    assert kernel_threads.get_threads() is None  # each step's setting is undone after it
    # The load changes: the next trial finds the automatic setting faster and takes it.
    clock.costs = {None: 1.0, 4: 2.0}
    assert [clock.run(choice) for _ in range(8)] == [None, 4] * 4
    assert choice.trials == 2 and choice.chosen is None
    assert "kernel threads: automatic" in choice.describe("time step")
    assert "per time step: automatic 1e+03 ms, 4 2e+03 ms" in choice.describe("time step")


def test_a_trial_compares_medians_so_that_one_slow_step_does_not_decide(automatic):
    clock = StepCosts({None: 2.0, 2: 1.0})
    choice = kernel_threads.ThreadChoice(settings=[None, 2], trial_steps=5, clock=clock)
    for index in range(12):
        clock.costs[2] = 100.0 if index == 5 else 1.0  # one descheduled step of 2 threads
        clock.run(choice)
    assert choice.chosen == 2 and choice.measured[2] == 1.0


def test_a_setting_far_slower_than_another_is_dropped_from_the_trial(automatic):
    clock = StepCosts({None: 1.0, 2: 10.0})  # two threads waiting for a busy core
    choice = kernel_threads.ThreadChoice(settings=[None, 2], trial_steps=5, clock=clock)
    taken = [clock.run(choice) for _ in range(8)]
    assert taken == [None, 2, None, 2, None, None, None, None] and not choice.trying
    assert choice.chosen is None and choice.measured == {None: 1.0, 2: 10.0}


def test_a_chosen_setting_that_slows_down_is_tried_again_at_once(automatic):
    clock = StepCosts({None: 2.0, 2: 1.0})
    choice = kernel_threads.ThreadChoice(settings=[None, 2], trial_steps=2, retry_every=1000,
                                         clock=clock)
    assert [clock.run(choice) for _ in range(6)] == [None, 2] * 3
    assert choice.chosen == 2
    clock.costs[2] = 1.4  # a little slower: kept
    assert [clock.run(choice) for _ in range(10)] == [2] * 10 and not choice.trying
    clock.costs[2] = 8.0  # another process took the other core
    # The median of the last 5 steps is 8 after 3 of them.
    assert [clock.run(choice) for _ in range(3)] == [2] * 3 and choice.trying
    assert [clock.run(choice) for _ in range(5)] == [None, 2, None, 2, None]
    assert choice.trials == 2 and choice.chosen is None and not choice.trying


def test_a_step_that_fails_is_not_counted_and_the_setting_is_restored(automatic):
    clock = StepCosts({None: 1.0, 2: 5.0})
    choice = kernel_threads.ThreadChoice(settings=[None, 2], trial_steps=1, clock=clock)
    with pytest.raises(RuntimeError):
        with choice.step():
            raise RuntimeError("step failed")
    assert kernel_threads.get_threads() is None and choice.trying
    assert [clock.run(choice) for _ in range(4)] == [None, 2, None, 2]
    assert choice.chosen is None


def test_the_users_setting_is_kept_and_nothing_is_timed(automatic):
    with kernel_threads.threads(3):
        clock = StepCosts({3: 1.0})
        choice = kernel_threads.ThreadChoice(clock=clock)
        assert choice.settings == (3,) and not choice.trying
        assert [clock.run(choice) for _ in range(20)] == [3] * 20
        assert choice.trials == 0 and choice.describe() == "kernel threads: 3"


def test_the_default_settings_are_automatic_and_every_available_thread(automatic, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    if kernel_threads.available_threads() == 1:  # built without OpenMP or a C++ compiler
        assert kernel_threads.ThreadChoice().settings == (None,)
        return
    assert kernel_threads.available_threads() == 3
    assert kernel_threads.ThreadChoice().settings == (None, 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    choice = kernel_threads.ThreadChoice()
    assert choice.settings == (None,) and not choice.trying  # nothing to compare
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert kernel_threads.available_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("arguments, message", [
    ({"trial_steps": 0}, "trial_steps"), ({"retry_every": 0}, "retry_every"),
    ({"settings": [None, 0]}, "settings"), ({"settings": []}, "settings"),
    ({"settings": [True]}, "settings")])
def test_a_choice_checks_its_arguments(arguments, message, automatic):
    with pytest.raises(ValueError, match=message):
        kernel_threads.ThreadChoice(**arguments)


def test_a_step_needs_positive_work(automatic):
    with pytest.raises(ValueError, match="work"):
        with kernel_threads.ThreadChoice().step(work=0):
            pass
