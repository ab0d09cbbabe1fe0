"""Train an NTM on dynamic n-grams: predict each next bit of a sequence from a random 6-gram model.

Each sequence of 200 bits comes from its own lookup table of the probability of a 1 after each
5-bit context (paper, section 4.4), so the model must estimate the table as it reads. The
evaluation table also gives the bits per sequence of the Bayes-optimal predictor, the floor the
model can approach. The model is a dense controller of 100 units, a 128 x 20 memory, one write
and one read head with 3 shifts, trained with Adam (learning rate 1e-3) in batches of 16 for
49,000 batches (784,000 sequences), then resumed at a lower rate (``--resume PATH.npz
--learning-rate 3e-4 --iterations 75000``): the shipped model, models/dynamic_ngrams.npz, whose
commands and results are in docs/tasks/dynamic_ngrams.md. --eval-lengths sets the sequence
length.

Example::

    python examples/dynamic_ngrams_task.py --save ngrams.npz --eval-lengths 100,200,400
    python examples/dynamic_ngrams_task.py --resume ngrams.npz --learning-rate 3e-4 \\
        --iterations 75000 --plot ngrams.png

Task options and defaults: --n 6 (order of the n-gram model), --length 200 (bits per sequence).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import DynamicNGramsTask  # noqa: E402

__all__ = ["TASK_OPTIONS", "make_parser", "main"]

TASK_OPTIONS = [
    training.TaskOption("n", int, 6, "order of the n-gram model (contexts of n-1 bits)"),
    training.TaskOption("length", int, 200, "bits per training sequence"),
]


def make_task(options, **kwargs):
    """The dynamic n-grams task of the command-line options."""
    return DynamicNGramsTask(n=options.n, length=options.length, **kwargs)


def optimal_bits(task, x, y, mask):
    """Bits per sequence of the Bayes-optimal predictor on a batch."""
    return task.optimal_bits_per_sequence(x, y, mask, reduce="none")


def make_parser():
    """The command line, with the dynamic n-grams model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="length")
    parser.set_defaults(optimizer="adam", controller="dense", num_units=100,
                        memory_shape=[128, 20], batch_size=16, iterations=49000,
                        log_every=500)
    return parser


def main(argv=None):
    """Run the dynamic n-grams command line; returns a :class:`utils.training.RunResult`."""
    return training.run(make_parser(), make_task, argv, reference=optimal_bits)


if __name__ == "__main__":
    sys.exit(main().exit_code)
