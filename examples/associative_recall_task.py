"""Train an NTM on associative recall: after a list of items, given one, return the next one.

An item is 3 random 6-bit vectors; a list holds 2 to 6 items (the paper's settings). The model
is a dense controller of 100 units, a 128 x 20 memory, one write and one read head with 3
shifts, Adam (learning rate 1e-3), for 30,000 iterations; the results are in
docs/tasks/associative_recall.md. --eval-lengths sets the number of items in the list, to test
lists longer than in training.

Example::

    python examples/associative_recall_task.py --iterations 30000 --save recall.npz \\
        --eval-lengths 6,8,12,16 --plot recall.png --plot-params num_items=8

Task options and defaults: --size 6 (bits per vector), --item-length 3 (vectors per item),
--min-items 2, --max-items 6.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import AssociativeRecallTask  # noqa: E402
from utils.visualization import delimiter_marker  # noqa: E402

__all__ = ["TASK_OPTIONS", "make_parser", "main"]

TASK_OPTIONS = [
    training.TaskOption("size", int, 6, "bits per vector", affects_model=True),
    training.TaskOption("item-length", int, 3, "vectors per item"),
    training.TaskOption("min-items", int, 2, "fewest items in a list"),
    training.TaskOption("max-items", int, 6, "most items in a list"),
]


def make_task(options, **kwargs):
    """The associative recall task of the command-line options."""
    return AssociativeRecallTask(size=options.size, item_length=options.item_length,
                                 min_num_items=options.min_items,
                                 max_num_items=options.max_items, **kwargs)


def make_parser():
    """The command line, with the associative recall model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="num_items")
    parser.set_defaults(optimizer="adam", controller="dense", num_units=100,
                        memory_shape=[128, 20], iterations=30000)
    return parser


def main(argv=None):
    """Run the associative recall command line; returns a :class:`utils.training.RunResult`."""
    # The query delimiter (last channel) first marks where the query starts.
    return training.run(make_parser(), make_task, argv,
                        markers=lambda task: [delimiter_marker()])


if __name__ == "__main__":
    sys.exit(main().exit_code)
