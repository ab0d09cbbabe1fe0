"""Train an NTM to write a sequence of random 8-bit vectors back last vector first.

The model and options are those of the copy task (``examples/copy_task.py``): a dense controller
of 100 units, a 128 x 20 memory, one write and one read head with 3 shifts, Graves' RMSProp
(learning rate 3e-4). Training uses lengths 1 to 20; --eval-lengths sets the sequence length.

Example::

    python examples/reversed_copy_task.py --iterations 20000 --save reversed.npz \\
        --eval-lengths 20,40,80 --plot reversed.png --plot-params length=30

Task options and defaults: --size 8 (bits per vector), --min-length 1, --max-length 20.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples import copy_task  # noqa: E402
from utils.generators import ReversedCopyTask  # noqa: E402

__all__ = ["make_parser", "main"]


def make_parser():
    """The command line, with the copy model's defaults."""
    return copy_task.make_parser(__doc__)


def main(argv=None):
    """Run the reversed copy task's command line; returns a :class:`utils.training.RunResult`."""
    return copy_task.run_copy_like(ReversedCopyTask, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main().exit_code)
