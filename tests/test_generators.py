"""Tests of the task generators and metrics (utils.generators, utils.metrics)."""
import json
import math

import numpy as np
import pytest

from utils.generators import (
    AssociativeRecallTask,
    BabiLine,
    BabiStory,
    BABI_VOCABULARY_WITHOUT_BACK,
    BabiFileTask,
    BabiTask,
    CopyTask,
    DyckWordsTask,
    DynamicNGramsTask,
    PrioritySortTask,
    RepeatCopyTask,
    ReversedCopyTask,
    SortTask,
    UpsideDownCopyTask,
    bit_errors,
    bits_per_sequence,
    build_babi_vocabulary,
    decode_babi,
    encode_babi,
    format_babi,
    load_babi,
    parse_babi,
)

ALL_TASKS = [CopyTask, ReversedCopyTask, UpsideDownCopyTask, SortTask, RepeatCopyTask,
             AssociativeRecallTask, DynamicNGramsTask, PrioritySortTask, DyckWordsTask,
             BabiTask]


def is_binary(array):
    return np.all((array == 0) | (array == 1))


# --------------------------------------------------------------------------------------------
# Common interface
# --------------------------------------------------------------------------------------------

def test_iterator_yields_max_iter_batches_with_indices():
    items = list(CopyTask(max_iter=3, batch_size=2, seed=0))
    assert [i for i, _ in items] == [0, 1, 2]
    for _, (x, y) in items:
        assert x.shape[0] == y.shape[0] == 2
        assert x.shape[1] == y.shape[1]


def test_iterator_without_max_iter_keeps_going():
    task = CopyTask(seed=0)
    indices = [i for i, _ in zip(range(5), (i for i, _ in task))]
    assert indices == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("task_class", ALL_TASKS)
def test_shapes_sizes_dtype_and_mask(task_class):
    task = task_class(batch_size=3, seed=1)
    x, y, mask = task.sample_with_mask()
    assert x.shape[0] == y.shape[0] == mask.shape[0] == 3
    assert x.shape[1] == y.shape[1] == mask.shape[1]
    assert x.shape[2] == task.input_size and y.shape[2] == task.output_size
    assert x.dtype == y.dtype == mask.dtype == np.float32
    assert is_binary(mask) and mask.sum() > 0
    x64, _ = task_class(seed=1, dtype=np.float64).sample()
    assert x64.dtype == np.float64


@pytest.mark.parametrize("task_class", ALL_TASKS)
def test_same_seed_same_data_and_state_round_trip(task_class):
    first, second = task_class(batch_size=2, seed=7), task_class(batch_size=2, seed=7)
    for (x1, y1), (x2, y2) in [(first.sample(), second.sample()) for _ in range(3)]:
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    next(first)
    state = json.loads(json.dumps(first.get_state()))
    expected = first.sample_with_mask()
    other = task_class(batch_size=2, seed=12345)
    other.set_state(state)
    assert other.num_iter == 1
    for a, b in zip(expected, other.sample_with_mask()):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_differ():
    x1, _ = CopyTask(seed=1).sample(length=20)
    x2, _ = CopyTask(seed=2).sample(length=20)
    assert not np.array_equal(x1, x2)


def test_state_does_not_alias_the_generator():
    task = CopyTask(seed=3)
    state = task.get_state()
    task.sample()
    again = task.get_state()
    assert state != again
    task.set_state(state)
    assert task.get_state() == state


def test_sample_params_keeps_fixed_values_and_draws_in_range():
    task = RepeatCopyTask(seed=0, min_length=2, max_length=4, min_repeats=3, max_repeats=5)
    for _ in range(50):
        params = task.sample_params()
        assert 2 <= params["length"] <= 4 and 3 <= params["repeats"] <= 5
    assert task.sample_params(length=30)["length"] == 30
    assert task.sample_params(length=None)["length"] in (2, 3, 4)


# --------------------------------------------------------------------------------------------
# Copy and its variants
# --------------------------------------------------------------------------------------------

def test_copy_layout():
    x, y, mask = CopyTask(batch_size=2, seed=0).sample_with_mask(length=5)
    assert x.shape == (2, 11, 9) and y.shape == (2, 11, 8)
    assert is_binary(x[:, :5, :8]) and np.all(x[:, :5, 8] == 0)
    np.testing.assert_array_equal(x[:, 5], np.tile(np.eye(9)[8], (2, 1)))
    assert np.all(x[:, 6:] == 0)
    np.testing.assert_array_equal(y[:, 6:], x[:, :5, :8])
    assert np.all(y[:, :6] == 0)
    np.testing.assert_array_equal(mask, np.tile([0] * 6 + [1] * 5, (2, 1)))


def test_copy_generalisation_length_is_honoured():
    x, y = CopyTask(seed=0).sample(length=120)
    assert x.shape == (1, 241, 9)
    np.testing.assert_array_equal(y[:, 121:], x[:, :120, :8])


def test_copy_lengths_stay_in_training_range():
    lengths = {x.shape[1] for _, (x, _) in CopyTask(max_iter=200, min_length=3, max_length=6,
                                                    seed=0)}
    assert lengths == {2 * n + 1 for n in range(3, 7)}


def test_copy_bits_are_balanced():
    x, _ = CopyTask(batch_size=50, seed=0).sample(length=20)
    assert abs(x[:, :20, :8].mean() - 0.5) < 0.05


def test_copy_end_marker():
    task = CopyTask(size=4, end_marker=True, batch_size=3, seed=0)
    assert task.output_size == 5
    x, y, mask = task.sample_with_mask(length=3)
    assert x.shape == (3, 8, 5) and y.shape == (3, 8, 5)
    np.testing.assert_array_equal(y[:, 4:7, :4], x[:, :3, :4])
    assert np.all(y[:, :7, 4] == 0)
    np.testing.assert_array_equal(y[:, 7], np.tile(np.eye(5)[4], (3, 1)))
    np.testing.assert_array_equal(mask, np.tile([0] * 4 + [1] * 4, (3, 1)))


def test_reversed_copy_target():
    x, y = ReversedCopyTask(batch_size=2, seed=4).sample(length=6)
    for b in range(2):
        for t in range(6):
            np.testing.assert_array_equal(y[b, 7 + t], x[b, 5 - t, :8])


def test_upside_down_copy_target():
    x, y = UpsideDownCopyTask(batch_size=2, seed=4).sample(length=6)
    for b in range(2):
        for t in range(6):
            np.testing.assert_array_equal(y[b, 7 + t], [x[b, t, 7 - k] for k in range(8)])


def test_sort_target_is_sorted_by_encoded_integer():
    size, length = 3, 12  # few values: ties are certain
    x, y = SortTask(size=size, batch_size=3, seed=5).sample(length=length)
    for b in range(3):
        numbers = [int("".join(str(int(bit)) for bit in x[b, t, :size]), 2)
                   for t in range(length)]
        expected = [x[b, t, :size] for t in sorted(range(length), key=lambda t: numbers[t])]
        np.testing.assert_array_equal(y[b, length + 1:], expected)
        assert np.all(y[b, :length + 1] == 0)


# --------------------------------------------------------------------------------------------
# Repeat copy
# --------------------------------------------------------------------------------------------

def test_repeat_copy_layout_scalar_count():
    task = RepeatCopyTask(size=8, batch_size=2, seed=0)
    repeats_range = np.arange(1, 11)
    assert task.repeats_mean == pytest.approx(repeats_range.mean())
    assert task.repeats_std == pytest.approx(repeats_range.std())
    x, y, mask = task.sample_with_mask(length=4, repeats=3)
    time = 4 + 1 + 3 * 4 + 1
    assert x.shape == (2, time, 10) and y.shape == (2, time, 9)
    assert np.all(x[:, :4, 8:] == 0)
    assert np.all(x[:, 4, :8] == 0) and np.all(x[:, 4, 8] == 1)
    assert x[0, 4, 9] == pytest.approx((3 - 5.5) / math.sqrt(8.25))
    assert np.all(x[:, 5:] == 0)
    sequence = x[:, :4, :8]
    for r in range(3):
        np.testing.assert_array_equal(y[:, 5 + 4 * r:9 + 4 * r, :8], sequence)
    assert np.all(y[:, :-1, 8] == 0)
    np.testing.assert_array_equal(y[:, -1], np.tile(np.eye(9)[8], (2, 1)))
    np.testing.assert_array_equal(mask, np.tile([0] * 5 + [1] * 13, (2, 1)))


def test_repeat_copy_generalisation_keeps_training_normalisation():
    task = RepeatCopyTask(min_repeats=1, max_repeats=10, seed=0)
    x, y = task.sample(length=2, repeats=20)
    assert x.shape[1] == 2 + 1 + 40 + 1
    assert x[0, 2, 9] == pytest.approx((20 - 5.5) / math.sqrt(8.25))


def test_repeat_copy_unary_count_and_no_end_marker():
    task = RepeatCopyTask(size=3, unary=True, end_marker=False, batch_size=2, seed=1)
    assert task.output_size == 3
    x, y, mask = task.sample_with_mask(length=2, repeats=4)
    time = 2 + 4 + 4 * 2
    assert x.shape == (2, time, 5) and y.shape == (2, time, 3)
    np.testing.assert_array_equal(x[:, 2:6, 4], np.ones((2, 4)))
    np.testing.assert_array_equal(x[:, :, 3], np.tile(np.eye(time)[2], (2, 1)))
    assert np.all(x[:, 6:] == 0) and np.all(x[:, :2, 3:] == 0)
    np.testing.assert_array_equal(y[:, 6:], np.tile(x[:, :2, :3], (1, 4, 1)))
    np.testing.assert_array_equal(mask[0], [0] * 6 + [1] * 8)


def test_repeat_copy_single_repeat_value_is_only_centred():
    task = RepeatCopyTask(min_repeats=3, max_repeats=3)
    assert task.repeats_std == 1.0 and task.normalise_repeats(5) == 2.0


# --------------------------------------------------------------------------------------------
# Associative recall
# --------------------------------------------------------------------------------------------

def parse_recall_input(x, size, item_length):
    """Items and query read back from one input sequence, by scanning the delimiters."""
    item_starts = np.flatnonzero(x[:, size] == 1)
    query_marks = np.flatnonzero(x[:, size + 1] == 1)
    items = [x[s + 1:s + 1 + item_length, :size] for s in item_starts]
    query = x[query_marks[0] + 1:query_marks[1], :size]
    return items, query, query_marks


def test_associative_recall_layout():
    size, width = 6, 3
    task = AssociativeRecallTask(batch_size=4, seed=2)
    x, y, mask = task.sample_with_mask(num_items=5)
    time = 5 * 4 + 2 * 3 + 2
    assert x.shape == (4, time, 8) and y.shape == (4, time, 6)
    for b in range(4):
        items, query, marks = parse_recall_input(x[b], size, width)
        assert len(items) == 5 and list(marks) == [20, 24]
        assert np.all(x[b, marks.max() + 1:] == 0)
        # the one-hot delimiter steps carry no bits
        assert np.all(x[b, np.r_[0:20:4, 20, 24], :size] == 0)
        matches = [k for k, item in enumerate(items) if np.array_equal(item, query)]
        assert len(matches) == 1 and matches[0] < 4
        np.testing.assert_array_equal(y[b, 25:], items[matches[0] + 1])
        assert np.all(y[b, :25] == 0)
        np.testing.assert_array_equal(mask[b], [0] * 25 + [1] * 3)


def test_associative_recall_items_are_distinct_even_when_space_is_small():
    # 2 ** (1 * 2) = 4 possible items, all of which must appear
    task = AssociativeRecallTask(size=1, item_length=2, min_num_items=4, max_num_items=4,
                                 batch_size=5, seed=0)
    x, _ = task.sample()
    for b in range(5):
        items, _, _ = parse_recall_input(x[b], 1, 2)
        assert sorted(tuple(item.ravel()) for item in items) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_associative_recall_generalises_to_more_items():
    x, _ = AssociativeRecallTask(seed=0).sample(num_items=12)
    assert x.shape[1] == 12 * 4 + 8


def test_associative_recall_queries_cover_all_but_last_item():
    task = AssociativeRecallTask(batch_size=200, seed=3)
    x, _ = task.sample(num_items=3)
    positions = set()
    for b in range(200):
        items, query, _ = parse_recall_input(x[b], 6, 3)
        positions.update(k for k, item in enumerate(items) if np.array_equal(item, query))
    assert positions == {0, 1}


# --------------------------------------------------------------------------------------------
# Dynamic n-grams
# --------------------------------------------------------------------------------------------

def slow_bayes_predictions(bits, n):
    """Loop-based posterior predictive: predictions[t] = P(bit t+1 = 1 | bits 0..t)."""
    predictions = []
    for t in range(len(bits)):
        if t + 1 < n - 1:
            predictions.append(0.5)
            continue
        context = tuple(bits[t + 2 - n:t + 1])
        ones = zeros = 0
        for j in range(n - 1, t + 1):  # every table-drawn bit seen so far
            if tuple(bits[j - n + 1:j]) == context:
                ones += bits[j]
                zeros += 1 - bits[j]
        predictions.append((ones + 0.5) / (ones + zeros + 1))
    return predictions


def test_ngrams_layout_and_mask():
    task = DynamicNGramsTask(n=6, length=50, batch_size=3, seed=0)
    x, y, mask = task.sample_with_mask()
    assert x.shape == y.shape == (3, 50, 1)
    assert is_binary(x)
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    assert np.all(y[:, -1] == 0)
    # scored: the predictions of bits 5..49, made at steps 4..48
    np.testing.assert_array_equal(mask, np.tile([0] * 4 + [1] * 45 + [0], (3, 1)))
    assert task.sample(length=300)[0].shape == (3, 300, 1)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_ngrams_optimal_predictions_match_direct_computation(n):
    task = DynamicNGramsTask(n=n, length=60, batch_size=3, seed=n)
    x, _ = task.sample()
    fast = task.optimal_predictions(x)
    assert fast.shape == x.shape
    for b in range(3):
        bits = [int(v) for v in x[b, :, 0]]
        np.testing.assert_allclose(fast[b, :, 0], slow_bayes_predictions(bits, n))


def test_ngrams_optimum_beats_frequency_blind_baseline():
    task = DynamicNGramsTask(batch_size=20, seed=0)
    x, y, mask = task.sample_with_mask()
    baseline = bits_per_sequence(np.full(y.shape, 0.5), y, mask)
    assert baseline == pytest.approx(195.0)  # one bit per scored bit
    optimum = task.optimal_bits_per_sequence(x, y)
    assert optimum == pytest.approx(
        bits_per_sequence(task.optimal_predictions(x), y, mask))
    assert optimum < 0.9 * baseline


def test_ngrams_tables_are_skewed():
    # Beta(1/2, 1/2) tables give bits far more predictable from their context than chance:
    # the empirical conditional frequency is far from 1/2 on average
    task = DynamicNGramsTask(n=2, length=400, batch_size=20, seed=0)
    x, _ = task.sample()
    bits = x[:, :, 0]
    distances = []
    for b in range(20):
        for context in (0, 1):
            following = bits[b, 1:][bits[b, :-1] == context]
            if len(following) > 20:
                distances.append(abs(following.mean() - 0.5))
    # E|p - 1/2| = 1/pi ~ 0.32 under Beta(1/2, 1/2), vs ~0.03 for fair coins
    assert np.mean(distances) > 0.2


# --------------------------------------------------------------------------------------------
# Priority sort
# --------------------------------------------------------------------------------------------

def test_priority_sort_layout():
    task = PrioritySortTask(batch_size=3, seed=0)
    x, y, mask = task.sample_with_mask()
    assert x.shape == (3, 37, 10) and y.shape == (3, 37, 8)
    for b in range(3):
        priorities = x[b, :20, 8]
        assert np.all((-1 <= priorities) & (priorities <= 1))
        assert len(set(priorities.tolist())) == 20
        np.testing.assert_array_equal(x[b, :, 9], np.eye(37)[20])
        assert np.all(x[b, 20, :9] == 0) and np.all(x[b, 21:] == 0)
        order = sorted(range(20), key=lambda i: -priorities[i])[:16]
        np.testing.assert_array_equal(y[b, 21:], x[b, order, :8])
        assert np.all(y[b, :21] == 0)
    np.testing.assert_array_equal(mask, np.tile([0] * 21 + [1] * 16, (3, 1)))


def test_priority_sort_fixed_sizes():
    x, y = PrioritySortTask(seed=0).sample(num_items=30, num_sorted=30)
    assert x.shape == (1, 61, 10)


# --------------------------------------------------------------------------------------------
# Dyck words
# --------------------------------------------------------------------------------------------

def prefix_is_dyck(brackets):
    """Whether a string of brackets is a Dyck word, with a stack."""
    stack = []
    for bracket in brackets:
        if bracket == "(":
            stack.append(bracket)
        elif not stack:
            return False
        else:
            stack.pop()
    return not stack


def test_dyck_labels_are_right():
    task = DyckWordsTask(batch_size=100, seed=0)
    x, y, mask = task.sample_with_mask(num_pairs=5)
    assert x.shape == (100, 10, 2) and y.shape == (100, 10, 1)
    assert np.all(x.sum(axis=2) == 1)
    assert np.all(mask == 1)
    finals = []
    for b in range(100):
        word = "".join("(" if step[0] else ")" for step in x[b])
        assert word.count("(") == word.count(")") == 5
        labels = [prefix_is_dyck(word[:t + 1]) for t in range(10)]
        np.testing.assert_array_equal(y[b, :, 0], labels)
        finals.append(labels[-1])
    assert 0.35 < np.mean(finals) < 0.65


def test_dyck_generated_words_cover_all_dyck_words():
    # there are 5 Dyck words of 3 pairs (Catalan number), all of which should appear
    task = DyckWordsTask(positive_fraction=1.0, batch_size=300, seed=1)
    x, y = task.sample(num_pairs=3)
    assert np.all(y[:, -1, 0] == 1)
    words = {"".join("(" if step[0] else ")" for step in seq) for seq in x}
    assert words == {"((()))", "(()())", "(())()", "()(())", "()()()"}


def test_dyck_only_final_mask_and_negatives():
    task = DyckWordsTask(positive_fraction=0.0, only_final=True, batch_size=20, seed=2)
    x, y, mask = task.sample_with_mask(num_pairs=4)
    assert np.all(y[:, -1, 0] == 0)
    np.testing.assert_array_equal(mask, np.tile([0] * 7 + [1], (20, 1)))


# --------------------------------------------------------------------------------------------
# bAbI
# --------------------------------------------------------------------------------------------

PICK_UP = {"picked", "got", "grabbed", "took"}
DROP = {"dropped", "discarded", "put", "left"}


def answer_by_reading(words):
    """Answer the final question of a decoded story by replaying it (independent reader)."""
    sentences, current = [], []
    for word in words:
        if word in (".", "?"):
            sentences.append((current, word))
            current = []
        else:
            current.append(word)
    *statements, (question, mark) = sentences
    assert mark == "?"
    person_at, holder, object_at, trail = {}, {}, {}, {}
    for sentence, _ in statements:
        person, obj = sentence[0], sentence[-1]
        if "to" in sentence:
            person_at[person] = sentence[-1]
            for carried, who in holder.items():
                if who == person:
                    object_at[carried] = sentence[-1]
                    trail[carried].append(sentence[-1])
        elif sentence[1] in PICK_UP:
            assert obj not in holder
            assert object_at.get(obj, person_at[person]) == person_at[person]
            holder[obj] = person
            if obj not in object_at:
                object_at[obj] = person_at[person]
                trail[obj] = [person_at[person]]
        else:
            assert sentence[1] in DROP and holder.pop(obj) == person
    if question[:2] == ["where", "is"] and question[2] != "the":
        return person_at[question[2]]
    if question[:2] == ["where", "is"]:
        return object_at[question[3]]
    assert question[:3] == ["where", "was", "the"] and question[4:6] == ["before", "the"]
    places = trail[question[3]]
    assert places.count(question[6]) == 1
    return places[places.index(question[6]) - 1]


@pytest.mark.parametrize("task_id", [1, 2, 3])
def test_babi_generated_answers_are_right(task_id):
    task = BabiTask(task_id=task_id, batch_size=30, seed=task_id)
    x, y, mask = task.sample_with_mask(num_sentences=8)
    assert x.shape[2] == y.shape[2] == len(task.vocabulary)
    inputs, answers = task.decode(x), task.decode(y, mask)
    for b in range(30):
        scored = np.flatnonzero(mask[b])
        assert len(scored) == 1
        answer_step = scored[0]
        assert inputs[b][answer_step - 1] == "?" and inputs[b][answer_step] is None
        assert all(word is None for word in inputs[b][answer_step:])
        story = inputs[b][:answer_step]
        assert story.count(".") == 8 and None not in story
        assert answers[b] == [answer_by_reading(story)]
    if task_id > 1:
        words = {w for sequence in inputs for w in sequence}
        assert words & PICK_UP and words & DROP


def test_babi_story_objects_and_format_round_trip():
    task = BabiTask(task_id=2, seed=0)
    stories = [task.generate_story(6) for _ in range(3)]
    assert all(len(s.lines) == 7 and s.lines[-1].is_question for s in stories)
    parsed = parse_babi(format_babi(stories))
    assert parsed == stories
    for a, b in zip(task.encode(parsed), task.encode(stories)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task_id", [1, 2, 3])
def test_babi_sentence_encoding_puts_each_sentence_in_one_step(task_id):
    # Two tasks with one seed draw the same stories; one encodes them a sentence per step.
    by_word = BabiTask(task_id=task_id, batch_size=8, seed=5)
    by_sentence = BabiTask(task_id=task_id, batch_size=8, seed=5, encoding="sentences")
    stories = [by_word.generate_story(6) for _ in range(8)]
    assert stories == [by_sentence.generate_story(6) for _ in range(8)]
    x, y, mask = by_sentence.encode(stories)
    vocabulary = by_sentence.vocabulary
    assert x.shape == (8, 8, len(vocabulary)) and x.dtype == np.float32
    for b, story in enumerate(stories):
        for t, line in enumerate(story.lines):
            end = "?" if line.is_question else "."
            active = {vocabulary[i] for i in np.flatnonzero(x[b, t])}
            assert active == set(line.words) | {end}
        assert not x[b, 7].any() and mask[b].tolist() == [0] * 7 + [1]
        assert vocabulary[int(np.argmax(y[b, 7]))] == story.lines[-1].answer
        assert y[b, :7].sum() == 0
    # The words encoding of the same stories scores the same answers.
    _, y_words, mask_words = by_word.encode(stories)
    assert by_word.decode(y_words, mask_words) == by_sentence.decode(y, mask)


def test_babi_encoding_must_be_known():
    with pytest.raises(ValueError, match=r"encoding must be one of \('words', 'sentences'\)"):
        encode_babi([BabiTask(seed=0).generate_story(2)], BabiTask().vocabulary,
                    encoding="letters")


BABI_TEXT = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Sandra moved to the garden.
6 Where is Daniel? \thallway\t4
1 Sandra travelled to the office.
2 Where is Sandra? \toffice\t1
"""


def test_babi_loader_parses_stories(tmp_path):
    path = tmp_path / "qa1_single-supporting-fact_train.txt"
    path.write_text(BABI_TEXT)
    stories = load_babi(path)
    assert len(stories) == 2
    first, second = stories
    assert len(first.lines) == 6 and len(second.lines) == 2
    assert first.lines[0] == BabiLine(1, ("mary", "moved", "to", "the", "bathroom"))
    assert first.questions == (BabiLine(3, ("where", "is", "mary"), "bathroom", (1,)),
                               BabiLine(6, ("where", "is", "daniel"), "hallway", (4,)))
    assert second.questions[0].answer == "office"
    # a directory is read file by file, in sorted order
    (tmp_path / "qa1_single-supporting-fact_test.txt").write_text(BABI_TEXT.split("1 Sandra")[0])
    (tmp_path / "notes.md").write_text("not a story")
    assert len(load_babi(tmp_path)) == 3
    assert load_babi(tmp_path, pattern="*_train.txt") == stories


def test_babi_loader_encodes_like_the_generator(tmp_path):
    path = tmp_path / "stories.txt"
    path.write_text(BABI_TEXT)
    stories = load_babi(path)
    vocabulary = build_babi_vocabulary(stories)
    assert vocabulary == sorted(vocabulary)
    assert {".", "?", "back", "bathroom", "where", "office"} <= set(vocabulary)
    x, y, mask = encode_babi(stories, vocabulary)
    assert x.shape == (2, 35, len(vocabulary)) and x.dtype == np.float32
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), [16, 34])
    np.testing.assert_array_equal(np.flatnonzero(mask[1]), [10])
    assert decode_babi(y, vocabulary, mask) == [["bathroom", "hallway"], ["office"]]
    words = decode_babi(x, vocabulary)
    assert words[0][:17] == ["mary", "moved", "to", "the", "bathroom", ".", "john", "went", "to",
                             "the", "hallway", ".", "where", "is", "mary", "?", None]
    assert words[1][10:] == [None] * 25
    assert np.all(y.sum(axis=2) == mask)


def test_babi_loader_rejects_malformed_text(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: expected '<number> <sentence>'"):
        parse_babi("1 Mary went to the office.\nMary went home.\n")
    with pytest.raises(ValueError, match="must start with line number 1"):
        parse_babi("2 Mary went to the office.\n")
    with pytest.raises(ValueError, match="needs a tab-separated answer"):
        parse_babi("1 Mary went to the office.\n2 Where is Mary?\t \t1\n")
    with pytest.raises(ValueError, match="supporting facts must be line numbers"):
        parse_babi("1 Mary went to the office.\n2 Where is Mary?\toffice\tone\n")
    with pytest.raises(ValueError, match="neither a file nor a directory"):
        load_babi(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="holds no file matching"):
        load_babi(tmp_path)
    stories = parse_babi(BABI_TEXT)
    with pytest.raises(ValueError, match="'back' is not in the vocabulary"):
        encode_babi(stories, BABI_VOCABULARY_WITHOUT_BACK)


@pytest.mark.parametrize("task_id", [1, 2, 3])
def test_babi_questions_every_two_statements_as_in_the_dataset(task_id):
    task = BabiTask(task_id=task_id, batch_size=40, seed=task_id, questions_every=2)
    x, y, mask = task.sample_with_mask(num_sentences=10)
    inputs, answers = task.decode(x), task.decode(y, mask)
    for b in range(40):
        # Replay the story: each question is answered from the statements before it.
        statements, expected, layout = [], [], []
        sentence = []
        for t, word in enumerate(inputs[b]):
            if word is None:
                layout.append("answer") if mask[b, t] else None
                continue
            sentence.append(word)
            if word == ".":
                statements.extend(sentence)
                layout.append("statement")
                sentence = []
            elif word == "?":
                expected.append(answer_by_reading(statements + sentence))
                layout.append("question")
                sentence = []
        assert answers[b] == expected
        if task_id == 1:
            # The dataset's task-1 stories: 15 lines, a question after every two statements.
            assert layout == ["statement", "statement", "question", "answer"] * 5
        else:
            # A question where one can be asked (an object's place known), always at the end.
            assert layout.count("statement") == 10 and layout[-2:] == ["question", "answer"]
            assert all(layout[i - 2:i] == ["statement", "statement"]
                       for i, kind in enumerate(layout) if kind == "question")
    story = task.generate_story(5)
    assert [line.number for line in story.lines] == list(range(1, len(story.lines) + 1))


def test_babi_stories_say_went_back_to_unless_the_vocabulary_lacks_back():
    task = BabiTask(batch_size=50, seed=0, encoding="sentences")
    assert "back" in task.vocabulary
    assert task.input_size == len(BABI_VOCABULARY_WITHOUT_BACK) + 1 == 36
    stories = [task.generate_story(10) for _ in range(50)]
    phrases = {line.words[1:-3] for story in stories for line in story.lines
               if not line.is_question}
    assert phrases == {("moved",), ("went",), ("journeyed",), ("travelled",), ("went", "back")}
    # The models trained before "went back to" existed read 35 channels: the same stories as
    # then (one seed, one draw), without it.
    earlier = BabiTask(batch_size=50, seed=0, vocabulary=BABI_VOCABULARY_WITHOUT_BACK)
    assert earlier.input_size == 35 and "back" not in earlier.vocabulary
    words = {word for _ in range(20) for line in earlier.generate_story(10).lines
             for word in line.words}
    assert "back" not in words and {"moved", "went", "journeyed", "travelled"} <= words
    # The vocabulary of the real task-1 files (no objects: the excerpt's, and the two places
    # and the verb it does not name) generates task-1 stories.
    real = sorted(set(build_babi_vocabulary(parse_babi(BABI_TEXT)))
                  | {"bedroom", "kitchen", "journeyed"})
    x, _, _ = BabiTask(vocabulary=real, seed=0).sample_with_mask(num_sentences=4)
    assert x.shape[2] == len(real) == 21
    with pytest.raises(ValueError, match=r"vocabulary lacks words of task 2's stories: "
                                         r"\['apple', 'football', 'milk'\]"):
        BabiTask(task_id=2, vocabulary=real)
    with pytest.raises(ValueError, match="vocabulary holds no move verb"):
        BabiTask(vocabulary=[w for w in real if w not in ("moved", "went", "journeyed",
                                                          "travelled")])
    with pytest.raises(ValueError, match="questions_every must be an integer >= 0"):
        BabiTask(questions_every=-1)


def test_babi_file_task_batches_whole_stories_with_all_their_questions():
    stories = parse_babi(BABI_TEXT)
    vocabulary = build_babi_vocabulary(stories)
    task = BabiFileTask(stories, order="sequential", batch_size=3, seed=0)
    assert task.vocabulary == vocabulary and task.input_size == task.output_size == 18
    x, y, mask = task.sample_with_mask()
    # Stories 1, 2, then 1 again; a sentence per step, each question's answer step scored.
    assert x.shape == (3, 8, 18) and x.dtype == np.float32
    np.testing.assert_array_equal(mask, [[0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0, 0, 0],
                                         [0, 0, 0, 1, 0, 0, 0, 1]])
    assert task.decode(y, mask) == [["bathroom", "hallway"], ["office"], ["bathroom", "hallway"]]
    assert {vocabulary[i] for i in np.flatnonzero(x[0, 4])} == \
        {"daniel", "went", "back", "to", "the", "hallway", "."}
    assert {vocabulary[i] for i in np.flatnonzero(x[1, 1])} == {"where", "is", "sandra", "?"}
    assert not x[1, 2:].any() and not y[1, 3:].any()
    _, y, mask = task.sample_with_mask()  # story 2, 1, 2: on where the last batch stopped
    assert task.decode(y, mask) == [["office"], ["bathroom", "hallway"], ["office"]]
    # Renamed stories stay true: each answer is the last place its person went to.
    people, places = {"mary", "john", "sandra", "daniel"}, {"bathroom", "hallway", "office"}
    renamed = BabiFileTask(stories, permute_names=True, batch_size=64, seed=1)
    x, y, mask = renamed.sample_with_mask()
    first_answers = set()
    for b in range(64):
        place = {}
        for t in range(x.shape[1]):
            words = {vocabulary[i] for i in np.flatnonzero(x[b, t])}
            (person,) = words & people or [None]
            if "." in words:
                place[person] = (words & (places | {"garden"})).pop()
            elif "?" in words:
                assert vocabulary[int(np.argmax(y[b, t + 1]))] == place[person]
                if t == 2:
                    first_answers.add(place[person])
    assert first_answers == places  # "bathroom" (story 1) or "office" (story 2), renamed
    # Cut stories: the lines of a story up to one of its questions, each end drawn.
    cut = BabiFileTask(stories, cut_stories=True, batch_size=1, seed=2)
    drawn = set()
    for _ in range(40):
        x, y, mask = cut.sample_with_mask()
        story = [line for line in cut.decode(x)[0] if line is not None]
        original = next(s for s in stories if cut.encode([s])[0].shape[1] >= x.shape[1]
                        and np.array_equal(cut.encode([s])[0][0, :x.shape[1]], x[0]))
        assert mask[0, -1] == 1 and x.shape[1] == len(story) + int(mask[0].sum())
        drawn.add((stories.index(original), x.shape[1]))
    assert drawn == {(0, 4), (0, 8), (1, 3)}
    with pytest.raises(ValueError, match="word 'back' of the stories is not in the vocabulary"):
        BabiFileTask(stories, vocabulary=[w for w in vocabulary if w != "back"])
    with pytest.raises(ValueError, match="order must be one of"):
        BabiFileTask(stories, order="shuffled")
    with pytest.raises(ValueError, match="at least one story"):
        BabiFileTask([])


def test_babi_story_dataclasses():
    story = BabiStory((BabiLine(1, ("john", "went", "to", "the", "garden")),
                       BabiLine(2, ("where", "is", "john"), "garden", (1,))))
    assert [line.is_question for line in story.lines] == [False, True]
    assert story.questions == story.lines[1:]


# --------------------------------------------------------------------------------------------
# Bad parameters
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: CopyTask(min_length=5, max_length=3),
     r"min_length \(5\) must not exceed max_length \(3\)"),
    (lambda: CopyTask(size=0), r"size must be an integer >= 1, got 0"),
    (lambda: CopyTask(size=2.5), r"size must be an integer, got 2.5"),
    (lambda: CopyTask(batch_size=0), r"batch_size must be an integer >= 1"),
    (lambda: CopyTask(max_iter=-1), r"max_iter must be an integer >= 0"),
    (lambda: CopyTask(dtype=np.int32), r"dtype must be a floating-point dtype"),
    (lambda: CopyTask(end_marker="yes"), r"end_marker must be True or False"),
    (lambda: CopyTask().sample(length=0), r"length must be an integer >= 1, got 0"),
    (lambda: CopyTask().sample(lenght=3), r"unknown parameter\(s\) \['lenght'\]"),
    (lambda: RepeatCopyTask(min_repeats=0), r"min_repeats must be an integer >= 1"),
    (lambda: RepeatCopyTask(min_repeats=4, max_repeats=2), r"min_repeats \(4\) must not exceed"),
    (lambda: RepeatCopyTask().sample(repeats=-2), r"repeats must be an integer >= 1"),
    (lambda: AssociativeRecallTask(min_num_items=1), r"min_num_items must be an integer >= 2"),
    (lambda: AssociativeRecallTask(size=1, item_length=1, max_num_items=3),
     r"max_num_items \(3\) exceeds the 2 different items"),
    (lambda: AssociativeRecallTask(size=2, item_length=1, max_num_items=4).sample(num_items=5),
     r"num_items \(5\) exceeds the 4 different items"),
    (lambda: AssociativeRecallTask(item_length=0), r"item_length must be an integer >= 1"),
    (lambda: DynamicNGramsTask(n=0), r"n must be an integer >= 1"),
    (lambda: DynamicNGramsTask(n=6, length=5), r"length must be an integer >= 6, got 5"),
    (lambda: DynamicNGramsTask(n=30), r"n must be at most 24"),
    (lambda: DynamicNGramsTask().optimal_predictions(np.zeros((2, 5))),
     r"inputs must have shape \(batch, time, 1\)"),
    (lambda: PrioritySortTask(num_items=4, num_sorted=5),
     r"num_sorted \(5\) must not exceed num_items \(4\)"),
    (lambda: PrioritySortTask().sample(num_sorted=21), r"num_sorted \(21\) must not exceed"),
    (lambda: DyckWordsTask(positive_fraction=1.5),
     r"positive_fraction must be a number in \[0, 1\]"),
    (lambda: DyckWordsTask(min_pairs=0), r"min_pairs must be an integer >= 1"),
    (lambda: BabiTask(task_id=4), r"task_id must be 1, 2 or 3"),
    (lambda: BabiTask(task_id=3, min_sentences=2),
     r"min_sentences must be at least 3 for task_id=3"),
    (lambda: BabiTask(max_sentences=0), r"max_sentences must be an integer >= 1"),
    (lambda: BabiTask(encoding="bags"), r"encoding must be one of"),
    (lambda: CopyTask().set_state({"num_iter": 2}), r"state must be a dict with a 'bit_generator'"),
    (lambda: CopyTask().set_state({"bit_generator": {"bit_generator": "MT19937"}}),
     r"expected 'PCG64'"),
])
def test_bad_parameters_fail_clearly(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

def test_bits_per_sequence_hand_computed():
    prediction = np.array([[[0.5, 0.25], [0.75, 0.5]],
                           [[0.5, 0.5], [0.125, 0.875]]])
    target = np.array([[[1, 0], [1, 1]],
                       [[0, 0], [0, 1]]])
    # per-bit costs: -log2 0.5 = 1, -log2 0.75, -log2 0.75, 1 | 1, 1, -log2 0.875 twice
    first = 2 - 2 * math.log2(0.75)
    second = 2 - 2 * math.log2(0.875)
    assert bits_per_sequence(prediction, target) == pytest.approx((first + second) / 2)
    assert bits_per_sequence(prediction, target, reduce="sum") == pytest.approx(first + second)
    mask = np.array([[0, 1], [1, 0]])  # keep step 1 of the first sequence, step 0 of the second
    np.testing.assert_allclose(
        bits_per_sequence(prediction, target, mask, reduce="none"),
        [-math.log2(0.75) + 1, 2])


def test_bits_per_sequence_clips_certain_mistakes():
    cost = bits_per_sequence(np.array([[[0.0]]]), np.array([[[1.0]]]), eps=1e-7)
    assert cost == pytest.approx(-math.log2(1e-7))
    assert bits_per_sequence(np.ones((1, 1, 1), np.float32), np.ones((1, 1, 1))) < 1e-6


def test_bit_errors_hand_computed():
    prediction = np.array([[[0.9, 0.2], [0.5, 0.7]],
                           [[0.1, 0.6], [0.4, 0.3]]])
    target = np.array([[[1, 0], [1, 1]],
                       [[1, 0], [0, 0]]])
    # first: 0.5 is read as 0 -> 1 error; second: 2 errors on step 0
    np.testing.assert_array_equal(bit_errors(prediction, target, reduce="none"), [1, 2])
    assert bit_errors(prediction, target) == 1.5
    assert bit_errors(prediction, target, reduce="sum") == 3
    assert bit_errors(prediction, target, np.array([[1, 0], [0, 1]])) == 0.0


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"target must have the shape of prediction"):
        bits_per_sequence(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"prediction must have shape \(batch, time, features\)"):
        bit_errors(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\)"):
        bit_errors(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"reduce must be one of"):
        bit_errors(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), reduce="max")
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 0.5\)"):
        bits_per_sequence(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), eps=0)


def test_metrics_work_on_task_arrays():
    x, y, mask = CopyTask(batch_size=4, seed=0).sample_with_mask(length=10)
    assert bit_errors(y, y, mask) == 0
    assert bits_per_sequence(y, y, mask) < 1e-3
    assert bit_errors(1 - y, y, mask) == 80
