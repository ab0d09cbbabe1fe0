"""``utils.training.load_model`` and ``benchmarks/error_analysis.py`` on the shipped models."""
import os

import numpy as np
import pytest

from benchmarks import error_analysis
from ntm.lasagne import layers
from utils import training
from utils.generators import CopyTask, PrioritySortTask, RepeatCopyTask
from utils.metrics import bit_errors

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


def test_load_model_sets_every_parameter_of_the_checkpoint():
    path = os.path.join(MODELS, "copy.npz")
    model, info = training.load_model(path, CopyTask(batch_size=2))
    params, _, _ = training.load_checkpoint(path)
    values = {p.name: p.get_value() for p in layers.get_all_params(model.l_output)}
    assert sorted(values) == sorted(params)
    for name, value in params.items():
        np.testing.assert_array_equal(values[name], value.astype(values[name].dtype))
    assert info["config"]["memory_shape"] == list(model.memory_shape)


def test_load_model_refuses_a_task_of_other_sizes_and_missing_best_parameters():
    path = os.path.join(MODELS, "copy.npz")
    with pytest.raises(ValueError, match=r"task: .* reads 9 and writes 8 .*RepeatCopyTask"):
        training.load_model(path, RepeatCopyTask())
    with pytest.raises(ValueError, match="best: .* no best parameters"):
        training.load_model(path, CopyTask(), best=True)


def test_copy_split_counts_every_sequence_once_and_the_shipped_model_makes_no_error():
    task = CopyTask(batch_size=16, seed=3)
    model, _ = training.load_model(os.path.join(MODELS, "copy.npz"), task)
    split = error_analysis.copy_zero_vector_errors(model, task, length=60, num_batches=2,
                                                   mode="FAST_COMPILE")
    # The same sequences, split here: last vector all-zero, one elsewhere only, none.
    again = CopyTask(batch_size=16, seed=3)
    zero = np.concatenate([(again.sample_with_mask(length=60)[0][:, :60, :8] == 0).all(axis=2)
                           for _ in range(2)])
    sizes = {name: len(errors) for name, errors in split.items()}
    assert sizes == {"last": int(zero[:, -1].sum()),
                     "elsewhere": int((zero.any(axis=1) & ~zero[:, -1]).sum()),
                     "without": int((~zero.any(axis=1)).sum())}
    assert sum(sizes.values()) == 32
    # 1 - (255/256)^60 = 21% of length-60 sequences hold an all-zero vector: some, not all.
    assert 0 < sizes["elsewhere"] + sizes["last"] < 32
    # The shipped model copies 120 without error (README), all-zero vectors included.
    assert all(errors.sum() == 0 for errors in split.values())


def test_waiting_on_written_matches_the_weightings_and_the_shipped_model_waits_on_blank_memory():
    task = CopyTask(batch_size=4, seed=2)
    model, _ = training.load_model(os.path.join(MODELS, "copy.npz"), task)
    overlap = error_analysis.waiting_on_written(model, task, length=10, num_batches=1,
                                                mode="FAST_COMPILE")
    inputs, _, _ = CopyTask(batch_size=4, seed=2).sample_with_mask(length=10)
    details = training.Trainer(model, mode="FAST_COMPILE").details(inputs)
    write, read = details[3], details[4]  # (batch, time, heads, N)
    for b in range(4):
        steps = []
        for t in range(10):
            written = np.max(write[b, :t + 1], axis=(0, 1))  # over the steps so far and heads
            steps.append(np.mean([read[b, t, h] @ written for h in range(read.shape[2])]))
        assert overlap[b] == pytest.approx(np.mean(steps), abs=1e-6)
    # README: the shipped model's read head waits on a location the write head never writes.
    assert overlap.max() < 0.05


def test_priority_gaps_and_errors_match_a_direct_computation():
    model, _ = training.load_model(os.path.join(MODELS, "priority_sort.npz"),
                                   PrioritySortTask(batch_size=4))
    gaps, errors = error_analysis.priority_gap_errors(
        model, PrioritySortTask(batch_size=4, seed=9), num_batches=1, mode="FAST_COMPILE")
    inputs, targets, mask = PrioritySortTask(batch_size=4, seed=9).sample_with_mask()
    assert gaps.shape == errors.shape == (4 * 16,)
    for b in range(4):
        priorities = list(inputs[b, :20, 8])
        ranked = sorted(range(20), key=lambda i: -priorities[i])[:16]
        for k, i in enumerate(ranked):
            nearest = min(abs(priorities[i] - priorities[j]) for j in range(20) if j != i)
            assert gaps[b * 16 + k] == pytest.approx(nearest)
    prediction = training.Trainer(model, mode="FAST_COMPILE").predict(inputs)
    expected = bit_errors(prediction, targets, mask, reduce="sum")
    assert errors.sum() == expected


def test_the_shipped_priority_sort_model_writes_lower_priorities_further_along():
    model, _ = training.load_model(os.path.join(MODELS, "priority_sort.npz"),
                                   PrioritySortTask(batch_size=8))
    priorities, heads, locations, peaks = error_analysis.write_locations(
        model, PrioritySortTask(batch_size=8, seed=4), num_batches=2, mode="FAST_COMPILE")
    assert priorities.shape == heads.shape == locations.shape == peaks.shape == (2 * 8 * 20,)
    assert np.all((-1 <= priorities) & (priorities <= 1)) and np.all(peaks <= 1 + 1e-6)
    assert np.all((0 <= heads) & (heads < 4)) and np.all((0 <= locations) & (locations < 128))
    # README: the write heads write each vector at a location set by its priority, the
    # highest first, then on along the memory, round its end if need be (where two heads
    # share the range, each its part).
    along = {}
    for low in (0.75, 0.5, 0.25, 0.0, -0.25, -0.5):  # priorities from the highest down
        inside = (priorities >= low) & (priorities < low + 0.25)
        counts = np.bincount(heads[inside])
        head = int(counts.argmax())
        if counts[head] >= 0.9 * inside.sum():  # a range written by one head
            along.setdefault(head, []).append(np.median(locations[inside]))
    assert sum(len(medians) for medians in along.values()) >= 4, along
    for head, medians in along.items():
        steps = [(b - a) % 128 for a, b in zip(medians, medians[1:])]  # the memory is a ring
        assert all(0 < step < 64 for step in steps), (head, medians)
    # A head parked on one location is never taken for the one that writes a range. (It may be
    # for a few vectors, at steps where it is sharper than the writing head: the model with
    # 256 units parks head 1 at one location with weights up to 0.8.)
    for head in along:
        assert len(set(locations[heads == head].tolist())) > 1


def _sort_batch(priorities, vectors, num_sorted):
    """A priority sort batch built by hand: ``priorities`` (batch, items), ``vectors``
    (batch, items, size); the targets as the generator orders them."""
    batch, num_items, size = vectors.shape
    inputs = np.zeros((batch, 2 * num_items + 1, size + 2))
    inputs[:, :num_items, :size] = vectors
    inputs[:, :num_items, size] = priorities
    inputs[:, num_items, size + 1] = 1
    targets = np.zeros((batch, num_items + 1 + num_sorted, size))
    order = np.argsort(-priorities, axis=1, kind="stable")[:, :num_sorted]
    targets[:, num_items + 1:] = np.take_along_axis(vectors, order[:, :, None], axis=1)
    return inputs[:, :num_items + 1 + num_sorted], targets


def test_resolution_limited_cost_of_a_hand_made_sequence():
    vectors = np.array([[[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]]], float)
    # Sorted: 0.9 (item 2), 0.5 and 0.495 (items 0 and 1, 0.005 apart), -0.7 (item 3).
    inputs, targets = _sort_batch(np.array([[0.5, 0.495, 0.9, -0.7]]), vectors, num_sorted=3)
    cost = lambda r: error_analysis.resolution_limited_cost(inputs, targets, 4, 4, r)[0]
    assert cost(0.0) == 0 and cost(0.004) == 0  # every gap >= r: each item alone
    # 0.5 and 0.495 confused: items 0 and 1 differ in 2 bits, 1 bit each at both steps.
    assert cost(0.01) == pytest.approx(4.0)
    # 0.9 joins them at r > 0.4 (gap 0.4): a cluster of three over the three output steps;
    # bit by bit the mean of the three vectors is (2/3, 2/3, 1/3, 1/3).
    p = np.array([2, 2, 1, 1]) / 3
    expected = -sum(np.sum(np.log2(np.where(v > 0.5, p, 1 - p))) for v in vectors[0, [2, 0, 1]])
    assert cost(0.41) == pytest.approx(expected)
    with pytest.raises(ValueError, match="resolution"):
        cost(-1)


def test_resolution_limited_cost_grows_with_the_resolution_as_close_pairs_predict():
    task = PrioritySortTask(batch_size=256, seed=2)
    inputs, targets, _ = task.sample_with_mask()
    costs = [error_analysis.resolution_limited_cost(inputs, targets, 20, 8, r).mean()
             for r in (0.0, 0.001, 0.01, 0.1, 2.1)]
    assert costs[0] == 0 and all(a < b for a, b in zip(costs, costs[1:]))
    # Pairs of the 20 priorities closer than r: about 190 r for small r (U[-1, 1]); each
    # costs about 2 bits for each of the 4 differing bits (8 bits) when both are output.
    assert 0.5 * 190 * 0.001 * 8 < costs[1] < 1.5 * 190 * 0.001 * 8
    # Everything one cluster: every output bit is predicted by the mean of 20 bits.
    x = inputs[:, :20, :8]
    mean = x.mean(axis=1, keepdims=True)
    y = targets[:, 21:]
    direct = -np.log2(np.where(y > 0.5, mean, 1 - mean)).sum(axis=(1, 2)).mean()
    assert costs[-1] == pytest.approx(direct)


def test_idle_head_focus_of_the_shipped_and_of_an_untrained_copy_model():
    task = CopyTask(batch_size=8, seed=1)
    shipped, _ = training.load_model(os.path.join(MODELS, "copy.npz"), task)
    focus = error_analysis.idle_head_focus(shipped, task, length=12, num_batches=2,
                                           mode="FAST_COMPILE")
    assert focus["read"].shape == focus["write"].shape == (16,)
    # README: the shipped model keeps both heads on one location where they are idle.
    assert focus["read"].min() > 0.99 and focus["write"].min() > 0.99
    # Directly from the weightings: the read head over the 12 input steps, the write head
    # over the 12 output steps (after the delimiter's step 12).
    inputs, _, _ = CopyTask(batch_size=8, seed=1).sample_with_mask(length=12)
    details = training.Trainer(shipped, mode="FAST_COMPILE").details(inputs)
    read, write = details[4][:, :, 0], details[3][:, :, 0]  # (batch, time, N)
    for b in range(8):
        assert focus["read"][b] == pytest.approx(np.mean([read[b, t].max() for t in range(12)]))
        assert focus["write"][b] == pytest.approx(
            np.mean([write[b, t].max() for t in range(13, 25)]))
    # An untrained NTM's heads spread over the memory at once (the gate mixes in the
    # content weighting, even over the blank memory).
    untrained = training.build_ntm(9, 8, memory_shape=(128, 20), learn_memory_init=False)
    focus = error_analysis.idle_head_focus(untrained, task, length=12, num_batches=1,
                                           mode="FAST_COMPILE")
    assert focus["read"].mean() < error_analysis.FOCUSED
    assert focus["write"].mean() < error_analysis.FOCUSED
