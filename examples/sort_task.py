"""Train an NTM to write a sequence of random 8-bit vectors back in ascending order.

Each vector is read as a binary number, most significant bit first. Sorting is harder than
copying, so training uses shorter sequences, lengths 1 to 10; --eval-lengths sets the sequence
length.

The defaults train the shipped model (``models/sort.npz``): the copy task's dense controller
of 100 units and 128 x 20 memory, with four read and four write heads, Graves' RMSProp in
batches of 16 at 5e-4 for 40,000 batches, then at 2e-4 (``--learning-rate-schedule``) to
70,000. With the copy task's one read and one write head (``--num-reads 1 --num-writes 1``) it
learns far less. The results are in docs/tasks/sort.md. A --learning-rate given without
--learning-rate-schedule trains at that rate
throughout.

Example::

    python examples/sort_task.py --save sort.npz --eval-lengths 5,10,20 --eval-batches 20 \\
        --plot sort.png --plot-params length=10

Task options and defaults: --size 8 (bits per vector), --min-length 1, --max-length 10.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples import copy_task  # noqa: E402
from utils.generators import SortTask  # noqa: E402

__all__ = ["SORT_TRAINING_DEFAULTS", "make_parser", "main"]

#: Training defaults: the shipped model's (docs/tasks/sort.md). Four heads of each kind learn
#: the task far further than the copy task's one of each, in batches of 16 at 5e-4; a lower
#: rate after 40,000 batches takes the bit errors down further.
SORT_TRAINING_DEFAULTS = dict(
    num_reads=4, num_writes=4, batch_size=16, learning_rate=5e-4,
    learning_rate_schedule=[[40000, 2e-4]], iterations=70000, validate_every=500,
    log_every=500, checkpoint_every=1000)


def make_parser():
    """The command line, with the copy model's network, shorter sequences and the sort
    model's training defaults."""
    parser = copy_task.make_parser(__doc__)
    parser.set_defaults(max_length=10, plot_params="length=10", **SORT_TRAINING_DEFAULTS)
    return parser


def main(argv=None):
    """Run the sort task's command line; returns a :class:`utils.training.RunResult`."""
    return copy_task.run_copy_like(SortTask, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main().exit_code)
