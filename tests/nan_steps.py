"""A training step made non-finite on purpose, to test the training loop's guard.

The batch of the chosen step gets NaN inputs, so that the step's loss, gradients and updates
are NaN all through the compiled training function, whose guard must then leave the
parameters and the optimizer state as they were. Installed by the tests in their process
(:func:`poison_step`), or around an example script run as a command::

    python -m tests.nan_steps ITERATION examples/copy_task.py [OPTIONS...]
"""
import runpy
import sys

import numpy as np

from utils.training import Trainer

__all__ = ["poison_step"]


def poison_step(step):
    """Give the ``step``-th training step taken from now on (counted from 1, by any trainer)
    a batch of NaN inputs.

    Returns
    -------
    callable
        Undoes it.
    """
    real = Trainer.train_step
    taken = [0]

    def train_step(self, x, y, mask, with_focus_penalty=True):
        taken[0] += 1
        if taken[0] == step:
            x = np.full_like(x, np.nan)
        return real(self, x, y, mask, with_focus_penalty)

    Trainer.train_step = train_step

    def undo():
        Trainer.train_step = real
    return undo


if __name__ == "__main__":
    poison_step(int(sys.argv[1]))
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
