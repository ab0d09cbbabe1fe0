"""Train an NTM on the repeat copy task: read a sequence and a count, write it that many times.

The sequence is 1 to 10 random 8-bit vectors, the count 1 to 10 (the paper's ranges), given on
its own input channel normalised to zero mean and unit variance (``--unary`` gives it as that
many steps instead); the model also signals the end of its output on an extra channel. The model
is the copy model: a dense controller of 100 units, a 128 x 20 memory, one write and one read
head with 3 shifts, Graves' RMSProp (learning rate 3e-4), for 40,000 iterations. --eval-lengths
sets the number of repeats, to test generalisation to more repeats than seen in training.

Example::

    python examples/repeat_copy_task.py --iterations 40000 --save repeat_copy.npz \\
        --eval-lengths 5,10,15,20 --plot repeat_copy.png --plot-params length=5,repeats=12

The shipped model (``models/repeat_copy.npz``) reads the count as steps; it was trained with
``--unary --batch-size 4 --no-learn-memory-init --learning-rate 3e-4 --iterations 12500 --seed
1`` (docs/tasks/repeat_copy.md has its results).

Task options and defaults: --size 8, --min-length 1, --max-length 10, --min-repeats 1,
--max-repeats 10, --no-unary, --end-marker.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import RepeatCopyTask  # noqa: E402
from utils.visualization import delimiter_marker  # noqa: E402

__all__ = ["TASK_OPTIONS", "make_parser", "main"]

TASK_OPTIONS = [
    training.TaskOption("size", int, 8, "bits per vector", affects_model=True),
    training.TaskOption("min-length", int, 1, "shortest sequence"),
    training.TaskOption("max-length", int, 10, "longest sequence"),
    training.TaskOption("min-repeats", int, 1, "fewest repeats"),
    training.TaskOption("max-repeats", int, 10, "most repeats"),
    # A model reads its count one way only, so --load and --resume take it from the checkpoint.
    training.TaskOption("unary", bool, False,
                        "give the count as that many input steps instead of one number",
                        affects_model=True),
    training.TaskOption("end-marker", bool, True,
                        "an extra output channel marks the end of the output",
                        affects_model=True),
]


def make_task(options, **kwargs):
    """The repeat copy task of the command-line options."""
    return RepeatCopyTask(size=options.size, min_length=options.min_length,
                          max_length=options.max_length, min_repeats=options.min_repeats,
                          max_repeats=options.max_repeats, unary=options.unary,
                          end_marker=options.end_marker, **kwargs)


def make_parser():
    """The command line, with the repeat copy model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="repeats")
    parser.set_defaults(optimizer="graves_rmsprop", controller="dense", num_units=100,
                        memory_shape=[128, 20], iterations=40000)
    return parser


def main(argv=None):
    """Run the repeat copy task's command line; returns a :class:`utils.training.RunResult`."""
    # The delimiter is the channel after the bits, second from last.
    return training.run(make_parser(), make_task, argv,
                        markers=lambda task: [delimiter_marker(channel=task.size)])


if __name__ == "__main__":
    sys.exit(main().exit_code)
