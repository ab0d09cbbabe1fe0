"""bAbI from the dataset's files: ``examples/babi_task.py --data``, ``--data-test``, and the
vocabulary kept in the checkpoint."""
import json
import os

import numpy as np
import pytest

from examples import babi_task
from utils import training
from utils.generators import build_babi_vocabulary, encode_babi, load_babi

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two stories of the dataset's task-1 training file (bAbI v1.2, CC BY 3.0): a question after
# every two statements, 5 per story.
TRAIN_EXCERPT = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Sandra moved to the garden.
6 Where is Daniel? \thallway\t4
7 John moved to the office.
8 Sandra journeyed to the bathroom.
9 Where is Daniel? \thallway\t4
10 Mary moved to the hallway.
11 Daniel travelled to the office.
12 Where is Daniel? \toffice\t11
13 John went back to the garden.
14 John moved to  the bedroom.
15 Where is Sandra? \tbathroom\t8
1 Sandra travelled to the office.
2 Sandra went to the bathroom.
3 Where is Sandra? \tbathroom\t2
4 Mary went to the bedroom.
5 Daniel moved to the hallway.
6 Where is Sandra? \tbathroom\t2
7 John went to the garden.
8 John travelled to the office.
9 Where is Sandra? \tbathroom\t2
10 Daniel journeyed to the kitchen.
11 Mary went back to the office.
12 Where is Daniel? \tkitchen\t10
13 John went back to the hallway.
14 Sandra went to the garden.
15 Where is John? \thallway\t13
"""
# A story written for the test in the same words, as the dataset's test file would be.
TEST_EXCERPT = """1 John went to the kitchen.
2 Mary travelled to the garden.
3 Where is John? \tkitchen\t1
4 John moved to the bedroom.
5 Daniel went back to the office.
6 Where is John? \tbedroom\t4
7 Sandra journeyed to the hallway.
8 Where is Mary? \tgarden\t2
"""
TINY = ["--mode", "FAST_COMPILE", "--memory-shape", "8", "4", "--num-units", "8",
        "--batch-size", "2", "--validation-batches", "1", "--validate-every", "2", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("babi")
    train, test = directory / "qa1_train.txt", directory / "qa1_test.txt"
    train.write_text(TRAIN_EXCERPT)
    test.write_text(TEST_EXCERPT)
    return str(train), str(test)


def test_hold_out_keeps_the_last_stories_that_hold_the_questions(files):
    stories = load_babi(files[0])
    assert [len(story.questions) for story in stories] == [5, 5]
    assert babi_task.hold_out(stories, 5) == (stories[:1], stories[1:])
    assert babi_task.hold_out(stories, 6) == ([], stories)
    assert babi_task.hold_out(stories, 0) == (stories, [])


def test_babi_trains_on_a_file_and_keeps_its_vocabulary_for_load(files, tmp_path, capsys):
    train, test = files
    path = str(tmp_path / "qa1.npz")
    trained = babi_task.main(TINY + ["--data", train, "--validation-questions", "5",
                                     "--iterations", "2", "--save", path])
    assert trained.exit_code == 0
    vocabulary = build_babi_vocabulary(load_babi(train))
    assert len(vocabulary) == 21 and "back" in vocabulary
    with open(path[:-4] + ".json", encoding="utf-8") as stream:
        saved = json.load(stream)
    assert saved["config"]["vocabulary"] == vocabulary
    assert saved["task"]["input_size"] == saved["task"]["output_size"] == 21
    # The second story (its 5 questions) is held out: validated on, and scored at the end.
    held_out = f"the 1 stories held out of {train}"
    assert trained.accuracy[held_out][1] == 5
    assert "accuracy on " + held_out in capsys.readouterr().out

    loaded = babi_task.main(TINY + ["--load", path, "--iterations", "0", "--data-test", test])
    assert loaded.exit_code == 0 and loaded.config.vocabulary == vocabulary
    # The accuracy, counted here question by question from the model's predictions.
    right = 0
    for story in load_babi(test):
        x, y, mask = encode_babi([story], vocabulary, encoding="sentences")
        prediction = loaded.trainer.predict(x)
        steps = np.flatnonzero(mask[0])
        assert len(steps) == len(story.questions)
        right += sum(vocabulary[int(np.argmax(prediction[0, t]))] == question.answer
                     for t, question in zip(steps, story.questions))
    assert loaded.accuracy == {test: (right, 3)}
    assert f"accuracy on {test}: {right / 3:.3f} ({right} of 3 questions)\n" in \
        capsys.readouterr().out
    # The model reads 21 channels: a file with another word cannot be read by it.
    other = tmp_path / "other.txt"
    other.write_text("1 Fred went to the garden.\n2 Where is Fred? \tgarden\t1\n")
    with pytest.raises(SystemExit) as stop:
        babi_task.main(TINY + ["--load", path, "--iterations", "0", "--data-test", str(other)])
    assert stop.value.code == 2
    assert "word 'fred' is not in the vocabulary" in capsys.readouterr().err
    # Without --data a loaded model is shown generated stories in its own words.
    generated = babi_task.main(TINY + ["--load", path, "--iterations", "0", "--eval-lengths",
                                       "4", "--eval-batches", "1"])
    assert generated.exit_code == 0 and generated.config.vocabulary == vocabulary
    assert training.load_checkpoint(path)[2]["config"]["data"] == train


@pytest.mark.parametrize("options, message", [
    (["--data", "missing.txt"], "--data missing.txt: path 'missing.txt' is neither a file nor "
                                "a directory"),
    (["--data-test", "missing.txt"], "--data-test missing.txt: path"),
    (["--validation-questions", "10"], "--validation-questions 10: holds out every story"),
    (["--validation-questions", "-1"], "--validation-questions: must be >= 0, got -1"),
])
def test_babi_refuses_bad_files_before_compiling(files, options, message, capsys):
    if "--data" not in options:
        options = ["--data", files[0]] + options
    with pytest.raises(SystemExit) as stop:
        babi_task.main(TINY + options)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_the_shipped_real_babi_model_answers_stories_it_has_not_seen(files, capsys):
    # models/babi_qa1.npz, trained on the first 1,800 stories of the dataset's task-1 training
    # file, answered all 1,000 held-out questions (docs/tasks/babi.md). Here: the story written
    # for the test, and generated stories of 10 statements in its 21 words (16 stories, 80
    # questions; guessing among the six places is right 1 time in 6).
    path = os.path.join(REPO, "models", "babi_qa1.npz")
    result = babi_task.main(["--load", path, "--iterations", "0", "--data-test", files[1],
                             "--eval-lengths", "10", "--eval-batches", "1", "--mode",
                             "FAST_COMPILE", "--quiet"])
    assert result.exit_code == 0 and len(result.config.vocabulary) == 21
    assert result.accuracy == {files[1]: (3, 3)}
    (row,) = result.evaluation
    assert row["sequences"] == 16 and row["errors_per_seq"] == 0
    assert f"accuracy on {files[1]}: 1.000 (3 of 3 questions)" in capsys.readouterr().out
