"""Train an NTM to write a sequence of random 8-bit vectors back in ascending order.

Each vector is read as a binary number, most significant bit first. The model is the copy
task's (``examples/copy_task.py``): a dense controller of 100 units, a 128 x 20 memory, one write
and one read head with 3 shifts, Graves' RMSProp (learning rate 3e-4). Sorting is harder than
copying, so training uses shorter sequences, lengths 1 to 10, for 30,000 iterations;
--eval-lengths sets the sequence length.

Example::

    python examples/sort_task.py --iterations 30000 --save sort.npz --eval-lengths 5,10,20 \\
        --plot sort.png --plot-params length=10

The shipped model, ``models/sort.npz``, learned far more with four read and four write heads
in batches of 16 (``--num-reads 4 --num-writes 4 --batch-size 16 --learning-rate 5e-4`` for
40,000 batches, then 30,000 at 2e-4): 0.76 bit errors per sequence of length 10 (README).

Task options and defaults: --size 8 (bits per vector), --min-length 1, --max-length 10.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples import copy_task  # noqa: E402
from utils.generators import SortTask  # noqa: E402

__all__ = ["make_parser", "main"]


def make_parser():
    """The command line, with the copy model's defaults and shorter sequences."""
    parser = copy_task.make_parser(__doc__)
    parser.set_defaults(max_length=10, iterations=30000, plot_params="length=10")
    return parser


def main(argv=None):
    """Run the sort task's command line; returns a :class:`utils.training.RunResult`."""
    return copy_task.run_copy_like(SortTask, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main().exit_code)
