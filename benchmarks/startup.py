"""Time the copy example's start-up: seconds from this interpreter's start to the first training
step, and to the end of the run.

It runs ``examples/copy_task.py --iterations 1 --quiet`` (plus any options given) in this
process and notes when the training loop's first step begins. For a machine's first run, point
PyTensor at an empty compile directory::

    PYTENSOR_FLAGS=base_compiledir=$(mktemp -d) python benchmarks/startup.py
    PYTENSOR_FLAGS=base_compiledir=<same dir> python benchmarks/startup.py   # run again
    NTM_PARALLEL_COMPILE=1 PYTENSOR_FLAGS=base_compiledir=$(mktemp -d) python benchmarks/startup.py
"""
import time

STARTED = time.perf_counter()

import os  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from examples import copy_task  # noqa: E402
from utils import training  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    first_step = []
    train_step = training.Trainer.train_step

    def timed_train_step(self, *args, **kwargs):
        if not first_step:
            first_step.append(time.perf_counter() - STARTED)
        return train_step(self, *args, **kwargs)

    training.Trainer.train_step = timed_train_step
    try:
        result = copy_task.main(["--iterations", "1", "--quiet"] + argv)
    finally:
        training.Trainer.train_step = train_step
    total = time.perf_counter() - STARTED
    print(f"first training step after {first_step[0]:.1f} s; run finished after {total:.1f} s"
          if first_step else f"no training step; run finished after {total:.1f} s")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
