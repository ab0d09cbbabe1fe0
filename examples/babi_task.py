"""Train an NTM to answer bAbI-style questions about generated stories.

A story of up to 10 sentences ("mary went to the garden.", "john picked up the football.") is
read one sentence per step, each the bag of its words, then a question ("where is mary?"); at
the step after the question the model must give the answer, a softmax over the vocabulary.
--task-id chooses the kind of question, as bAbI tasks 1-3: one, two or three supporting facts.
The model is a dense controller of 100 units, a 128 x 20 memory, one write and one read head
with 3 shifts, Adam (learning rate 1e-3) in batches of 16, for 60,000 iterations.
--encoding words reads one word per step instead (the model then learns far less: see the
README). --eval-lengths sets the number of sentences. The evaluation table counts wrong answers
instead of wrong bits. Tasks 2 and 3 need longer training (the README gives the commands of the
shipped models/babi_task2.npz and models/babi_task3.npz: 400,000 and 350,000 iterations).

Example::

    python examples/babi_task.py --task-id 1 --save babi1.npz --eval-lengths 5,10,20,40 \\
        --plot babi1.png --plot-params num_sentences=8

Task options and defaults: --task-id 1, --min-sentences (the fewest the task needs: 1, 2 or 3),
--max-sentences 10, --encoding sentences (or words: one word per step).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import BabiTask  # noqa: E402
from utils.visualization import delimiter_marker  # noqa: E402

__all__ = ["TASK_OPTIONS", "make_parser", "main"]

TASK_OPTIONS = [
    training.TaskOption("task-id", int, 1,
                        "1: single supporting fact, 2: two, 3: three (as bAbI tasks 1-3)"),
    training.TaskOption("min-sentences", int, None,
                        "fewest statements before the question (default: the task's fewest)"),
    training.TaskOption("max-sentences", int, 10, "most statements before the question"),
    training.TaskOption("encoding", str, "sentences",
                        "'words': one word per step; 'sentences': one statement or question "
                        "per step, the bag of its words", affects_model=True,
                        # checkpoints from before this option read one word per step
                        earlier_value="words"),
]


def make_task(options, **kwargs):
    """The bAbI-style task of the command-line options."""
    return BabiTask(task_id=options.task_id, min_sentences=options.min_sentences,
                    max_sentences=options.max_sentences, encoding=options.encoding, **kwargs)


def make_parser():
    """The command line, with the bAbI model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="num_sentences",
                                  output="categorical")
    parser.set_defaults(optimizer="adam", controller="dense", num_units=100,
                        memory_shape=[128, 20], batch_size=16, iterations=60000,
                        validate_every=2000, log_every=500, checkpoint_every=5000)
    return parser


def main(argv=None):
    """Run the bAbI command line; returns a :class:`utils.training.RunResult`."""
    # Mark the question mark: the answer is due at the next step.
    return training.run(make_parser(), make_task, argv,
                        markers=lambda task: [delimiter_marker(task.vocabulary.index("?"))])


if __name__ == "__main__":
    sys.exit(main().exit_code)
