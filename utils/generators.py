r"""Example generators for the Neural Turing Machine tasks (NumPy only).

The tasks are those of the NTM paper (Graves, Wayne & Danihelka 2014, section 4): copy, repeat
copy, associative recall, dynamic n-grams and priority sort; the extra algorithmic tasks of
NTM-Lasagne: reversed copy, upside-down copy, sort and Dyck words; and question answering in the
style of the bAbI tasks 1-3 (Weston et al. 2015), with a loader for the original bAbI files.

Every task follows one interface:

* ``task = CopyTask(max_iter=None, batch_size=1, seed=None, dtype=np.float32, ...)``;
* iterating over it yields ``(i, (input, target))`` for ``i = 0, 1, ...`` (``max_iter`` items,
  or without end when ``max_iter`` is None), each array of shape ``(batch, time, features)``;
* ``task.sample_params(**fixed)`` draws one episode's parameters (e.g. ``{"length": 7}``),
  keeping the ones given, so ``task.sample(length=120)`` tests generalisation beyond the
  training range; every sequence of a batch shares these parameters;
* ``task.sample(**params)`` returns ``(input, target)`` and ``task.sample_with_mask(**params)``
  returns ``(input, target, mask)``, the mask of shape ``(batch, time)`` being 1 at the steps
  whose output is scored;
* ``task.input_size`` and ``task.output_size`` give the number of input and output features;
* ``task.get_state()`` / ``task.set_state(state)`` save and restore the random generator (a
  JSON-serialisable dict), so that a run can be checkpointed and resumed exactly.

Binary vectors are made of independent Bernoulli(1/2) bits. The scores of
:mod:`utils.metrics` (:func:`bits_per_sequence`, :func:`bit_errors`) are re-exported here.
"""
import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import bit_errors, bits_per_sequence

__all__ = [
    "Task",
    "CopyTask",
    "ReversedCopyTask",
    "UpsideDownCopyTask",
    "SortTask",
    "RepeatCopyTask",
    "AssociativeRecallTask",
    "DynamicNGramsTask",
    "PrioritySortTask",
    "DyckWordsTask",
    "BabiLine",
    "BabiStory",
    "BabiTask",
    "BabiFileTask",
    "parse_babi",
    "load_babi",
    "build_babi_vocabulary",
    "encode_babi",
    "BABI_ENCODINGS",
    "decode_babi",
    "BABI_VOCABULARY_WITHOUT_BACK",
    "format_babi",
    "bits_per_sequence",
    "bit_errors",
]


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------

def _check_int(name, value, minimum=None):
    """Return ``value`` as an int, or raise a ValueError naming ``name``."""
    # bool is an int subclass, but True as a length is almost certainly a mistake
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _check_order(min_name, min_value, max_name, max_value):
    if min_value > max_value:
        raise ValueError(
            f"{min_name} ({min_value}) must not exceed {max_name} ({max_value})")


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _jsonable(value):
    """Copy of a bit generator state with NumPy arrays and scalars turned into Python ones."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------

class Task:
    """Base class of the tasks: an iterator over random batches of examples.

    Parameters
    ----------
    max_iter : int or None
        Number of batches the iterator yields; None (default) yields batches without end.
    batch_size : int
        Number of sequences in a batch (>= 1).
    seed : None, int, array_like of ints, numpy.random.SeedSequence or numpy.random.Generator
        Seed of the random generator, passed to :func:`numpy.random.default_rng`; the same seed
        reproduces the same batches.
    dtype : numpy dtype
        Floating-point type of the arrays (pass ``pytensor.config.floatX`` to match a model).

    Attributes
    ----------
    input_size, output_size : int
        Number of input and output features.
    num_iter : int
        Number of batches the iterator has yielded so far.
    rng : numpy.random.Generator
        The task's random generator.
    param_names : tuple of str
        The episode parameters :meth:`sample_params` draws and a caller may fix.
    """

    param_names = ()

    def __init__(self, max_iter=None, batch_size=1, seed=None, dtype=np.float32):
        if max_iter is not None:
            max_iter = _check_int("max_iter", max_iter, 0)
        self.max_iter = max_iter
        self.batch_size = _check_int("batch_size", batch_size, 1)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype!r}") from None
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point dtype, got {self.dtype}")
        self.rng = np.random.default_rng(seed)
        self.num_iter = 0
        self.input_size = None
        self.output_size = None

    # iterator protocol ------------------------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        if self.max_iter is not None and self.num_iter >= self.max_iter:
            raise StopIteration
        batch = self.sample()
        index = self.num_iter
        self.num_iter += 1
        return index, batch

    # sampling -----------------------------------------------------------------------------

    def sample_params(self, **fixed):
        """Draw the parameters of one episode, keeping those given.

        Parameters
        ----------
        **fixed
            Values for some of :attr:`param_names` (None means "draw it"). Fixed values may lie
            outside the training range, to test generalisation.

        Returns
        -------
        dict
            A value for every name in :attr:`param_names`.
        """
        unknown = sorted(set(fixed) - set(self.param_names))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for {type(self).__name__}; "
                f"expected some of {list(self.param_names)}")
        params = self._draw_params()
        params.update({name: value for name, value in fixed.items() if value is not None})
        return self._check_params(params)

    def sample(self, **params):
        """Build one batch.

        Parameters
        ----------
        **params
            Episode parameters to fix (see :meth:`sample_params`); the others are drawn.

        Returns
        -------
        input, target : ndarray of shape ``(batch, time, input_size)`` and
            ``(batch, time, output_size)``
        """
        inputs, targets, _ = self.sample_with_mask(**params)
        return inputs, targets

    def sample_with_mask(self, **params):
        """Build one batch and the mask of its scored steps.

        Parameters
        ----------
        **params
            Episode parameters to fix (see :meth:`sample_params`); the others are drawn.

        Returns
        -------
        input : ndarray of shape ``(batch, time, input_size)``
        target : ndarray of shape ``(batch, time, output_size)``
        mask : ndarray of shape ``(batch, time)``
            1 at the steps whose output is scored, 0 elsewhere.
        """
        params = self.sample_params(**params)
        inputs, targets, mask = self._generate(**params)
        return (inputs.astype(self.dtype), targets.astype(self.dtype), mask.astype(self.dtype))

    # random state -------------------------------------------------------------------------

    def get_state(self):
        """The state of the random generator and the iteration count, for checkpoints.

        Returns
        -------
        dict
            JSON-serialisable: ``{"bit_generator": <rng.bit_generator.state>, "num_iter": int}``.
        """
        return {"bit_generator": _jsonable(self.rng.bit_generator.state),
                "num_iter": self.num_iter}

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state` (possibly through JSON).

        Parameters
        ----------
        state : dict
            ``{"bit_generator": ..., "num_iter": ...}``; ``num_iter`` may be left out.
        """
        if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), dict):
            raise ValueError(
                "state must be a dict with a 'bit_generator' dict, as returned by get_state()")
        generator_state = state["bit_generator"]
        expected = type(self.rng.bit_generator).__name__
        if generator_state.get("bit_generator") != expected:
            raise ValueError(
                f"state['bit_generator'] is a state of "
                f"{generator_state.get('bit_generator')!r}, expected {expected!r}")
        num_iter = _check_int("state['num_iter']", state.get("num_iter", self.num_iter), 0)
        # deep copy: the caller's dict must not alias the generator's state
        self.rng.bit_generator.state = copy.deepcopy(generator_state)
        self.num_iter = num_iter

    # for subclasses -----------------------------------------------------------------------

    def _draw_params(self):
        """Return a dict with a random value for every name in :attr:`param_names`."""
        return {}

    def _check_params(self, params):
        """Validate (and normalise) the episode parameters; return them."""
        return params

    def _generate(self, **params):
        """Return ``(input, target, mask)`` as float arrays for the given parameters."""
        raise NotImplementedError

    def _random_bits(self, shape):
        return self.rng.integers(0, 2, size=shape)


# --------------------------------------------------------------------------------------------
# Copy and its variants
# --------------------------------------------------------------------------------------------

class CopyTask(Task):
    """Copy: read a sequence of random binary vectors, then write it back.

    Layout for a sequence of ``length`` vectors (``time = 2 * length + 1``, plus one step with
    ``end_marker``):

    * input, ``size + 1`` channels: steps ``0 .. length-1`` hold the vectors on the first
      ``size`` channels; step ``length`` has only the delimiter channel (the last) set; the
      remaining ``length`` steps are blank;
    * target, ``size`` channels: zero, except steps ``length+1 .. 2*length`` which hold the
      sequence (as transformed by the variant of the task);
    * mask: 1 on those ``length`` output steps.

    With ``end_marker=True`` one step is added at the end and the target has an extra channel
    (the last) that must be 1 on that final step only, to signal that the copy is over; the mask
    then also covers that step (and the extra channel is scored, as 0, during the copy).

    Parameters
    ----------
    size : int
        Number of bits of each vector (the paper uses 8).
    min_length, max_length : int
        Range of the sequence length drawn for each batch (paper: 1 to 20).
    end_marker : bool
        Whether the target ends with an end-of-output marker (see above).
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Notes
    -----
    Episode parameter: ``length``.
    """

    param_names = ("length",)

    def __init__(self, size=8, min_length=1, max_length=20, end_marker=False, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_int("size", size, 1)
        self.min_length = _check_int("min_length", min_length, 1)
        self.max_length = _check_int("max_length", max_length, 1)
        _check_order("min_length", self.min_length, "max_length", self.max_length)
        self.end_marker = _check_bool("end_marker", end_marker)
        self.input_size = self.size + 1
        self.output_size = self.size + int(self.end_marker)

    def _draw_params(self):
        return {"length": int(self.rng.integers(self.min_length, self.max_length,
                                                endpoint=True))}

    def _check_params(self, params):
        params["length"] = _check_int("length", params["length"], 1)
        return params

    def _target_sequence(self, sequence):
        """The sequence the model must write, from the one it read, ``(batch, length, size)``."""
        return sequence

    def _generate(self, length):
        size, extra = self.size, int(self.end_marker)
        sequence = self._random_bits((self.batch_size, length, size))
        time = 2 * length + 1 + extra
        inputs = np.zeros((self.batch_size, time, self.input_size))
        targets = np.zeros((self.batch_size, time, self.output_size))
        mask = np.zeros((self.batch_size, time))
        inputs[:, :length, :size] = sequence
        inputs[:, length, size] = 1.0
        targets[:, length + 1:2 * length + 1, :size] = self._target_sequence(sequence)
        mask[:, length + 1:] = 1.0
        if extra:
            targets[:, -1, size] = 1.0
        return inputs, targets, mask


class ReversedCopyTask(CopyTask):
    """Reversed copy: like :class:`CopyTask`, but the sequence is written back last vector first.

    The target's copy phase holds ``sequence[:, ::-1]``; everything else, parameters included,
    is as in :class:`CopyTask`.
    """

    def _target_sequence(self, sequence):
        return sequence[:, ::-1]


class UpsideDownCopyTask(CopyTask):
    """Upside-down copy: like :class:`CopyTask`, but each vector is written with its bits in
    reverse order (the heat map of the sequence flipped upside down).

    The target's copy phase holds ``sequence[:, :, ::-1]``; everything else, parameters
    included, is as in :class:`CopyTask`.
    """

    def _target_sequence(self, sequence):
        return sequence[:, :, ::-1]


class SortTask(CopyTask):
    """Sort: like :class:`CopyTask`, but the vectors are written back in sorted order.

    Each vector is read as a binary number whose most significant bit is the first channel, and
    the vectors are written in ascending order of that number. Equal vectors are equal numbers,
    so the order is fully determined (the sort is stable all the same). Layout and parameters are
    those of :class:`CopyTask`.
    """

    def _target_sequence(self, sequence):
        # lexsort's primary key is its last: reverse the channels so channel 0 decides first
        order = np.stack([np.lexsort(vectors.T[::-1]) for vectors in sequence])
        return np.take_along_axis(sequence, order[:, :, None], axis=1)


# --------------------------------------------------------------------------------------------
# Repeat copy
# --------------------------------------------------------------------------------------------

class RepeatCopyTask(Task):
    """Repeat copy: read a sequence and a repeat count, write the sequence that many times.

    Input, ``size + 2`` channels: the vectors on the first ``size`` channels (steps
    ``0 .. length-1``), then the count block, which starts at step ``length`` with the delimiter
    channel (index ``size``) set, the count being given on the count channel (index ``size+1``):

    * ``unary=False`` (the paper): the block is the single step ``length``, whose count channel
      holds ``(repeats - mean) / std``, normalised with the mean and standard deviation of the
      discrete uniform distribution on ``min_repeats .. max_repeats`` (fixed at construction, so
      that counts beyond the training range are normalised the same way);
    * ``unary=True`` (NTM-Lasagne's option): the block is ``repeats`` steps with the count
      channel set to 1.

    Target, ``size`` channels plus, with ``end_marker``, an end channel (index ``size``): zero
    until the count block is over, then the sequence ``repeats`` times in a row, then (with
    ``end_marker``) one step with only the end channel set. The mask is 1 on those output steps.
    So ``time = length + count_steps + repeats * length + end_marker``.

    Parameters
    ----------
    size : int
        Number of bits of each vector (paper: 8).
    min_length, max_length : int
        Range of the sequence length (paper: 1 to 10).
    min_repeats, max_repeats : int
        Range of the number of repeats (paper: 1 to 10).
    unary : bool
        Give the count as ``repeats`` steps of the count channel instead of one scalar.
    end_marker : bool
        Whether the model must signal the end of its output on an extra channel.
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Attributes
    ----------
    repeats_mean, repeats_std : float
        The normalisation of the scalar count (std 1 when the range holds a single value).

    Notes
    -----
    Episode parameters: ``length``, ``repeats``.
    """

    param_names = ("length", "repeats")

    def __init__(self, size=8, min_length=1, max_length=10, min_repeats=1, max_repeats=10,
                 unary=False, end_marker=True, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_int("size", size, 1)
        self.min_length = _check_int("min_length", min_length, 1)
        self.max_length = _check_int("max_length", max_length, 1)
        _check_order("min_length", self.min_length, "max_length", self.max_length)
        self.min_repeats = _check_int("min_repeats", min_repeats, 1)
        self.max_repeats = _check_int("max_repeats", max_repeats, 1)
        _check_order("min_repeats", self.min_repeats, "max_repeats", self.max_repeats)
        self.unary = _check_bool("unary", unary)
        self.end_marker = _check_bool("end_marker", end_marker)
        num_values = self.max_repeats - self.min_repeats + 1
        self.repeats_mean = (self.min_repeats + self.max_repeats) / 2.0
        # variance of the discrete uniform distribution on num_values consecutive integers
        self.repeats_std = math.sqrt((num_values ** 2 - 1) / 12.0) if num_values > 1 else 1.0
        self.input_size = self.size + 2
        self.output_size = self.size + int(self.end_marker)

    def normalise_repeats(self, repeats):
        """The scalar the count channel holds for ``repeats`` when ``unary`` is False."""
        return (repeats - self.repeats_mean) / self.repeats_std

    def _draw_params(self):
        return {
            "length": int(self.rng.integers(self.min_length, self.max_length, endpoint=True)),
            "repeats": int(self.rng.integers(self.min_repeats, self.max_repeats, endpoint=True)),
        }

    def _check_params(self, params):
        params["length"] = _check_int("length", params["length"], 1)
        params["repeats"] = _check_int("repeats", params["repeats"], 1)
        return params

    def _generate(self, length, repeats):
        size, extra = self.size, int(self.end_marker)
        sequence = self._random_bits((self.batch_size, length, size))
        count_steps = repeats if self.unary else 1
        start = length + count_steps
        time = start + repeats * length + extra
        inputs = np.zeros((self.batch_size, time, self.input_size))
        targets = np.zeros((self.batch_size, time, self.output_size))
        mask = np.zeros((self.batch_size, time))
        inputs[:, :length, :size] = sequence
        inputs[:, length, size] = 1.0
        if self.unary:
            inputs[:, length:start, size + 1] = 1.0
        else:
            inputs[:, length, size + 1] = self.normalise_repeats(repeats)
        targets[:, start:start + repeats * length, :size] = np.tile(sequence, (1, repeats, 1))
        if extra:
            targets[:, -1, size] = 1.0
        mask[:, start:] = 1.0
        return inputs, targets, mask


# --------------------------------------------------------------------------------------------
# Associative recall
# --------------------------------------------------------------------------------------------

class AssociativeRecallTask(Task):
    """Associative recall: after a list of items, given one item, return the next one.

    An item is ``item_length`` binary vectors of ``size`` bits. Input, ``size + 2`` channels
    (item delimiter at index ``size``, query delimiter at index ``size+1``):

    * for each of the ``num_items`` items: one step with only the item delimiter set, then the
      item's ``item_length`` vectors;
    * one step with only the query delimiter set, the query item (a copy of one of the items
      other than the last, chosen uniformly per sequence), the query delimiter again;
    * ``item_length`` blank steps, during which the target holds the item that followed the
      query in the list.

    Target: ``size`` channels, zero except those last ``item_length`` steps; mask 1 there.
    ``time = num_items * (item_length + 1) + 2 * item_length + 2``. The items of a sequence are
    all different, so the answer is always well defined.

    Parameters
    ----------
    size : int
        Bits per vector (paper: 6).
    item_length : int
        Vectors per item (paper: 3).
    min_num_items, max_num_items : int
        Range of the number of items (paper: 2 to 6); at least 2, and at most the number of
        different items, ``2 ** (size * item_length)``.
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Notes
    -----
    Episode parameter: ``num_items``.
    """

    param_names = ("num_items",)

    def __init__(self, size=6, item_length=3, min_num_items=2, max_num_items=6, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_int("size", size, 1)
        self.item_length = _check_int("item_length", item_length, 1)
        self.min_num_items = _check_int("min_num_items", min_num_items, 2)
        self.max_num_items = _check_int("max_num_items", max_num_items, 2)
        _check_order("min_num_items", self.min_num_items, "max_num_items", self.max_num_items)
        self._check_num_items("max_num_items", self.max_num_items)
        self.input_size = self.size + 2
        self.output_size = self.size

    def _check_num_items(self, name, num_items):
        available = 2 ** (self.size * self.item_length)
        if num_items > available:
            raise ValueError(
                f"{name} ({num_items}) exceeds the {available} different items of "
                f"item_length={self.item_length} vectors of size={self.size} bits")

    def _draw_params(self):
        return {"num_items": int(self.rng.integers(self.min_num_items, self.max_num_items,
                                                   endpoint=True))}

    def _check_params(self, params):
        params["num_items"] = _check_int("num_items", params["num_items"], 2)
        self._check_num_items("num_items", params["num_items"])
        return params

    def _distinct_items(self, num_items):
        """Random items, ``(batch, num_items, item_length, size)``, all different per sequence."""
        shape = (self.item_length, self.size)
        items = self._random_bits((self.batch_size, num_items) + shape)
        for sequence_items in items:
            while True:
                flat = sequence_items.reshape(num_items, -1)
                _, first = np.unique(flat, axis=0, return_index=True)
                if len(first) == num_items:
                    break
                # redraw the later copies of repeated items until none is left
                repeated = np.setdiff1d(np.arange(num_items), first)
                sequence_items[repeated] = self._random_bits((len(repeated),) + shape)
        return items

    def _generate(self, num_items):
        size, width = self.size, self.item_length
        items = self._distinct_items(num_items)
        query = self.rng.integers(0, num_items - 1, size=self.batch_size)
        batch = np.arange(self.batch_size)
        query_start = num_items * (width + 1)
        answer_start = query_start + width + 2
        time = answer_start + width
        inputs = np.zeros((self.batch_size, time, self.input_size))
        targets = np.zeros((self.batch_size, time, self.output_size))
        mask = np.zeros((self.batch_size, time))
        for k in range(num_items):
            start = k * (width + 1)
            inputs[:, start, size] = 1.0
            inputs[:, start + 1:start + 1 + width, :size] = items[:, k]
        inputs[:, query_start, size + 1] = 1.0
        inputs[:, query_start + 1:query_start + 1 + width, :size] = items[batch, query]
        inputs[:, query_start + 1 + width, size + 1] = 1.0
        targets[:, answer_start:, :] = items[batch, query + 1]
        mask[:, answer_start:] = 1.0
        return inputs, targets, mask


# --------------------------------------------------------------------------------------------
# Dynamic n-grams
# --------------------------------------------------------------------------------------------

class DynamicNGramsTask(Task):
    r"""Dynamic n-grams: predict the next bit of a sequence drawn from a random n-gram model.

    For each sequence a new lookup table gives, for each of the :math:`2^{n-1}` contexts (the
    previous ``n - 1`` bits), the probability that the next bit is 1, drawn from
    Beta(1/2, 1/2). The first ``n - 1`` bits have no full context and are Bernoulli(1/2); each
    later bit is drawn from the table entry of the ``n - 1`` bits before it.

    Layout, ``time = length``, one input and one output channel: input step ``t`` holds bit
    ``t``; target step ``t`` holds bit ``t + 1`` (the last step's target is 0). The mask is 1 on
    the steps ``t = max(n - 2, 0) .. length - 2``, whose targets are the bits drawn from the
    table (bits ``n - 1 .. length - 1``): the first ``n - 1`` bits are never scored, nor is the
    last step, which has no next bit.

    The Bayes-optimal predictor (paper, section 4.4) is available as
    :meth:`optimal_predictions`; :meth:`optimal_bits_per_sequence` scores it.

    Parameters
    ----------
    n : int
        Order of the n-gram model (paper: 6, i.e. a 5-bit context).
    length : int
        Bits per sequence (paper: 200); at least ``max(n, 2)`` so that one bit is scored.
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Notes
    -----
    Episode parameter: ``length`` (always the constructor's unless fixed).
    Contexts are numbered with the most recent bit as the least significant one.
    """

    param_names = ("length",)

    def __init__(self, n=6, length=200, **kwargs):
        super().__init__(**kwargs)
        self.n = _check_int("n", n, 1)
        if self.n > 24:
            # the lookup table has 2 ** (n - 1) entries per sequence
            raise ValueError(f"n must be at most 24, got {self.n}")
        self.length = self._check_length("length", length)
        self.input_size = 1
        self.output_size = 1

    def _check_length(self, name, length):
        return _check_int(name, length, max(self.n, 2))

    def _draw_params(self):
        return {"length": self.length}

    def _check_params(self, params):
        params["length"] = self._check_length("length", params["length"])
        return params

    def scored_mask(self, length):
        """The mask of the scored steps for sequences of ``length`` bits, shape ``(length,)``."""
        mask = np.zeros(length)
        mask[max(self.n - 2, 0):length - 1] = 1.0
        return mask

    def _context_weights(self):
        # bit j - 1 (the most recent) is the least significant bit of the context of bit j
        return 2 ** np.arange(self.n - 2, -1, -1)

    def _generate(self, length):
        num_contexts = 2 ** (self.n - 1)
        tables = self.rng.beta(0.5, 0.5, size=(self.batch_size, num_contexts))
        uniforms = self.rng.random((self.batch_size, length))
        bits = np.zeros((self.batch_size, length), dtype=np.int64)
        bits[:, :self.n - 1] = uniforms[:, :self.n - 1] < 0.5
        weights = self._context_weights()
        batch = np.arange(self.batch_size)
        for j in range(self.n - 1, length):
            context = bits[:, j - self.n + 1:j] @ weights
            bits[:, j] = uniforms[:, j] < tables[batch, context]
        inputs = bits[:, :, None].astype(np.float64)
        targets = np.zeros_like(inputs)
        targets[:, :-1, 0] = bits[:, 1:]
        mask = np.tile(self.scored_mask(length), (self.batch_size, 1))
        return inputs, targets, mask

    def optimal_predictions(self, inputs):
        r"""The Bayes-optimal probabilities that each next bit is 1.

        With a Beta(1/2, 1/2) prior on each table entry, the posterior predictive is

        .. math::
            P(B = 1 \mid N_1, N_0, c) = \frac{N_1 + 1/2}{N_1 + N_0 + 1}

        where :math:`c` is the context of the ``n - 1`` bits up to step ``t`` and :math:`N_1`,
        :math:`N_0` count the ones and zeros that followed :math:`c` so far in the sequence
        (among the bits drawn from the table, up to bit ``t``).

        Parameters
        ----------
        inputs : array_like of shape ``(batch, time, 1)``
            Input sequences of this task (values above 0.5 are read as 1).

        Returns
        -------
        ndarray of shape ``(batch, time, 1)``
            Step ``t`` holds the probability that bit ``t + 1`` is 1; 0.5 at the steps before
            the first full context.
        """
        inputs = np.asarray(inputs)
        if inputs.ndim != 3 or inputs.shape[2] != 1:
            raise ValueError(
                f"inputs must have shape (batch, time, 1), got shape {inputs.shape}")
        bits = (inputs[:, :, 0] > 0.5).astype(np.int64)
        batch_size, time = bits.shape
        counts = np.zeros((batch_size, 2 ** (self.n - 1), 2))
        predictions = np.full((batch_size, time), 0.5)
        weights = self._context_weights()
        batch = np.arange(batch_size)
        # j is the bit being predicted, from step t = j - 1
        for j in range(self.n - 1, time + 1):
            context = bits[:, j - self.n + 1:j] @ weights
            zeros, ones = counts[batch, context, 0], counts[batch, context, 1]
            if j >= 1:
                predictions[:, j - 1] = (ones + 0.5) / (ones + zeros + 1.0)
            if j < time:
                # bit j becomes evidence for the later predictions in the same context
                counts[batch, context, bits[:, j]] += 1
        return predictions[:, :, None]

    def optimal_bits_per_sequence(self, inputs, targets, mask=None, reduce="mean"):
        """Bits per sequence of the Bayes-optimal predictor on a batch.

        Parameters
        ----------
        inputs, targets : array_like of shape ``(batch, time, 1)``
            A batch of this task.
        mask : array_like of shape ``(batch, time)``, optional
            Scored steps; default: the task's own mask (see :meth:`scored_mask`).
        reduce : {"mean", "sum", "none"}
            As in :func:`utils.metrics.bits_per_sequence`.

        Returns
        -------
        float or ndarray
        """
        predictions = self.optimal_predictions(inputs)
        if mask is None:
            mask = np.tile(self.scored_mask(predictions.shape[1]), (predictions.shape[0], 1))
        return bits_per_sequence(predictions, targets, mask, reduce=reduce)


# --------------------------------------------------------------------------------------------
# Priority sort
# --------------------------------------------------------------------------------------------

class PrioritySortTask(Task):
    """Priority sort: read vectors with priorities, write the highest-priority ones in order.

    Input, ``size + 2`` channels: steps ``0 .. num_items-1`` hold a random binary vector on the
    first ``size`` channels and its priority, drawn from U[-1, 1], on the priority channel
    (index ``size``); step ``num_items`` has only the delimiter channel (index ``size+1``) set;
    then ``num_sorted`` blank steps.

    Target, ``size`` channels: zero, except the last ``num_sorted`` steps, which hold the
    ``num_sorted`` vectors of highest priority, in descending order of priority (ties, which
    have probability zero, keep the input order). Mask 1 on those steps.
    ``time = num_items + 1 + num_sorted``.

    Parameters
    ----------
    size : int
        Bits per vector (paper: 8).
    num_items : int
        Vectors in the input (paper: 20).
    num_sorted : int
        Vectors in the output, at most ``num_items`` (paper: 16).
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Notes
    -----
    Episode parameters: ``num_items``, ``num_sorted`` (the constructor's unless fixed).
    """

    param_names = ("num_items", "num_sorted")

    def __init__(self, size=8, num_items=20, num_sorted=16, **kwargs):
        super().__init__(**kwargs)
        self.size = _check_int("size", size, 1)
        self.num_items = _check_int("num_items", num_items, 1)
        self.num_sorted = _check_int("num_sorted", num_sorted, 1)
        _check_order("num_sorted", self.num_sorted, "num_items", self.num_items)
        self.input_size = self.size + 2
        self.output_size = self.size

    def _draw_params(self):
        return {"num_items": self.num_items, "num_sorted": self.num_sorted}

    def _check_params(self, params):
        params["num_items"] = _check_int("num_items", params["num_items"], 1)
        params["num_sorted"] = _check_int("num_sorted", params["num_sorted"], 1)
        _check_order("num_sorted", params["num_sorted"], "num_items", params["num_items"])
        return params

    def _generate(self, num_items, num_sorted):
        size = self.size
        vectors = self._random_bits((self.batch_size, num_items, size))
        priorities = self.rng.uniform(-1.0, 1.0, size=(self.batch_size, num_items))
        time = num_items + 1 + num_sorted
        inputs = np.zeros((self.batch_size, time, self.input_size))
        targets = np.zeros((self.batch_size, time, self.output_size))
        mask = np.zeros((self.batch_size, time))
        inputs[:, :num_items, :size] = vectors
        inputs[:, :num_items, size] = priorities
        inputs[:, num_items, size + 1] = 1.0
        order = np.argsort(-priorities, axis=1, kind="stable")[:, :num_sorted]
        targets[:, num_items + 1:, :] = np.take_along_axis(vectors, order[:, :, None], axis=1)
        mask[:, num_items + 1:] = 1.0
        return inputs, targets, mask


# --------------------------------------------------------------------------------------------
# Dyck words
# --------------------------------------------------------------------------------------------

class DyckWordsTask(Task):
    """Dyck words: read brackets and tell, at every step, whether the prefix is well formed.

    A sequence is ``2 * num_pairs`` brackets, one per step, one-hot on 2 input channels
    (channel 0: ``(``, channel 1: ``)``), and always holds as many ``(`` as ``)``. With
    probability ``positive_fraction`` it is a Dyck word drawn uniformly among the Dyck words of
    that length; otherwise it is drawn uniformly among the arrangements that are not, so the
    model cannot answer by counting brackets alone.

    Target, 1 channel: at step ``t``, 1 if the prefix read so far (steps ``0 .. t``) is a Dyck
    word, i.e. its depth (number of ``(`` minus number of ``)``) is 0 at ``t`` and never went
    below 0; otherwise 0. The last step's label is therefore the label of the whole word. Mask:
    1 at every step, or only at the last step with ``only_final=True``.

    Parameters
    ----------
    min_pairs, max_pairs : int
        Range of the number of bracket pairs (the length is twice that).
    positive_fraction : float
        Probability that a sequence is a Dyck word, in [0, 1].
    only_final : bool
        Score only the last step (the word's label) instead of every prefix.
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Notes
    -----
    Episode parameter: ``num_pairs``.
    """

    param_names = ("num_pairs",)

    def __init__(self, min_pairs=1, max_pairs=10, positive_fraction=0.5, only_final=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.min_pairs = _check_int("min_pairs", min_pairs, 1)
        self.max_pairs = _check_int("max_pairs", max_pairs, 1)
        _check_order("min_pairs", self.min_pairs, "max_pairs", self.max_pairs)
        if not isinstance(positive_fraction, (int, float, np.number)) or isinstance(
                positive_fraction, bool) or not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be a number in [0, 1], "
                             f"got {positive_fraction!r}")
        self.positive_fraction = float(positive_fraction)
        self.only_final = _check_bool("only_final", only_final)
        self.input_size = 2
        self.output_size = 1

    def _draw_params(self):
        return {"num_pairs": int(self.rng.integers(self.min_pairs, self.max_pairs,
                                                   endpoint=True))}

    def _check_params(self, params):
        params["num_pairs"] = _check_int("num_pairs", params["num_pairs"], 1)
        return params

    @staticmethod
    def prefix_labels(steps):
        """Labels of the prefixes of bracket sequences given as +1 (``(``) / -1 (``)``) steps.

        Parameters
        ----------
        steps : array_like of shape ``(..., time)``

        Returns
        -------
        ndarray of bool, same shape: whether each prefix is a Dyck word.
        """
        depth = np.cumsum(steps, axis=-1)
        never_negative = np.minimum.accumulate(depth, axis=-1) >= 0
        return (depth == 0) & never_negative

    def _random_dyck_word(self, num_pairs):
        # Cycle lemma: of the rotations of a sequence of num_pairs + 1 "(" and num_pairs ")",
        # exactly one has all its partial sums positive, and it starts with "(" followed by a
        # Dyck word; a uniform shuffle thus gives a uniform Dyck word.
        steps = self.rng.permutation(np.r_[np.ones(num_pairs + 1), -np.ones(num_pairs)])
        partial = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
        last_minimum = len(partial) - 1 - np.argmin(partial[::-1])
        return np.roll(steps, -last_minimum)[1:]

    def _random_non_dyck_word(self, num_pairs):
        # a shuffle is a Dyck word with probability 1 / (num_pairs + 1): reject those
        balanced = np.r_[np.ones(num_pairs), -np.ones(num_pairs)]
        while True:
            steps = self.rng.permutation(balanced)
            if not self.prefix_labels(steps)[-1]:
                return steps

    def _generate(self, num_pairs):
        positive = self.rng.random(self.batch_size) < self.positive_fraction
        steps = np.stack([self._random_dyck_word(num_pairs) if is_positive
                          else self._random_non_dyck_word(num_pairs)
                          for is_positive in positive])
        time = 2 * num_pairs
        inputs = np.zeros((self.batch_size, time, 2))
        inputs[:, :, 0] = steps > 0
        inputs[:, :, 1] = steps < 0
        targets = self.prefix_labels(steps)[:, :, None].astype(np.float64)
        mask = np.ones((self.batch_size, time))
        if self.only_final:
            mask[:, :-1] = 0.0
        return inputs, targets, mask


# --------------------------------------------------------------------------------------------
# bAbI-style question answering
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BabiLine:
    """One numbered line of a bAbI story: a statement, or a question with its answer.

    Parameters
    ----------
    number : int
        The line's number in its story (from 1).
    words : tuple of str
        Lower-case words, without the final ``.`` or ``?``.
    answer : str or None
        The answer of a question (one token, e.g. ``"bathroom"``); None for a statement.
    supporting_facts : tuple of int
        Numbers of the lines that support the answer (empty when unknown).
    """

    number: int
    words: tuple
    answer: str | None = None
    supporting_facts: tuple = ()

    @property
    def is_question(self):
        """Whether the line is a question."""
        return self.answer is not None


@dataclass(frozen=True)
class BabiStory:
    """A bAbI story: its lines in order, statements and questions interleaved.

    Parameters
    ----------
    lines : tuple of BabiLine
    """

    lines: tuple

    @property
    def questions(self):
        """The question lines, in order."""
        return tuple(line for line in self.lines if line.is_question)


_END_OF_SENTENCE = "."
_QUESTION_MARK = "?"


def _tokenize(text):
    """Lower-case words of a sentence, punctuation marks ``.`` and ``?`` dropped."""
    return tuple(re.findall(r"[^\s.?]+", text.lower()))


def parse_babi(text, source="<text>"):
    """Parse stories in the bAbI text format.

    Each line is ``<number> <sentence>`` for a statement, or
    ``<number> <question>\\t<answer>\\t<supporting line numbers>`` for a question (the
    supporting numbers separated by spaces, optional). Numbering restarts at 1 for each story.

    Parameters
    ----------
    text : str
        The contents of a bAbI file.
    source : str
        Name used in error messages (e.g. the file name).

    Returns
    -------
    list of BabiStory
    """
    stories, lines = [], None
    for line_number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        match = re.match(r"\s*(\d+)\s+(.*\S)\s*$", raw)
        if match is None:
            raise ValueError(
                f"{source}, line {line_number}: expected '<number> <sentence>', got {raw!r}")
        number, body = int(match.group(1)), match.group(2)
        if number == 1:
            if lines:
                stories.append(BabiStory(tuple(lines)))
            lines = []
        elif lines is None:
            raise ValueError(
                f"{source}, line {line_number}: a story must start with line number 1, "
                f"got {number}")
        if "\t" in body:
            question, answer, *rest = body.split("\t") + [""]
            answer = answer.strip().lower()
            if not answer:
                raise ValueError(
                    f"{source}, line {line_number}: a question needs a tab-separated answer")
            supporting = rest[0].split() if rest else []
            if not all(fact.isdigit() for fact in supporting):
                raise ValueError(
                    f"{source}, line {line_number}: supporting facts must be line numbers, "
                    f"got {rest[0]!r}")
            lines.append(BabiLine(number, _tokenize(question), answer,
                                  tuple(int(fact) for fact in supporting)))
        else:
            lines.append(BabiLine(number, _tokenize(body)))
    if lines:
        stories.append(BabiStory(tuple(lines)))
    return stories


def load_babi(path, pattern="*.txt"):
    """Load bAbI stories from a file, or from the files of a directory.

    Parameters
    ----------
    path : str or pathlib.Path
        A bAbI text file, or a directory whose files matching ``pattern`` are read in sorted
        order (e.g. ``pattern="qa1_*_train.txt"``).
    pattern : str
        Glob pattern of the files to read in a directory.

    Returns
    -------
    list of BabiStory
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(file for file in path.glob(pattern) if file.is_file())
        if not files:
            raise ValueError(f"path {str(path)!r} holds no file matching {pattern!r}")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"path {str(path)!r} is neither a file nor a directory")
    stories = []
    for file in files:
        stories.extend(parse_babi(file.read_text(encoding="utf-8"), source=str(file)))
    return stories


def format_babi(stories):
    """Write stories in the bAbI text format (the inverse of :func:`parse_babi`).

    Parameters
    ----------
    stories : iterable of BabiStory

    Returns
    -------
    str
        One numbered line per statement (ending with ``.``) or question (ending with ``?``,
        then a tab and the answer, then, if there are any, a tab and the supporting line
        numbers).
    """
    text = []
    for story in stories:
        for line in story.lines:
            sentence = " ".join(line.words)
            if line.is_question:
                facts = " ".join(str(fact) for fact in line.supporting_facts)
                question = f"{line.number} {sentence}?\t{line.answer}"
                text.append(f"{question}\t{facts}" if facts else question)
            else:
                text.append(f"{line.number} {sentence}.")
    return "\n".join(text) + "\n"


def build_babi_vocabulary(stories):
    """The sorted list of the words, answers and punctuation tokens of some stories.

    Parameters
    ----------
    stories : iterable of BabiStory

    Returns
    -------
    list of str
    """
    words = {_END_OF_SENTENCE, _QUESTION_MARK}
    for story in stories:
        for line in story.lines:
            words.update(line.words)
            if line.is_question:
                words.add(line.answer)
    return sorted(words)


BABI_ENCODINGS = ("words", "sentences")


def _check_encoding(encoding):
    if encoding not in BABI_ENCODINGS:
        raise ValueError(f"encoding must be one of {BABI_ENCODINGS}, got {encoding!r}")
    return encoding


def _story_steps(story, encoding):
    """The story as ``(tokens, answer)`` steps; the answer step has no tokens.

    With ``encoding="words"`` each step holds one word (``.`` and ``?`` included); with
    ``"sentences"`` each step holds a whole statement or question, its ``.`` or ``?`` included.
    """
    steps = []
    for line in story.lines:
        end = _QUESTION_MARK if line.is_question else _END_OF_SENTENCE
        if encoding == "words":
            steps.extend(((word,), None) for word in line.words + (end,))
        else:
            steps.append((line.words + (end,), None))
        if line.is_question:
            # one blank step after the question, where the answer is expected
            steps.append(((), line.answer))
    return steps


def encode_babi(stories, vocabulary, dtype=np.float32, encoding="words"):
    """Encode stories as sequences of one-hot words, or of bags of words, one sentence a step.

    With ``encoding="words"``, each statement is its words then ``.``, one one-hot word per
    step; each question is its words, ``?``, and one blank answer step whose target is the
    one-hot answer and whose mask is 1. With ``encoding="sentences"``, each statement is one
    step whose input is the bag of its words and ``.`` (1 on the channel of every word it
    holds, the order lost, as in memory networks' bag-of-words sentences), each question one
    step (its words and ``?``), then the blank answer step. All other targets and mask entries
    are 0. Shorter stories are padded at the end with blank, unscored steps.

    Parameters
    ----------
    stories : sequence of BabiStory
    vocabulary : sequence of str
        The words, in the order of the one-hot channels (e.g. from
        :func:`build_babi_vocabulary`); it must contain ``.``, ``?`` and every word and answer.
    dtype : numpy dtype
        Floating-point type of the arrays.
    encoding : {"words", "sentences"}
        One word or one sentence per step.

    Returns
    -------
    input : ndarray of shape ``(len(stories), time, len(vocabulary))``
    target : ndarray of shape ``(len(stories), time, len(vocabulary))``
    mask : ndarray of shape ``(len(stories), time)``
    """
    stories = list(stories)
    if not stories:
        raise ValueError("stories must hold at least one story")
    _check_encoding(encoding)
    index = {word: i for i, word in enumerate(vocabulary)}
    if len(index) != len(vocabulary):
        raise ValueError("vocabulary must not hold a word twice")
    encoded = [_story_steps(story, encoding) for story in stories]
    time = max(len(steps) for steps in encoded)
    inputs = np.zeros((len(stories), time, len(vocabulary)), dtype=dtype)
    targets = np.zeros_like(inputs)
    mask = np.zeros((len(stories), time), dtype=dtype)
    for b, steps in enumerate(encoded):
        for t, (words, answer) in enumerate(steps):
            for token in words + ((answer,) if answer is not None else ()):
                if token not in index:
                    raise ValueError(f"word {token!r} is not in the vocabulary")
            for word in words:
                inputs[b, t, index[word]] = 1.0
            if answer is not None:
                targets[b, t, index[answer]] = 1.0
                mask[b, t] = 1.0
    return inputs, targets, mask


def decode_babi(array, vocabulary, mask=None):
    """Words of one-hot (or probability) sequences.

    Parameters
    ----------
    array : array_like of shape ``(batch, time, len(vocabulary))``
        Inputs, targets or a model's predictions.
    vocabulary : sequence of str
    mask : array_like of shape ``(batch, time)``, optional
        If given, only the steps where it is positive are decoded (e.g. the answers).

    Returns
    -------
    list of list
        Per sequence, the most likely word of each (selected) step; None for an all-zero step.
    """
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != len(vocabulary):
        raise ValueError(f"array must have shape (batch, time, {len(vocabulary)}), "
                         f"got shape {array.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != array.shape[:2]:
            raise ValueError(f"mask must have shape {array.shape[:2]}, got {mask.shape}")
    decoded = []
    for b in range(array.shape[0]):
        steps = range(array.shape[1]) if mask is None else np.flatnonzero(mask[b] > 0)
        decoded.append([vocabulary[int(np.argmax(array[b, t]))] if np.any(array[b, t])
                        else None for t in steps])
    return decoded


_PEOPLE = ("mary", "john", "sandra", "daniel")
_LOCATIONS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
_OBJECTS = ("apple", "football", "milk")
# The verbs of the bAbI dataset's stories ("went back to" among the moves).
_MOVE_PHRASES = (("moved",), ("went",), ("journeyed",), ("travelled",), ("went", "back"))
_PICK_UP_PHRASES = (("picked", "up"), ("got",), ("grabbed",), ("took",))
_DROP_PHRASES = (("dropped",), ("discarded",), ("put", "down"), ("left",))
_QUESTION_WORDS = ("where", "is", "was", "before", "to", "the")
# The words every story of a task needs, beside its move, pick-up and drop phrases.
_TASK_WORDS = {1: set(_PEOPLE + _LOCATIONS + ("to", "the", "where", "is")),
               2: set(_PEOPLE + _LOCATIONS + _OBJECTS + ("to", "the", "where", "is")),
               3: set(_PEOPLE + _LOCATIONS + _OBJECTS + ("to", "the", "where", "was", "before"))}
for _words in _TASK_WORDS.values():
    _words.update((_END_OF_SENTENCE, _QUESTION_MARK))


def _generator_vocabulary(went_back=True):
    words = set(_PEOPLE + _LOCATIONS + _OBJECTS + _QUESTION_WORDS)
    for phrase in _MOVE_PHRASES + _PICK_UP_PHRASES + _DROP_PHRASES:
        words.update(phrase)
    words.update((_END_OF_SENTENCE, _QUESTION_MARK))
    if not went_back:
        words.discard("back")
    return sorted(words)


#: The vocabulary of :class:`BabiTask` before its stories said "went back to" (without
#: ``"back"``): the channels of the models trained on its earlier stories.
BABI_VOCABULARY_WITHOUT_BACK = tuple(_generator_vocabulary(went_back=False))


class BabiTask(Task):
    """Question answering on generated stories in the style of the bAbI tasks 1, 2 and 3.

    A story of ``num_sentences`` statements about four people, six places and three objects,
    with the bAbI dataset's names and verbs ("mary went back to the garden", "john journeyed to
    the office", "sandra picked up the football"), is interleaved with questions:

    * task 1, single supporting fact: people move ("mary went to the garden"); question
      "where is mary?", answer her last place;
    * task 2, two supporting facts: people also pick up and drop objects ("john picked up the
      football", "john dropped the football"); question "where is the football?", answer the
      place of the person holding it, or where it was dropped;
    * task 3, three supporting facts: as task 2; question "where was the football before the
      kitchen?", answer the place the object was in just before it was in the kitchen (the
      generator only asks about a place the object visited once, so the answer is unique).

    With ``questions_every=2`` the layout is the dataset's: a question after every two
    statements (a story of 10 statements has 15 lines and 5 questions, the dataset's task-1
    stories); with 0, one question after the last statement. The simulation keeps the stories
    consistent (one picks up an object only where it is and if nobody holds it; one drops only
    what one holds; a held object moves with its holder); a question comes after the last
    statement always, and after the others where one can be asked (in tasks 2 and 3, once an
    object has a known place). The stories are encoded by :func:`encode_babi` with
    :attr:`vocabulary`: one word per step (lower case), ``.`` after a statement, ``?`` after a
    question, then one blank step where the target is the one-hot answer and the mask is 1;
    the batch is padded at the end with blank, unscored steps. With ``encoding="sentences"`` a
    whole statement or question is one step, the bag of its words. Generated questions carry
    no supporting-fact numbers.

    Parameters
    ----------
    task_id : {1, 2, 3}
        Which bAbI task to imitate.
    min_sentences, max_sentences : int
        Range of the number of statements; ``min_sentences`` defaults to the fewest the task
        needs (1, 2 and 3 respectively) and may not be smaller.
    encoding : {"words", "sentences"}
        One word per step, or one sentence per step (see :func:`encode_babi`).
    questions_every : int
        A question after every ``questions_every`` statements (and after the last); 0: one
        question, after the last statement.
    vocabulary : sequence of str, optional
        The words of the one-hot channels, in order (e.g. one built from bAbI files by
        :func:`build_babi_vocabulary`, so that the model reads them); it must hold the words of
        the task's people, places, objects and questions, ``.`` and ``?``, and the stories use
        only the verbs whose words it holds (:data:`BABI_VOCABULARY_WITHOUT_BACK` gives the
        stories without "went back to"). Default: every word the generator uses, sorted.
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Attributes
    ----------
    vocabulary : list of str
        The words of the one-hot channels, in order.

    Notes
    -----
    Episode parameter: ``num_sentences``.
    """

    param_names = ("num_sentences",)
    _FEWEST_SENTENCES = {1: 1, 2: 2, 3: 3}
    _MAX_ATTEMPTS = 1000

    def __init__(self, task_id=1, min_sentences=None, max_sentences=10, encoding="words",
                 questions_every=0, vocabulary=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(task_id, bool) or task_id not in self._FEWEST_SENTENCES:
            raise ValueError(f"task_id must be 1, 2 or 3, got {task_id!r}")
        self.encoding = _check_encoding(encoding)
        self.task_id = int(task_id)
        fewest = self._FEWEST_SENTENCES[self.task_id]
        if min_sentences is None:
            min_sentences = fewest
        self.min_sentences = self._check_num_sentences("min_sentences", min_sentences)
        self.max_sentences = self._check_num_sentences("max_sentences", max_sentences)
        _check_order("min_sentences", self.min_sentences, "max_sentences", self.max_sentences)
        self.questions_every = _check_int("questions_every", questions_every, 0)
        self.vocabulary = self._check_vocabulary(
            _generator_vocabulary() if vocabulary is None else vocabulary)
        self.input_size = len(self.vocabulary)
        self.output_size = len(self.vocabulary)

    def _check_vocabulary(self, vocabulary):
        if isinstance(vocabulary, str) or not all(isinstance(word, str) for word in vocabulary):
            raise ValueError(f"vocabulary must be a sequence of words, got {vocabulary!r}")
        vocabulary = list(vocabulary)
        words = set(vocabulary)
        if len(words) != len(vocabulary):
            raise ValueError("vocabulary must not hold a word twice")
        missing = sorted(_TASK_WORDS[self.task_id] - words)
        if missing:
            raise ValueError(f"vocabulary lacks words of task {self.task_id}'s stories: "
                             f"{missing}")
        self._move_phrases = tuple(p for p in _MOVE_PHRASES if set(p) <= words)
        self._pick_up_phrases = tuple(p for p in _PICK_UP_PHRASES if set(p) <= words)
        self._drop_phrases = tuple(p for p in _DROP_PHRASES if set(p) <= words)
        needed = [("move", self._move_phrases)]
        if self.task_id > 1:
            needed += [("pick-up", self._pick_up_phrases), ("drop", self._drop_phrases)]
        for kind, phrases in needed:
            if not phrases:
                raise ValueError(f"vocabulary holds no {kind} verb of the stories")
        return vocabulary

    def _check_num_sentences(self, name, value):
        fewest = self._FEWEST_SENTENCES[self.task_id]
        value = _check_int(name, value, 1)
        if value < fewest:
            raise ValueError(
                f"{name} must be at least {fewest} for task_id={self.task_id}, got {value}")
        return value

    def _draw_params(self):
        return {"num_sentences": int(self.rng.integers(self.min_sentences, self.max_sentences,
                                                       endpoint=True))}

    def _check_params(self, params):
        params["num_sentences"] = self._check_num_sentences("num_sentences",
                                                            params["num_sentences"])
        return params

    def _choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def generate_story(self, num_sentences=None):
        """Generate one story and its questions.

        Parameters
        ----------
        num_sentences : int, optional
            Number of statements; drawn from the task's range when None.

        Returns
        -------
        BabiStory
        """
        params = self.sample_params(num_sentences=num_sentences)
        for _ in range(self._MAX_ATTEMPTS):
            story = self._try_story(params["num_sentences"])
            if story is not None:
                return story
        raise RuntimeError(
            f"no answerable story of {params['num_sentences']} sentences found in "
            f"{self._MAX_ATTEMPTS} attempts; use more sentences")

    def _try_story(self, num_sentences):
        """Simulate a story; return it, or None when no question can be asked at its end."""
        place_of_person = {}
        holder = {}            # object -> person holding it
        place_of_object = {}   # object -> its current place, once known
        visited = {obj: [] for obj in _OBJECTS}  # consecutive distinct places of each object
        lines = []
        for statement in range(1, num_sentences + 1):
            pick_ups = [(person, obj) for person in _PEOPLE if person in place_of_person
                        for obj in _OBJECTS if obj not in holder
                        and place_of_object.get(obj, place_of_person[person])
                        == place_of_person[person]]
            drops = [(holder[obj], obj) for obj in _OBJECTS if obj in holder]
            moves_only = self.task_id == 1 or not (pick_ups or drops)
            if moves_only or self.rng.random() < 0.5:
                person = self._choice(_PEOPLE)
                place = self._choice([p for p in _LOCATIONS if p != place_of_person.get(person)])
                place_of_person[person] = place
                for obj, obj_holder in holder.items():
                    if obj_holder == person:
                        place_of_object[obj] = place
                        visited[obj].append(place)
                words = (person,) + self._choice(self._move_phrases) + ("to", "the", place)
            else:
                person, obj = self._choice(pick_ups + drops)
                if obj in holder:
                    del holder[obj]
                    words = (person,) + self._choice(self._drop_phrases) + ("the", obj)
                else:
                    holder[obj] = person
                    if obj not in place_of_object:
                        place_of_object[obj] = place_of_person[person]
                        visited[obj].append(place_of_person[person])
                    words = (person,) + self._choice(self._pick_up_phrases) + ("the", obj)
            lines.append(BabiLine(len(lines) + 1, words))
            last = statement == num_sentences
            if last or (self.questions_every and statement % self.questions_every == 0):
                question = self._ask(place_of_person, place_of_object, visited)
                if question is None and last:
                    return None
                if question is not None:
                    words, answer = question
                    lines.append(BabiLine(len(lines) + 1, words, answer))
        return BabiStory(tuple(lines))

    def _ask(self, place_of_person, place_of_object, visited):
        if self.task_id == 1:
            people = [person for person in _PEOPLE if person in place_of_person]
            if not people:
                return None
            person = self._choice(people)
            return ("where", "is", person), place_of_person[person]
        if self.task_id == 2:
            objects = [obj for obj in _OBJECTS if obj in place_of_object]
            if not objects:
                return None
            obj = self._choice(objects)
            return ("where", "is", "the", obj), place_of_object[obj]
        candidates = [(obj, k) for obj in _OBJECTS for k in range(1, len(visited[obj]))
                      if visited[obj].count(visited[obj][k]) == 1]
        if not candidates:
            return None
        obj, k = self._choice(candidates)
        return (("where", "was", "the", obj, "before", "the", visited[obj][k]),
                visited[obj][k - 1])

    def encode(self, stories):
        """Encode stories with this task's vocabulary (see :func:`encode_babi`).

        Parameters
        ----------
        stories : sequence of BabiStory

        Returns
        -------
        input, target, mask : ndarray
        """
        return encode_babi(stories, self.vocabulary, dtype=self.dtype, encoding=self.encoding)

    def decode(self, array, mask=None):
        """Words of one-hot or probability sequences (see :func:`decode_babi`).

        Parameters
        ----------
        array : array_like of shape ``(batch, time, len(vocabulary))``
        mask : array_like of shape ``(batch, time)``, optional
            Decode only the steps where it is positive (e.g. the answers).

        Returns
        -------
        list of list
        """
        return decode_babi(array, self.vocabulary, mask)

    def _generate(self, num_sentences):
        stories = [self.generate_story(num_sentences) for _ in range(self.batch_size)]
        return encode_babi(stories, self.vocabulary, dtype=np.float64, encoding=self.encoding)


class BabiFileTask(Task):
    """Batches of bAbI stories read from the dataset's files, as :class:`BabiTask` encodes them.

    Each sequence is one whole story (see :func:`encode_babi`): its statements and questions
    in order, each question followed by the blank step where its answer is scored, so that a
    story of the dataset's task 1 (10 statements, a question after every two) is one sequence
    of 20 steps (with ``encoding="sentences"``) with 5 scored steps.

    Parameters
    ----------
    stories : sequence of BabiStory
        E.g. from :func:`load_babi`; at least one, each with at least one question.
    vocabulary : sequence of str, optional
        The words of the one-hot channels, in order; default: those of ``stories``
        (:func:`build_babi_vocabulary`). It must hold every word and answer of the stories.
    encoding : {"words", "sentences"}
        One word or one sentence per step.
    order : {"random", "sequential"}
        Draw each batch's stories at random (with replacement), or take them in order, from
        the first, going back to the first after the last (to score every story once).
    permute_names : bool
        Rename, in each story drawn, the people (the first words of the statements) by a
        random permutation of the people of all the stories, and the places (the answers) by
        one of the places: the story stays as true as it was, and a model trained on a few
        thousand stories cannot learn them by heart (for training; off to score them).
    cut_stories : bool
        End each story drawn after one of its questions drawn at random (a dataset's task-1
        story of 15 lines is cut after line 3, 6, 9, 12 or 15), so that training sees short
        stories as well as whole ones (for training; off to score them).
    **kwargs
        ``max_iter``, ``batch_size``, ``seed``, ``dtype`` (see :class:`Task`).

    Attributes
    ----------
    stories : tuple of BabiStory
    vocabulary : list of str

    Notes
    -----
    No episode parameter: a story is as long as it is.
    """

    _ORDERS = ("random", "sequential")

    def __init__(self, stories, vocabulary=None, encoding="sentences", order="random",
                 permute_names=False, cut_stories=False, **kwargs):
        super().__init__(**kwargs)
        self.stories = tuple(stories)
        if not self.stories:
            raise ValueError("stories must hold at least one story")
        if not all(isinstance(story, BabiStory) and story.questions for story in self.stories):
            raise ValueError("stories must be BabiStory objects with at least one question")
        if order not in self._ORDERS:
            raise ValueError(f"order must be one of {self._ORDERS}, got {order!r}")
        self.order = order
        self.encoding = _check_encoding(encoding)
        self.vocabulary = list(build_babi_vocabulary(self.stories) if vocabulary is None
                               else vocabulary)
        # Fail now, naming the first unknown word, rather than at some batch.
        known = set(self.vocabulary)
        for story in self.stories:
            for line in story.lines:
                for word in line.words + ((line.answer,) if line.is_question else ()):
                    if word not in known:
                        raise ValueError(f"word {word!r} of the stories is not in the "
                                         f"vocabulary ({len(self.vocabulary)} words)")
        self.input_size = self.output_size = len(self.vocabulary)
        self.permute_names = _check_bool("permute_names", permute_names)
        self.cut_stories = _check_bool("cut_stories", cut_stories)
        answers = {line.answer for story in self.stories for line in story.questions}
        people = {line.words[0] for story in self.stories for line in story.lines
                  if not line.is_question and line.words} - answers
        # Sorted: the permutations drawn from a seed do not depend on the order of a set.
        self._name_groups = [sorted(people), sorted(answers)]
        self._next = 0

    def _renamed(self, story):
        """The story with its people and places renamed by random permutations."""
        mapping = {}
        for names in self._name_groups:
            mapping.update(zip(names, (names[i] for i in self.rng.permutation(len(names)))))
        return BabiStory(tuple(
            BabiLine(line.number, tuple(mapping.get(word, word) for word in line.words),
                     None if line.answer is None else mapping.get(line.answer, line.answer),
                     line.supporting_facts)
            for line in story.lines))

    def _cut(self, story):
        """The story up to one of its questions drawn at random."""
        ends = [i for i, line in enumerate(story.lines) if line.is_question]
        return BabiStory(story.lines[:ends[int(self.rng.integers(len(ends)))] + 1])

    def _generate(self):
        if self.order == "random":
            chosen = self.rng.integers(len(self.stories), size=self.batch_size)
        else:
            chosen = (self._next + np.arange(self.batch_size)) % len(self.stories)
            self._next = int(chosen[-1] + 1) % len(self.stories)
        stories = [self.stories[i] for i in chosen]
        if self.cut_stories:
            stories = [self._cut(story) for story in stories]
        if self.permute_names:
            stories = [self._renamed(story) for story in stories]
        return encode_babi(stories, self.vocabulary, dtype=np.float64, encoding=self.encoding)

    def encode(self, stories):
        """Encode stories with this task's vocabulary (see :func:`encode_babi`)."""
        return encode_babi(stories, self.vocabulary, dtype=self.dtype, encoding=self.encoding)

    def decode(self, array, mask=None):
        """Words of one-hot or probability sequences (see :func:`decode_babi`)."""
        return decode_babi(array, self.vocabulary, mask)
