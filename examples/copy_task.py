"""Train an NTM on the copy task: read a sequence of random 8-bit vectors, then write it back.

The model is NTM-Lasagne's copy model: a dense controller of 100 units, a 128 x 20 memory (its
initial state kept at a small constant), one write and one read head with 3 shifts, and a
sigmoid output layer, trained with Graves' RMSProp (learning rate 5e-4), the gradients' total
norm clipped to 10 and gradient spikes clipped at 5 times the running average norm
(``--clip-spikes 5``), on batches of 16 sequences for 3,000 batches (48,000 sequences): the
first 1,500 on the loss alone, the last 1,500 with the focus penalty at 0.1
(``--focus-penalty 0.1 --focus-penalty-after 1500``), which pulls the heads onto one location
where they have nothing to do (the read head during the input, the write head during the
output). Training uses lengths 1 to 20; --eval-lengths sets the sequence length, to test how
far the copy generalises. Runs whose idle heads stay on one location generalise far beyond
the training lengths (``benchmarks/error_analysis.py copy`` measures it); the focus penalty
pulls them there, but from the start it costs convergence, hence the second phase. Spike
clipping keeps a run from falling back to chance on one large gradient. The runs over many
seeds, and the other settings tried, are in docs/tasks/copy.md.

The memory's size is not a dimension of the model's parameters (its initial memory and
weightings are constants): with --load, --memory-shape N 20 runs the trained model with N
locations, and it copies sequences of up to N - 1 vectors (docs/tasks/copy.md).

Example::

    python examples/copy_task.py --save copy.npz --log copy.csv \\
        --eval-lengths 20,40,80,120 --plot copy.png --plot-params length=40
    python examples/copy_task.py --load copy.npz --iterations 0 --memory-shape 1040 20 \\
        --eval-lengths 150,500,1000

Task options and defaults: --size 8 (bits per vector), --min-length 1, --max-length 20.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import CopyTask  # noqa: E402
from utils.visualization import delimiter_marker  # noqa: E402

__all__ = ["TASK_OPTIONS", "COPY_TRAINING_DEFAULTS", "build_model", "copy_task_options",
           "make_copy_like_task", "make_parser", "run_copy_like", "main"]


def copy_task_options(max_length=20):
    """The options of the copy task and its variants (reversed, upside-down, sorted copy).

    Parameters
    ----------
    max_length : int
        Default of ``--max-length``.

    Returns
    -------
    list of training.TaskOption
    """
    return [
        training.TaskOption("size", int, 8, "bits per vector", affects_model=True),
        training.TaskOption("min-length", int, 1, "shortest training sequence"),
        training.TaskOption("max-length", int, max_length, "longest training sequence"),
    ]


def make_copy_like_task(task_class):
    """A ``make_task`` for :func:`utils.training.run` building ``task_class`` from the options
    of :func:`copy_task_options`."""
    def make_task(options, **kwargs):
        return task_class(size=options.size, min_length=options.min_length,
                          max_length=options.max_length, **kwargs)
    return make_task


TASK_OPTIONS = copy_task_options()


def build_model(size, num_units, memory_shape, num_shifts=3):
    """The copy model for ``size``-bit vectors; returns ``(l_input, l_ntm, l_output)``."""
    model = training.build_ntm(size + 1, size, controller="dense", num_units=num_units,
                               memory_shape=memory_shape, num_shifts=num_shifts)
    return model.l_input, model.l_ntm, model.l_output


#: Training defaults of the copy task itself (the other copy-like tasks keep one sequence at a
#: time for 6,000 sequences, a learned M_0, Graves' RMSProp at 3e-4, no spike clipping and no
#: focus penalty): batches of 16, a fixed M_0 and a learning rate of 5e-4 made most seeds
#: learn the task within 15,000 sequences, and clipping gradient spikes at 5 more of them;
#: 1,500 batches more with the focus penalty at 0.1 pull the heads that have nothing to do
#: onto one location, which is what the runs that copy far longer sequences have
#: (docs/tasks/copy.md).
COPY_TRAINING_DEFAULTS = dict(batch_size=16, iterations=3000, learning_rate=5e-4,
                              learn_memory_init=False, validate_every=125, log_every=25,
                              clip_spikes=5.0, focus_penalty=0.1, focus_penalty_after=1500)


def make_parser(description=__doc__, **defaults):
    """The command line of a copy-like task, with the copy model's defaults (``defaults``
    overrides any of them)."""
    parser = training.make_parser(description, TASK_OPTIONS, eval_param="length")
    parser.set_defaults(optimizer="graves_rmsprop", controller="dense", num_units=100,
                        memory_shape=[128, 20], num_reads=1, num_writes=1, num_shifts=3,
                        iterations=6000, plot_params="length=40")
    parser.set_defaults(**defaults)
    return parser


def run_copy_like(task_class, parser, argv=None):
    """Run the command line of a copy-like task (copy, reversed, upside-down, sorted copy),
    with the delimiter marked on the heat maps; returns a :class:`utils.training.RunResult`."""
    return training.run(parser, make_copy_like_task(task_class), argv,
                        markers=lambda task: [delimiter_marker()])


def main(argv=None):
    """Run the copy task's command line; returns a :class:`utils.training.RunResult`."""
    return run_copy_like(CopyTask, make_parser(**COPY_TRAINING_DEFAULTS), argv)


if __name__ == "__main__":
    sys.exit(main().exit_code)
