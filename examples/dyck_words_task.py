"""Train an NTM to tell, after each bracket, whether the brackets so far are well formed.

A sequence is 1 to 10 pairs of brackets, half of the sequences Dyck words (well-formed) and half
not, though every sequence has as many opening as closing brackets; the target at each step is
whether the prefix read so far is a Dyck word. The model is a dense controller of 100 units, a
128 x 20 memory, one write and one read head with 3 shifts, Graves' RMSProp (learning rate
3e-4), for 20,000 iterations. --eval-lengths sets the number of bracket pairs.

Example::

    python examples/dyck_words_task.py --iterations 20000 --save dyck.npz \\
        --eval-lengths 10,20,40 --plot dyck.png --plot-params num_pairs=12

Task options and defaults: --min-pairs 1, --max-pairs 10, --positive-fraction 0.5,
--no-only-final.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import DyckWordsTask  # noqa: E402

__all__ = ["TASK_OPTIONS", "make_parser", "main"]

TASK_OPTIONS = [
    training.TaskOption("min-pairs", int, 1, "fewest bracket pairs"),
    training.TaskOption("max-pairs", int, 10, "most bracket pairs"),
    training.TaskOption("positive-fraction", float, 0.5, "fraction of well-formed sequences"),
    training.TaskOption("only-final", bool, False,
                        "score only the last step (the whole word's label)"),
]


def make_task(options, **kwargs):
    """The Dyck words task of the command-line options."""
    return DyckWordsTask(min_pairs=options.min_pairs, max_pairs=options.max_pairs,
                         positive_fraction=options.positive_fraction,
                         only_final=options.only_final, **kwargs)


def make_parser():
    """The command line, with the Dyck words model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="num_pairs")
    parser.set_defaults(optimizer="graves_rmsprop", controller="dense", num_units=100,
                        memory_shape=[128, 20], iterations=20000)
    return parser


def main(argv=None):
    """Run the Dyck words command line; returns a :class:`utils.training.RunResult`."""
    return training.run(make_parser(), make_task, argv)


if __name__ == "__main__":
    sys.exit(main().exit_code)
