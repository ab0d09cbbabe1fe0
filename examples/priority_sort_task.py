"""Train an NTM on priority sort: read vectors with priorities, write the highest ones in order.

The input is 20 random 8-bit vectors, each with a priority drawn from U[-1, 1]; the target is
the 16 of highest priority, highest first (the paper's settings). The model is a dense
controller of 100 units, a 128 x 20 memory, one write and one read head with 3 shifts, Graves'
RMSProp (learning rate 3e-4), for 20,000 iterations. --eval-lengths sets the number of input
vectors; the number to write back stays --num-sorted, or all of them when there are fewer.

These defaults do not learn the task. The shipped model (``models/priority_sort.npz``) has four
read and four write heads that shift by up to two locations a step (``--num-reads 4
--num-writes 4 --num-shifts 5``), trained in batches of 16 at 5e-4 for 24,000 batches, then at
lower learning rates (``--learning-rate-schedule``; README, Results, for the command): two
write heads share the range of priorities, writing each vector at a location set by its
priority, and a read head walks those locations in order, stepping over empty ones. With
one-location shifts the priorities are packed more tightly and close ones are written over
each other more often.

Example::

    python examples/priority_sort_task.py --iterations 20000 --save priority_sort.npz \\
        --eval-lengths 10,20,30 --plot priority_sort.png

Task options and defaults: --size 8 (bits per vector), --num-items 20, --num-sorted 16.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import PrioritySortTask  # noqa: E402
from utils.visualization import delimiter_marker  # noqa: E402

__all__ = ["TASK_OPTIONS", "make_parser", "main"]

TASK_OPTIONS = [
    training.TaskOption("size", int, 8, "bits per vector", affects_model=True),
    training.TaskOption("num-items", int, 20, "vectors in the input"),
    training.TaskOption("num-sorted", int, 16, "highest-priority vectors to write back"),
]


def make_task(options, **kwargs):
    """The priority sort task of the command-line options."""
    return PrioritySortTask(size=options.size, num_items=options.num_items,
                            num_sorted=options.num_sorted, **kwargs)


def eval_params(num_items, task):
    """Episode parameters for ``num_items`` input vectors: write back at most all of them."""
    return {"num_items": num_items, "num_sorted": min(task.num_sorted, num_items)}


def make_parser():
    """The command line, with the priority sort model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="num_items")
    parser.set_defaults(optimizer="graves_rmsprop", controller="dense", num_units=100,
                        memory_shape=[128, 20], iterations=20000)
    return parser


def main(argv=None):
    """Run the priority sort command line; returns a :class:`utils.training.RunResult`."""
    return training.run(make_parser(), make_task, argv, eval_params=eval_params,
                        markers=lambda task: [delimiter_marker()])


if __name__ == "__main__":
    sys.exit(main().exit_code)
