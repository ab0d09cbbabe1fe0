"""Layers that rearrange their input: reshape, flatten, dimshuffle, slice."""
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .base import Layer

__all__ = ["ReshapeLayer", "reshape", "FlattenLayer", "flatten", "DimshuffleLayer",
           "dimshuffle", "SliceLayer", "PadLayer", "pad"]


class ReshapeLayer(Layer):
    """Reshapes the input.

    Parameters
    ----------
    incoming : Layer or tuple
    shape : tuple
        Each entry is a positive int, ``[i]`` (the size of input axis ``i``), ``-1`` (at most
        one: whatever size makes the element count match) or a symbolic integer scalar.

    Raises
    ------
    ValueError
        If an entry is none of these, there is more than one ``-1``, a reference is out of
        range, or the known sizes cannot match the input's element count.
    """

    def __init__(self, incoming, shape, **kwargs):
        super().__init__(incoming, **kwargs)
        shape = tuple(shape)
        for s in shape:
            if isinstance(s, (int, np.integer)):
                if s == 0 or s < -1:
                    raise ValueError(f"ReshapeLayer shape entries must be positive, -1, [i] or "
                                     f"symbolic scalars; got {s} in {shape}")
            elif isinstance(s, list):
                if len(s) != 1 or not isinstance(s[0], int) or s[0] < 0:
                    raise ValueError(f"ReshapeLayer references must be [i] with a non-negative "
                                     f"int i; got {s} in {shape}")
                if s[0] >= len(self.input_shape):
                    raise ValueError(f"ReshapeLayer reference {s} is out of range for an input "
                                     f"of {len(self.input_shape)} dimensions")
            elif isinstance(s, Variable):
                if s.ndim != 0:
                    raise ValueError(f"ReshapeLayer symbolic sizes must be scalars, got {s} "
                                     f"of {s.ndim} dimensions")
            else:
                raise ValueError(f"ReshapeLayer shape entries must be ints, [i], -1 or symbolic "
                                 f"scalars; got {s!r}")
        if sum(1 for s in shape if isinstance(s, (int, np.integer)) and s == -1) > 1:
            raise ValueError(f"ReshapeLayer shape may contain at most one -1, got {shape}")
        self.shape = shape
        self.output_shape  # validate against the input shape now

    def get_output_shape_for(self, input_shape, **kwargs):
        # a symbolic input size (from an expression's .shape) is unknown here
        input_shape = tuple(None if isinstance(d, Variable) else d for d in input_shape)
        output = []
        for s in self.shape:
            if isinstance(s, list):
                output.append(input_shape[s[0]])
            elif isinstance(s, Variable):
                output.append(None)
            else:
                output.append(int(s))
        # An unknown input axis copied by a reference appears on both sides: the first time it
        # is copied, count it as 1 on each, so that -1 can still be resolved (e.g. with an
        # unknown batch size). A second copy of it stays unknown.
        in_known = list(input_shape)
        out_known = list(output)
        for i, s in enumerate(self.shape):
            if isinstance(s, list) and input_shape[s[0]] is None and in_known[s[0]] is None:
                in_known[s[0]] = 1
                out_known[i] = 1
        if -1 in output:
            rest = [d for d in out_known if d != -1]
            if None not in in_known and None not in rest:
                total_in = int(np.prod(in_known))
                total_out = int(np.prod(rest))
                if total_in % total_out:
                    raise ValueError(f"cannot reshape input of shape {input_shape} to "
                                     f"{self.shape}: the element counts cannot match "
                                     f"({total_in} is not a multiple of {total_out})")
                output[output.index(-1)] = total_in // total_out
            else:
                output[output.index(-1)] = None
        elif None not in in_known and None not in out_known:
            if int(np.prod(in_known)) != int(np.prod(out_known)):
                raise ValueError(f"cannot reshape input of shape {input_shape} to {self.shape}: "
                                 "the element counts do not match")
        return tuple(output)

    def get_output_for(self, input, **kwargs):
        shape = [input.shape[s[0]] if isinstance(s, list) else s for s in self.shape]
        return pt.reshape(input, shape, ndim=len(shape))


reshape = ReshapeLayer


class FlattenLayer(Layer):
    """Flattens the trailing axes so that the output has ``outdim`` dimensions."""

    def __init__(self, incoming, outdim=2, **kwargs):
        super().__init__(incoming, **kwargs)
        if not isinstance(outdim, int) or outdim < 1:
            raise ValueError(f"outdim must be an int >= 1, got {outdim!r}")
        self.outdim = outdim

    def get_output_shape_for(self, input_shape):
        to_flatten = input_shape[self.outdim - 1:]
        size = None if any(s is None for s in to_flatten) else int(np.prod(to_flatten))
        return tuple(input_shape[:self.outdim - 1]) + (size,)

    def get_output_for(self, input, **kwargs):
        return input.flatten(self.outdim)


flatten = FlattenLayer


class DimshuffleLayer(Layer):
    """Permutes the axes and inserts broadcastable ones.

    Parameters
    ----------
    pattern : tuple
        Input axis indices, and ``'x'`` for a new axis of size 1; input axes left out must have
        size 1 (or an unknown size, which must then be 1 at run time).
    """

    def __init__(self, incoming, pattern, **kwargs):
        super().__init__(incoming, **kwargs)
        used = set()
        for p in pattern:
            if isinstance(p, int):
                if p in used:
                    raise ValueError(f"pattern {pattern} uses axis {p} twice")
                if not 0 <= p < len(self.input_shape):
                    raise ValueError(f"pattern {pattern} refers to axis {p} of an input of "
                                     f"{len(self.input_shape)} dimensions")
                used.add(p)
            elif p != "x":
                raise ValueError(f"pattern entries must be ints or 'x', got {p!r}")
        for axis, size in enumerate(self.input_shape):
            if axis not in used and size is not None and size != 1:
                raise ValueError(f"pattern {pattern} drops input axis {axis}, whose size is "
                                 f"{size}, not 1")
        self.pattern = tuple(pattern)

    def get_output_shape_for(self, input_shape):
        return tuple(1 if p == "x" else input_shape[p] for p in self.pattern)

    def get_output_for(self, input, **kwargs):
        dropped = [a for a in range(input.ndim) if a not in self.pattern]
        if dropped:
            input = pt.specify_broadcastable(input, *dropped)
        return input.dimshuffle(self.pattern)


dimshuffle = DimshuffleLayer


class SliceLayer(Layer):
    """Slices the input along ``axis`` with an int (removing the axis) or a ``slice``."""

    def __init__(self, incoming, indices, axis=-1, **kwargs):
        super().__init__(incoming, **kwargs)
        if not isinstance(indices, (int, slice)):
            raise TypeError(f"indices must be an int or a slice, got {indices!r}")
        self.slice, self.axis = indices, axis

    def get_output_shape_for(self, input_shape):
        shape = list(input_shape)
        if isinstance(self.slice, int):
            del shape[self.axis]
        elif shape[self.axis] is not None:
            shape[self.axis] = len(range(*self.slice.indices(shape[self.axis])))
        else:
            shape[self.axis] = None
        return tuple(shape)

    def get_output_for(self, input, **kwargs):
        axis = self.axis if self.axis >= 0 else self.axis + input.ndim
        return input[(slice(None),) * axis + (self.slice,)]


class PadLayer(Layer):
    """Pads the axes after the first ``batch_ndim`` with the constant ``val``.

    Parameters
    ----------
    incoming : Layer or tuple
    width : int, or iterable of int or (int, int)
        Entries added on both sides of every padded axis, or per axis (an int for both sides
        or a ``(before, after)`` pair).
    val : float
        The value of the added entries.
    batch_ndim : int
        How many leading axes are not padded.
    """

    def __init__(self, incoming, width, val=0, batch_ndim=2, **kwargs):
        super().__init__(incoming, **kwargs)
        self.width = width
        self.val = val
        self.batch_ndim = batch_ndim

    def get_output_shape_for(self, input_shape):
        from ..theano_extensions.padding import _pairs
        output_shape = list(input_shape)
        pairs = _pairs(self.width, len(input_shape) - self.batch_ndim)
        for axis, (before, after) in enumerate(pairs, start=self.batch_ndim):
            if output_shape[axis] is not None:
                output_shape[axis] += before + after
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        from ..theano_extensions.padding import pad as pad_tensor
        return pad_tensor(input, self.width, self.val, self.batch_ndim)


pad = PadLayer
