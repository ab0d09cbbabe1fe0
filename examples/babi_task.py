"""Train an NTM to answer bAbI questions: about generated stories, or the real dataset's.

A story is read one sentence per step, each the bag of its words ("mary went back to the
garden."), a question ("where is mary?") after every two statements as in the bAbI dataset
(--questions-every; 0: one question after the last statement); at the step after each question
the model must give the answer, a softmax over the vocabulary. A story with several questions is
one sequence whose scored steps are the answers. --task-id chooses the kind of question, as bAbI
tasks 1-3: one, two or three supporting facts. The model is a dense controller of 100 units, a
128 x 20 memory, one write and one read head with 3 shifts, Adam (learning rate 1e-3) in batches
of 16, for 60,000 iterations. --encoding words reads one word per step instead. --eval-lengths
sets the number of
statements. The evaluation table counts wrong answers instead of wrong bits. Tasks 2 and 3 need
longer training; docs/tasks/babi.md gives the commands of the shipped models and their
results.

--data PATH trains on the stories of a bAbI file (or of the files of a directory) instead of
generated ones; the stories that hold its last --validation-questions questions are held out
for validation, and after training the accuracy on them is printed. The vocabulary is the
file's words; it is saved in the checkpoint and used again by --load. --data-test PATH prints
the accuracy on another file's questions, e.g. the dataset's test file:
``accuracy on PATH: 0.993 (993 of 1000 questions)``.

Example::

    python examples/babi_task.py --task-id 1 --save babi1.npz --eval-lengths 5,10,20,40 \\
        --plot babi1.png --plot-params num_sentences=8
    python examples/babi_task.py --data qa1_single-supporting-fact_train.txt \\
        --save babi_qa1.npz
    python examples/babi_task.py --load babi_qa1.npz --iterations 0 \\
        --data-test qa1_single-supporting-fact_test.txt

Task options and defaults: --task-id 1, --min-sentences (the fewest the task needs: 1, 2 or 3),
--max-sentences 10, --encoding sentences (or words: one word per step), --questions-every 2,
--vocabulary (default: the words of --data, else every word the generator uses).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import training  # noqa: E402
from utils.generators import (  # noqa: E402
    BABI_VOCABULARY_WITHOUT_BACK, BabiFileTask, BabiTask, build_babi_vocabulary, encode_babi,
    load_babi)
from utils.visualization import delimiter_marker  # noqa: E402

__all__ = ["TASK_OPTIONS", "answer_accuracy", "format_accuracy", "hold_out", "make_parser",
           "make_task", "main"]


def _word_list(text):
    words = [word.strip() for word in text.split(",")]
    if not all(words) or len(set(words)) != len(words):
        raise ValueError(f"expected distinct comma-separated words, got {text!r}")
    return words


_word_list.__name__ = "comma-separated words"  # argparse names the type in its message

TASK_OPTIONS = [
    training.TaskOption("task-id", int, 1,
                        "1: single supporting fact, 2: two, 3: three (as bAbI tasks 1-3)"),
    training.TaskOption("min-sentences", int, None,
                        "fewest statements in a story (default: the task's fewest)"),
    training.TaskOption("max-sentences", int, 10, "most statements in a story"),
    training.TaskOption("encoding", str, "sentences",
                        "'words': one word per step; 'sentences': one statement or question "
                        "per step, the bag of its words", affects_model=True,
                        # checkpoints from before this option read one word per step
                        earlier_value="words"),
    training.TaskOption("questions-every", int, 2,
                        "a question after every this many statements, and after the last, as "
                        "in the bAbI dataset (0: one question, after the last statement)",
                        # checkpoints from before this option asked one question
                        earlier_value=0),
    training.TaskOption("vocabulary", _word_list, None,
                        "the words of the one-hot channels, comma-separated (default: the "
                        "words of --data, else every word the generator uses); kept in the "
                        "checkpoint, which --load takes it from", affects_model=True,
                        # the generator's words before its stories said "went back to"
                        earlier_value=list(BABI_VOCABULARY_WITHOUT_BACK)),
]

_loaded_files = {}


def _stories_of(path):
    """The stories of a bAbI file or directory, read once per process."""
    if path not in _loaded_files:
        _loaded_files[path] = load_babi(path)
    return _loaded_files[path]


def hold_out(stories, num_questions):
    """Split stories into those to train on and the last ones, which hold ``num_questions``
    questions (or the fewest stories that hold at least as many).

    Parameters
    ----------
    stories : sequence of BabiStory
    num_questions : int
        Questions to hold out (0: none).

    Returns
    -------
    training, held_out : list of BabiStory
    """
    stories = list(stories)
    count, first = 0, len(stories)
    while count < num_questions and first > 0:
        first -= 1
        count += len(stories[first].questions)
    return stories[:first], stories[first:]


def _data_vocabulary(options):
    """The vocabulary of the run: the option's, or the words of --data, or the generator's."""
    if options.vocabulary is None and options.data:
        options.vocabulary = build_babi_vocabulary(_stories_of(options.data))
    return options.vocabulary


def make_task(options, **kwargs):
    """The task of the command-line options: the stories of --data (less those held out), or
    generated ones. Sets ``options.vocabulary`` when it was None, so that it is saved."""
    vocabulary = _data_vocabulary(options)
    if options.data:
        training_stories, _ = hold_out(_stories_of(options.data), options.validation_questions)
        return BabiFileTask(training_stories, vocabulary, encoding=options.encoding,
                            permute_names=options.permute_names,
                            cut_stories=options.cut_stories, **kwargs)
    task = BabiTask(task_id=options.task_id, min_sentences=options.min_sentences,
                    max_sentences=options.max_sentences, encoding=options.encoding,
                    questions_every=options.questions_every, vocabulary=vocabulary, **kwargs)
    options.vocabulary = list(task.vocabulary)
    return task


def make_validation_task(options, **kwargs):
    """The validation task: the stories held out of --data, in order; else generated ones."""
    if not options.data:
        return make_task(options, **kwargs)
    _, held_out = hold_out(_stories_of(options.data), options.validation_questions)
    return BabiFileTask(held_out, _data_vocabulary(options), encoding=options.encoding,
                        order="sequential", **kwargs)


make_task.make_validation_task = make_validation_task


def answer_accuracy(predict, stories, vocabulary, encoding="sentences", batch_size=100,
                    dtype=np.float32):
    """How many of the stories' questions a model answers right.

    Parameters
    ----------
    predict : callable
        ``predict(x)`` gives the answer probabilities, shape ``(batch, time, len(vocabulary))``
        (e.g. :meth:`utils.training.Trainer.predict`).
    stories : sequence of BabiStory
    vocabulary : sequence of str
    encoding : {"words", "sentences"}
    batch_size : int
        Stories per call of ``predict``.
    dtype : numpy dtype
        Of the inputs (the model's float type).

    Returns
    -------
    right, total : int
        Questions whose most probable answer is the right one, and all questions.
    """
    right = total = 0
    stories = list(stories)
    for start in range(0, len(stories), batch_size):
        x, y, mask = encode_babi(stories[start:start + batch_size], vocabulary, dtype=dtype,
                                 encoding=encoding)
        scored = mask > 0
        answers = np.argmax(predict(x), axis=-1)
        right += int(np.sum((answers == np.argmax(y, axis=-1)) & scored))
        total += int(np.sum(scored))
    return right, total


def format_accuracy(name, right, total):
    """``accuracy on NAME: 0.993 (993 of 1000 questions)``."""
    return f"accuracy on {name}: {right / total:.3f} ({right} of {total} questions)"


def make_parser():
    """The command line, with the bAbI model's defaults."""
    parser = training.make_parser(__doc__, TASK_OPTIONS, eval_param="num_sentences",
                                  output="categorical")
    data = parser.add_argument_group("bAbI files")
    data.add_argument("--data", metavar="PATH", default=None,
                      help="train on the stories of this bAbI file (or of the *.txt files of "
                           "this directory) instead of generated ones")
    data.add_argument("--validation-questions", type=int, default=1000, metavar="K",
                      help="with --data: hold out the last stories, those that hold its last "
                           "K questions, for validation, and print the accuracy on them")
    data.add_argument("--permute-names", action=argparse.BooleanOptionalAction, default=True,
                      help="with --data: rename the people and the places of each story drawn "
                           "for training by random permutations, so that the model learns "
                           "what the stories say rather than the stories")
    data.add_argument("--cut-stories", action=argparse.BooleanOptionalAction, default=True,
                      help="with --data: end each story drawn for training after one of its "
                           "questions drawn at random, so that training sees short stories as "
                           "well as whole ones")
    data.add_argument("--data-test", metavar="PATH", default=None,
                      help="after training, print the accuracy on the questions of this bAbI "
                           "file (or directory)")
    parser.set_defaults(optimizer="adam", controller="dense", num_units=100,
                        memory_shape=[128, 20], batch_size=16, iterations=60000,
                        validate_every=2000, log_every=500, checkpoint_every=5000)
    return parser


def _check_files(parser, config):
    """Read --data and --data-test now, so that a bad file fails before any compilation."""
    for option, path in (("--data", config.data), ("--data-test", config.data_test)):
        if path is None:
            continue
        try:
            stories = _stories_of(path)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            parser.error(f"{option} {path}: {error}")
        if not any(story.questions for story in stories):
            parser.error(f"{option} {path}: holds no question")
    if config.validation_questions < 0:
        parser.error(f"--validation-questions: must be >= 0, got {config.validation_questions}")
    if config.data:
        training_stories, _ = hold_out(_stories_of(config.data), config.validation_questions)
        if not training_stories:
            parser.error(f"--validation-questions {config.validation_questions}: holds out "
                         f"every story of --data {config.data}")


def main(argv=None):
    """Run the bAbI command line; returns a :class:`utils.training.RunResult` (with
    ``accuracy``: ``{name: (right, total)}`` of the held-out stories and --data-test)."""
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    config, _ = training.parse_config(parser, argv)
    _check_files(parser, config)
    # Mark the question marks: each answer is due at the next step.
    result = training.run(parser, make_task, argv,
                          markers=lambda task: [delimiter_marker(task.vocabulary.index("?"))])
    result.accuracy = {}
    if result.exit_code:
        return result
    config = result.config
    tests = []
    if config.data and config.validation_questions:
        _, held_out = hold_out(_stories_of(config.data), config.validation_questions)
        tests.append((f"the {len(held_out)} stories held out of {config.data}", held_out))
    if config.data_test:
        tests.append((config.data_test, _stories_of(config.data_test)))
    for name, stories in tests:
        try:
            right, total = answer_accuracy(result.trainer.predict, stories, config.vocabulary,
                                           config.encoding, dtype=config.floatX)
        except ValueError as error:  # a word the model has no channel for
            parser.error(f"--data-test {config.data_test}: {error} (the model's vocabulary: "
                         f"{','.join(config.vocabulary)})")
        result.accuracy[name] = (right, total)
        print(format_accuracy(name, right, total), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main().exit_code)
