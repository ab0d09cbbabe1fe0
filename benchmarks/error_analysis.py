"""Where a trained model errs: its bit errors split by a property of the input.

Two analyses, each on fresh random batches of the task:

``copy MODEL.npz``
    The copy model's bit errors per sequence on sequences that contain an all-zero vector
    and on those that do not. A dense controller sees nothing but the input and the read
    vectors, and an all-zero input vector looks like the steps after the delimiter (where
    the input is zero too) unless the read vector tells them apart; a model that has not
    learned to tell fails exactly on these sequences. With 8 random bits a vector is all-zero
    with probability :math:`2^{-8}`, so :math:`1 - (255/256)^L` of the sequences of length
    :math:`L` hold one (3.8% at 10, 7.5% at 20, 37.5% at 120); those are split again by
    whether the all-zero vector is the last one (see :func:`copy_zero_vector_errors`). Then
    how focused each head is where it has nothing to do, on sequences of the training range
    (:func:`idle_head_focus`): the read head while the input comes in, the write head while
    the copy goes out. A head spread over the memory there does no harm on training lengths
    and fails on long ones.

``priority_sort MODEL.npz``
    Where the priority sort model writes, by priority (for each input vector, the write head
    whose weighting is sharpest at its step and the location where it peaks; a model may
    share the priority range between heads), and its bit errors per
    output vector against the distance from the vector's priority to the nearest other
    priority of its sequence. A model that writes each vector at a location set by its
    priority writes two vectors of close priorities over each other. Beside it, the cost of
    an ideal sorter that cannot order priorities closer than a resolution :math:`r`
    (:func:`resolution_limited_cost`): the bits per sequence that resolution alone costs.

Examples::

    python benchmarks/error_analysis.py copy runs/copy/seed4.npz --length 20
    python benchmarks/error_analysis.py priority_sort models/priority_sort.npz
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils import training  # noqa: E402
from utils.generators import CopyTask, PrioritySortTask  # noqa: E402
from utils.metrics import bit_errors  # noqa: E402

__all__ = ["copy_zero_vector_errors", "idle_head_focus", "waiting_on_written",
           "priority_gap_errors", "write_locations", "resolution_limited_cost", "main"]

#: Bins of the distance to the nearest other priority (priorities are drawn from U[-1, 1]).
GAP_BINS = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, np.inf)
#: Bins of the priorities for the map of write locations.
PRIORITY_BINS = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0)
#: Focus (largest weight) at or above which a copy model's idle head counts as on one
#: location: over 68 converged copy runs, every one with both heads there copied length 120
#: without error (docs/tasks/copy.md).
FOCUSED = 0.9
#: Resolutions of the ideal sorters the priority sort model is compared with.
RESOLUTIONS = (0.0025, 0.005, 0.01, 0.02, 0.04)


_trainers = {}


def _trainer(model, mode):
    """One :class:`utils.training.Trainer` per model and mode, so that each of its functions
    (predict, details) is compiled once however many analyses use it."""
    key = (id(model), mode)
    if key not in _trainers:  # the model is kept with it, so its id is not reused
        _trainers[key] = (model, training.Trainer(model, mode=mode))
    return _trainers[key][1]


def copy_zero_vector_errors(model, task, length, num_batches, mode=None):
    """Bit errors per copied sequence with and without an all-zero input vector.

    The sequences with one are split by where it is: last (right before the delimiter) or
    elsewhere only. A model whose read head waits during the input on the location the first
    vector is written to reads that vector both there and at the first output step; an
    all-zero input then looks like that step, and when it is the last one, the model starts
    the copy one step early.

    Parameters
    ----------
    model : utils.training.Model
        A copy model (e.g. from :func:`utils.training.load_model`).
    task : utils.generators.CopyTask
        Draws the sequences.
    length : int
        Length of every sequence.
    num_batches : int
        Batches drawn.
    mode : str, optional
        PyTensor mode of the compiled predictions (default: the example scripts').

    Returns
    -------
    dict
        ``{"last": errors, "elsewhere": errors, "without": errors}``, each an array of bit
        errors per sequence: of the sequences whose last vector is all-zero, of those with
        an all-zero vector elsewhere only, and of those without one.
    """
    predict = _trainer(model, mode).predict
    errors, zero = [], []
    for _ in range(num_batches):
        inputs, targets, mask = task.sample_with_mask(length=length)
        # bit_errors sums the masked steps: one total per sequence.
        errors.append(bit_errors(predict(inputs), targets, mask, reduce="none"))
        zero.append((inputs[:, :length, :task.size] == 0).all(axis=2))
    errors, zero = np.concatenate(errors), np.concatenate(zero)
    last, anywhere = zero[:, -1], zero.any(axis=1)
    return {"last": errors[last], "elsewhere": errors[anywhere & ~last],
            "without": errors[~anywhere]}


def _weightings(model, task, length, num_batches, mode):
    """The write and read weightings, ``(batch, time, heads, N)`` each, of ``num_batches``
    fresh batches of sequences of ``length``."""
    details = _trainer(model, mode).details
    for _ in range(num_batches):
        inputs, _, _ = task.sample_with_mask(length=length)
        _, _, _, write_weights, read_weights = details(inputs)
        yield write_weights, read_weights


def idle_head_focus(model, task, length, num_batches, mode=None):
    """How focused the copy model's heads are in the phase each has nothing to do.

    A read head has nothing to read while the input comes in (steps :math:`0 .. L-1`), a
    write head nothing to write while the copy goes out (steps :math:`L+1 .. 2L`). Either
    may stay on one location there or spread over the memory; on training lengths both
    work, beyond them a spread head fails: a read head spread during the input reads the
    memory's mean, which changes as more vectors are written, and a write head spread during
    the output erases a little of every location at every step, so the vectors read last
    have faded. The focus of a head at a step is its largest weight, :math:`\\max_i w_t[i]`
    (1: one location; :math:`1/N`: spread evenly).

    Parameters
    ----------
    model : utils.training.Model
        A copy model.
    task : utils.generators.CopyTask
        Draws the sequences.
    length : int
        Length of every sequence (within the training range: the analysis needs no longer
        sequences).
    num_batches : int
        Batches drawn.
    mode : str, optional
        PyTensor mode of the compiled functions (default: the example scripts').

    Returns
    -------
    dict
        ``{"read": focus, "write": focus}``: per sequence, the mean over its idle steps and
        the heads of that kind of the largest weight.
    """
    read, write = [], []
    for write_weights, read_weights in _weightings(model, task, length, num_batches, mode):
        read.append(read_weights[:, :length].max(axis=3).mean(axis=(1, 2)))
        write.append(write_weights[:, length + 1:].max(axis=3).mean(axis=(1, 2)))
    return {"read": np.concatenate(read), "write": np.concatenate(write)}


def waiting_on_written(model, task, length, num_batches, mode=None):
    """How much of the copy model's read head, while the input comes in, is on locations
    already written.

    A read head that waits during the input on a location the write head writes reads a
    vector of the input there, as it does at the output steps; then an all-zero input looks
    like an output step (the errors of :func:`copy_zero_vector_errors` on sequences that end
    in one). A head that waits on a location never written reads the memory's initial
    contents instead, which no output step shows. At input step :math:`t`, with
    :math:`u_t[i] = \\max_{s \\le t,\\, h} w^{\\mathrm{write}}_{s,h}[i]` how much location
    :math:`i` has been written so far, the overlap is :math:`\\sum_i w^{\\mathrm{read}}_t[i]
    \\, u_t[i]`.

    Parameters
    ----------
    model : utils.training.Model
        A copy model.
    task : utils.generators.CopyTask
        Draws the sequences.
    length : int
        Length of every sequence.
    num_batches : int
        Batches drawn.
    mode : str, optional
        PyTensor mode of the compiled functions (default: the example scripts').

    Returns
    -------
    ndarray
        Per sequence, the overlap's mean over the input steps and the read heads (0: never
        on a written location; 1: always).
    """
    overlaps = []
    for write_weights, read_weights in _weightings(model, task, length, num_batches, mode):
        # (batch, time, N): the most any write head has put on each location up to each step.
        written = np.maximum.accumulate(write_weights[:, :length].max(axis=2), axis=1)
        overlap = (read_weights[:, :length] * written[:, :, None, :]).sum(axis=3)
        overlaps.append(overlap.mean(axis=(1, 2)))
    return np.concatenate(overlaps)


def priority_gap_errors(model, task, num_batches, mode=None):
    """Bit errors of every output vector and its priority's distance to the nearest other.

    Parameters
    ----------
    model : utils.training.Model
        A priority sort model.
    task : utils.generators.PrioritySortTask
        Draws the sequences (with the task's ``num_items`` and ``num_sorted``).
    num_batches : int
        Batches drawn.
    mode : str, optional
        PyTensor mode of the compiled predictions (default: the example scripts').

    Returns
    -------
    gaps, errors : ndarray
        Per output vector: :math:`\\min_{j \\ne i} |p_i - p_j|` over the sequence's
        priorities, and the bits of the vector the model got wrong.
    """
    predict = _trainer(model, mode).predict
    first_output = task.num_items + 1
    all_gaps, all_errors = [], []
    for _ in range(num_batches):
        inputs, targets, _ = task.sample_with_mask()
        priorities = inputs[:, :task.num_items, task.size]
        distance = np.abs(priorities[:, :, None] - priorities[:, None, :])
        distance[:, np.arange(task.num_items), np.arange(task.num_items)] = np.inf
        nearest = distance.min(axis=2)
        # The target's k-th vector is the k-th highest priority (as the generator orders it).
        order = np.argsort(-priorities, axis=1, kind="stable")[:, :task.num_sorted]
        all_gaps.append(np.take_along_axis(nearest, order, axis=1).ravel())
        wrong = (predict(inputs)[:, first_output:] > 0.5) != (targets[:, first_output:] > 0.5)
        all_errors.append(wrong.sum(axis=2).ravel())
    return np.concatenate(all_gaps), np.concatenate(all_errors)


def resolution_limited_cost(inputs, targets, num_items, size, resolution):
    """Bits per sequence of an ideal sorter that cannot order priorities closer than a
    resolution.

    Sorted by priority, the items fall into clusters: runs of consecutive items whose
    priorities are less than ``resolution`` apart. The sorter knows every cluster and its
    place in the order but not the order within it, so at each output step of a cluster
    every member is as likely; its best prediction there is the members' mean vector
    :math:`\\bar v_C`, and its cost the cross-entropy of the target under it:

    .. math:: c = -\\sum_{k < K} \\sum_j \\log_2 \\left( y_{kj} \\bar v_{C(k) j}
              + (1 - y_{kj}) (1 - \\bar v_{C(k) j}) \\right)

    over the ``K`` output steps. A resolution of 0 costs nothing; two items alone in a cluster
    cost 2 bits for every bit in which their vectors differ.

    Parameters
    ----------
    inputs, targets : ndarray
        A batch of the priority sort task, ``(batch, time, size + 2)`` and
        ``(batch, time, size)``: the items on the first ``num_items`` steps (vector, then
        priority), the sorted vectors on the last ``K`` steps.
    num_items, size : int
        Items per sequence and bits per vector.
    resolution : float
        Priorities closer than this are not told apart (>= 0).

    Returns
    -------
    ndarray
        Bits per sequence, ``(batch,)``.
    """
    if not resolution >= 0:
        raise ValueError(f"resolution: must be >= 0, got {resolution!r}")
    priorities = inputs[:, :num_items, size]
    vectors = inputs[:, :num_items, :size]
    num_sorted = targets.shape[1] - num_items - 1
    order = np.argsort(-priorities, axis=1, kind="stable")
    ranked = np.take_along_axis(priorities, order, axis=1)
    ranked_vectors = np.take_along_axis(vectors, order[:, :, None], axis=1)
    # Cluster ids along each sequence's order: a new cluster where the gap is >= resolution.
    starts = np.concatenate([np.ones((len(inputs), 1), bool),
                             ranked[:, :-1] - ranked[:, 1:] >= resolution], axis=1)
    cluster = np.cumsum(starts, axis=1) - 1
    same = cluster[:, :, None] == cluster[:, None, :]  # (batch, rank, rank)
    members = same.sum(axis=2)[..., None]
    means = (same[:, :, :, None] * ranked_vectors[:, None]).sum(axis=2) / members
    prediction = means[:, :num_sorted]
    target = targets[:, num_items + 1:]
    likelihood = np.where(target > 0.5, prediction, 1 - prediction)
    return -np.log2(np.maximum(likelihood, 1e-300)).sum(axis=(1, 2))


def write_locations(model, task, num_batches, mode=None):
    """Which write head writes each input vector, and where, with the vector's priority.

    Parameters
    ----------
    model : utils.training.Model
        A priority sort model (an NTM).
    task : utils.generators.PrioritySortTask
        Draws the sequences.
    num_batches : int
        Batches drawn.
    mode : str, optional
        PyTensor mode of the compiled function (default: the example scripts').

    Returns
    -------
    priorities, heads, locations, peaks : ndarray
        Per input vector: its priority; the write head whose weighting is sharpest at its
        step (the largest peak weight: the head that writes it, where several heads share
        the priority range between them; heads parked on one location for nine vectors in
        ten are left out); the location where that head's weighting peaks; and the peak's
        weight.
    """
    details = _trainer(model, mode).details
    priorities, weights = [], []
    for _ in range(num_batches):
        inputs, _, _ = task.sample_with_mask()
        priorities.append(inputs[:, :task.num_items, task.size])
        # (batch, time, write heads, N) at the input steps
        weights.append(details(inputs)[3][:, :task.num_items])
    priorities = np.concatenate(priorities).ravel()
    weights = np.concatenate(weights)
    weights = weights.reshape(-1, *weights.shape[2:])  # (vectors, heads, N)
    peaks, spots = weights.max(axis=2), weights.argmax(axis=2)
    # A head parked on one location (nine vectors in ten or more) writes nothing that
    # depends on the priority, however sharp it is there.
    parked = np.array([np.bincount(spots[:, head]).max() >= 0.9 * len(spots)
                       for head in range(spots.shape[1])])
    if not parked.all():
        peaks = np.where(parked, -1.0, peaks)
    heads = peaks.argmax(axis=1)
    chosen = weights[np.arange(len(heads)), heads]
    return priorities, heads, chosen.argmax(axis=1), chosen.max(axis=1)


def _copy(args):
    task = CopyTask(size=8, batch_size=args.batch_size, seed=args.seed)
    model, _ = training.load_model(args.model, task, best=args.best)
    split = copy_zero_vector_errors(model, task, args.length, args.batches)
    total = sum(len(errors) for errors in split.values())  # before "with" is added
    print(f"{args.model}, {total} sequences of length {args.length}:")
    print("| sequences | share | bit errors per sequence | perfect |")
    print("|---|---|---|---|")
    split["with"] = np.concatenate([split["last"], split["elsewhere"]])
    for name, label in (("with", "with an all-zero vector"), ("last", "- the last vector"),
                        ("elsewhere", "- elsewhere only"), ("without", "without one")):
        errors = split[name]
        if len(errors):
            print(f"| {label} | {len(errors) / total:.1%} | {errors.mean():.2f} | "
                  f"{(errors == 0).mean():.0%} |")
        else:
            print(f"| {label} | 0 | - | - |")
    focus = idle_head_focus(model, CopyTask(size=8, batch_size=args.batch_size, seed=args.seed),
                            args.focus_length, args.batches)
    print(f"\nthe heads where they have nothing to do, {len(focus['read'])} sequences of length "
          f"{args.focus_length} (largest weight, mean; 1: one location, "
          f"{1 / model.memory_shape[0]:.3f}: spread over all):")
    for kind, phase in (("read", "while the input comes in"),
                        ("write", "while the copy goes out")):
        value = focus[kind].mean()
        verdict = "focused" if value >= FOCUSED else "spread: expect errors on long sequences"
        print(f"  {kind} heads {phase}: {value:.2f} ({verdict})")
    waiting = waiting_on_written(model, CopyTask(size=8, batch_size=args.batch_size,
                                                 seed=args.seed), args.focus_length, args.batches)
    verdict = ("it reads input vectors there: expect errors on sequences that end in an "
               "all-zero vector" if waiting.mean() >= 0.5 else "it reads unwritten memory there")
    print(f"  read heads while the input comes in, on locations already written: "
          f"{waiting.mean():.2f} ({verdict})")


def _priority_sort(args):
    def task():  # the same sequences for both tables
        return PrioritySortTask(batch_size=args.batch_size, seed=args.seed)

    model, _ = training.load_model(args.model, task(), best=args.best)
    priorities, heads, locations, peaks = write_locations(model, task(), args.batches)
    print(f"{args.model}: which write head writes each input vector and where, by priority "
          f"({len(priorities)} input vectors; the write head with the sharpest weighting at "
          f"the vector's step; mean peak weight {peaks.mean():.2f}):")
    print("| priority | written by | its locations (10th-90th percentile) | median |")
    print("|---|---|---|---|")
    for low, high in zip(PRIORITY_BINS[:-1], PRIORITY_BINS[1:]):
        inside = (priorities >= low) & (priorities < high)
        if inside.any():
            counts = np.bincount(heads[inside])
            head = int(counts.argmax())
            spots = locations[inside & (heads == head)]
            print(f"| {low:g} to {high:g} | head {head} ({counts[head] / inside.sum():.0%}) | "
                  f"{np.percentile(spots, 10):.0f}-{np.percentile(spots, 90):.0f} | "
                  f"{np.median(spots):.0f} |")
    gaps, errors = priority_gap_errors(model, task(), args.batches)
    num_sequences = len(errors) // task().num_sorted
    print(f"\nbit errors of the output vectors, {num_sequences} sequences, "
          f"{errors.sum() / num_sequences:.2f} bit errors per sequence:")
    print("| distance to the nearest other priority | output vectors | bit errors each | "
          "share of the errors |")
    print("|---|---|---|---|")
    for low, high in zip(GAP_BINS[:-1], GAP_BINS[1:]):
        inside = (gaps >= low) & (gaps < high)
        each = errors[inside].mean() if inside.any() else 0.0
        print(f"| {low:g} - {high:g} | {inside.mean():.1%} | {each:.2f} | "
              f"{errors[inside].sum() / max(errors.sum(), 1):.1%} |")
    sequences = task()
    batches = [sequences.sample_with_mask() for _ in range(args.batches)]
    predict = _trainer(model, None).predict
    model_bits = np.concatenate([training.score(predict(x), y, mask)[0] for x, y, mask in batches])
    print(f"\nan ideal sorter that cannot order priorities closer than r, on the same "
          f"{num_sequences} sequences (the model: {model_bits.mean():.1f} bits per sequence):")
    print("| r | bits per sequence |")
    print("|---|---|")
    for resolution in RESOLUTIONS:
        cost = np.concatenate([resolution_limited_cost(x, y, sequences.num_items, sequences.size,
                                                       resolution) for x, y, _ in batches])
        print(f"| {resolution:g} | {cost.mean():.1f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("analysis", choices=("copy", "priority_sort"))
    parser.add_argument("model", help="checkpoint PATH.npz of a model trained on that task")
    parser.add_argument("--length", type=int, default=20, help="copy: sequence length")
    parser.add_argument("--focus-length", type=int, default=20,
                        help="copy: length of the sequences of the heads' focus (default: 20, "
                             "the longest trained on)")
    parser.add_argument("--batches", type=int, default=20, help="batches drawn (default: 20)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the data")
    parser.add_argument("--best", action="store_true",
                        help="use the checkpoint's --keep-best parameters")
    args = parser.parse_args(argv)
    for name in ("length", "focus_length", "batches", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        (_copy if args.analysis == "copy" else _priority_sort)(args)
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
