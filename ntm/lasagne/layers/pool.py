r"""Pooling layers: max and average pooling in 1, 2 and 3 dimensions, upscaling, global,
feature-wise and spatial pyramid pooling.

Pooling windows of ``pool_size`` entries, ``stride`` apart, slide over the trailing axes of
the input; each output entry is the maximum or the mean of its window. The windows are strided
slices of the input (one per window tap) combined elementwise, so their gradients are those of
slicing (ties in a maximum all receive the gradient, as with Theano's pooling).
"""
import itertools
import numbers

import numpy as np
import pytensor.tensor as pt

from ..theano_extensions.padding import pad as pad_tensor
from ..utils import as_tuple
from .base import Layer

__all__ = ["pool_output_length", "pool_2d", "MaxPool1DLayer", "MaxPool2DLayer",
           "MaxPool3DLayer", "Pool1DLayer", "Pool2DLayer", "Pool3DLayer", "Upscale1DLayer",
           "Upscale2DLayer", "Upscale3DLayer", "FeaturePoolLayer", "FeatureWTALayer",
           "GlobalPoolLayer", "SpatialPyramidPoolingLayer"]

_MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


def pool_output_length(input_length, pool_size, stride, pad, ignore_border):
    r"""The output length of pooling along one axis.

    With ``ignore_border=True`` only whole windows count:
    :math:`n_{out} = \lfloor (n + 2p - k) / s \rfloor + 1`; otherwise a last partial window
    is kept too (and ``pad`` must be 0).

    Parameters
    ----------
    input_length : int or None
    pool_size : int
    stride : int
    pad : int
    ignore_border : bool

    Returns
    -------
    int or None
    """
    if input_length is None or pool_size is None:
        return None
    if ignore_border:
        output_length = input_length + 2 * pad - pool_size + 1
        return (output_length + stride - 1) // stride
    if pad != 0:
        raise ValueError("padding requires ignore_border=True")
    if stride >= pool_size:
        return (input_length + stride - 1) // stride
    return max(0, (input_length - pool_size + stride - 1) // stride) + 1


def _symbolic_output_length(length, pool_size, stride, pad, ignore_border):
    """:func:`pool_output_length` for a symbolic or int ``length``."""
    if not isinstance(length, pt.TensorVariable):
        return pool_output_length(length, pool_size, stride, pad, ignore_border)
    if ignore_border:
        return (length + 2 * pad - pool_size) // stride + 1
    if stride >= pool_size:
        return (length + stride - 1) // stride
    return pt.maximum(0, (length - pool_size + stride - 1) // stride) + 1


def pool_nd(input, pool_size, stride=None, pad=0, ignore_border=True, mode="max"):
    r"""Pool the trailing ``len(pool_size)`` axes of ``input``.

    Parameters
    ----------
    input : tensor
    pool_size : tuple of int
        The window size :math:`k` per pooled axis.
    stride : tuple of int, optional
        The step :math:`s` between windows (default: ``pool_size``).
    pad : int or tuple of int
        Zero padding :math:`p` on both sides of each pooled axis (``ignore_border=True`` only).
    ignore_border : bool
        Drop a last partial window (True) or pool it over the entries it has (False).
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}
        The maximum, the sum, or the mean over the window counting the padding
        (``average_inc_pad``) or not (``average_exc_pad``).

    Returns
    -------
    tensor
        Pooled axes of length ``pool_output_length(n, k, s, p, ignore_border)``.
    """
    input = pt.as_tensor_variable(input)
    n = len(pool_size)
    pool_size = tuple(int(k) for k in pool_size)
    stride = pool_size if stride is None else as_tuple(stride, n)
    pad = as_tuple(pad, n)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not ignore_border and any(pad):
        raise NotImplementedError("padding requires ignore_border=True")
    lead = input.ndim - n
    static = input.type.shape
    lengths = [input.shape[lead + a] if static[lead + a] is None else int(static[lead + a])
               for a in range(n)]
    out = [_symbolic_output_length(lengths[a], pool_size[a], stride[a], pad[a], ignore_border)
           for a in range(n)]
    # the padded length each axis needs so that every window lies inside it
    needed = [(out[a] - 1) * stride[a] + pool_size[a] for a in range(n)]
    tail = [pt.maximum(0, needed[a] - lengths[a] - 2 * pad[a])
            if isinstance(needed[a], pt.TensorVariable) or isinstance(lengths[a],
                                                                       pt.TensorVariable)
            else max(0, needed[a] - lengths[a] - 2 * pad[a]) for a in range(n)]
    # padding (explicit, or the tail of partial windows) never wins a maximum and adds
    # nothing to a sum
    fill = -np.inf if mode == "max" else 0
    x = pad_tensor(input, [(p, p + t) for p, t in zip(pad, tail)], val=fill, batch_ndim=lead)

    def windows(t):
        for taps in itertools.product(*(range(k) for k in pool_size)):
            yield t[(slice(None),) * lead + tuple(
                slice(tap, tap + (out[a] - 1) * stride[a] + 1, stride[a])
                for a, tap in enumerate(taps))]

    if mode == "max":
        result = None
        for window in windows(x):
            result = window if result is None else pt.maximum(result, window)
        return result
    total = None
    for window in windows(x):
        total = window if total is None else total + window
    if mode == "sum":
        return total
    # how many entries each window has: real ones, plus the explicit padding for inc_pad
    ones = pt.ones(lengths, dtype=input.dtype)
    ones = pad_tensor(ones, [(p, p) for p in pad], val=1 if mode == "average_inc_pad" else 0,
                      batch_ndim=0)
    ones = pad_tensor(ones, [(0, t) for t in tail], val=0, batch_ndim=0)
    # ``ones`` has only the pooled axes; the counts broadcast over the leading ones
    count = None
    for window in _windows(ones, pool_size, stride, out):
        count = window if count is None else count + window
    return total / count


def _windows(t, pool_size, stride, out):
    """The strided slices of ``t`` (all of whose axes are pooled), one per window tap."""
    for taps in itertools.product(*(range(k) for k in pool_size)):
        yield t[tuple(slice(tap, tap + (out[a] - 1) * stride[a] + 1, stride[a])
                      for a, tap in enumerate(taps))]


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max",
            ds=None, st=None, padding=None):
    """2D pooling of the last two axes of ``input``, with the arguments of Theano's
    ``pool_2d`` (``ws`` the window, also accepted under its old name ``ds``; ``st`` and
    ``padding`` old names of ``stride`` and ``pad``); see :func:`pool_nd`."""
    ws = ds if ws is None else ws
    if ws is None:
        raise ValueError("pool_2d needs the window size ws")
    stride = st if stride is None else stride
    pad = padding if padding is not None else pad
    ignore_border = False if ignore_border is None else ignore_border
    return pool_nd(input, as_tuple(ws, 2), stride, pad, ignore_border, mode)


class _PoolLayer(Layer):
    """Pooling over the last ``n`` axes of inputs ``(batch, channels, *spatial)``."""

    n = None

    def __init__(self, incoming, pool_size, stride=None, pad=0, ignore_border=True, mode="max",
                 **kwargs):
        super().__init__(incoming, **kwargs)
        n = self.n
        if len(self.input_shape) != n + 2:
            raise ValueError(f"Tried to create a {n}D pooling layer with input shape "
                             f"{self.input_shape}. Expected {n + 2} input dimensions "
                             f"(batchsize, channels, {n} spatial dimensions).")
        self.pool_size = as_tuple(pool_size, n, numbers.Integral)
        self.stride = self.pool_size if stride is None else as_tuple(stride, n,
                                                                      numbers.Integral)
        self.pad = as_tuple(pad, n, numbers.Integral)
        self.ignore_border = ignore_border
        if mode not in _MODES[:1] + _MODES[2:]:
            raise ValueError(f"mode must be 'max', 'average_inc_pad' or 'average_exc_pad', "
                             f"got {mode!r}")
        self.mode = mode

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        for a in range(self.n):
            output_shape[2 + a] = pool_output_length(input_shape[2 + a], self.pool_size[a],
                                                     self.stride[a], self.pad[a],
                                                     self.ignore_border)
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        return pool_nd(input, self.pool_size, self.stride, self.pad, self.ignore_border,
                       self.mode)


class Pool1DLayer(_PoolLayer):
    r"""1D pooling of inputs ``(batch, channels, length)``.

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int or iterable of int
        The window size.
    stride : int, iterable of int or None
        The step between windows; ``None`` means ``pool_size`` (non-overlapping windows).
    pad : int or iterable of int
        Zero padding on both sides.
    ignore_border : bool
        Drop a last partial window (True) or keep it (False, needs ``pad=0``).
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
        Maximum, or mean counting the padding or not.
    """

    n = 1

    def __init__(self, incoming, pool_size, stride=None, pad=0, ignore_border=True, mode="max",
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)


class Pool2DLayer(_PoolLayer):
    __doc__ = (Pool1DLayer.__doc__.replace("1D", "2D")
               .replace("(batch, channels, length)", "(batch, channels, rows, columns)"))

    n = 2

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)


class Pool3DLayer(_PoolLayer):
    __doc__ = (Pool1DLayer.__doc__.replace("1D", "3D")
               .replace("(batch, channels, length)", "(batch, channels, depth, rows, columns)"))

    n = 3

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0, 0), ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)


class MaxPool1DLayer(Pool1DLayer):
    """1D max pooling: :class:`Pool1DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=0, ignore_border=True, **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class MaxPool2DLayer(Pool2DLayer):
    """2D max pooling: :class:`Pool2DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class MaxPool3DLayer(Pool3DLayer):
    """3D max pooling: :class:`Pool3DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0, 0), ignore_border=True,
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class _UpscaleLayer(Layer):
    """Upscaling of the last ``n`` axes by integer factors."""

    n = None

    def __init__(self, incoming, scale_factor, mode="repeat", **kwargs):
        super().__init__(incoming, **kwargs)
        self.scale_factor = as_tuple(scale_factor, self.n, numbers.Integral)
        if any(s < 1 for s in self.scale_factor):
            raise ValueError(f"Scale factor must be >= 1, not {scale_factor}")
        if mode not in ("repeat", "dilate"):
            raise ValueError(f"Invalid upscale mode {mode!r}: expected 'repeat' or 'dilate'")
        self.mode = mode

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        for a, factor in enumerate(self.scale_factor):
            d = len(input_shape) - self.n + a
            if output_shape[d] is not None:
                output_shape[d] *= factor
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        lead = input.ndim - self.n
        if self.mode == "repeat":
            upscaled = input
            for a, factor in enumerate(self.scale_factor):
                if factor > 1:
                    upscaled = pt.repeat(upscaled, factor, axis=lead + a)
            return upscaled
        shape = [input.shape[d] for d in range(lead)] + [
            input.shape[lead + a] * f for a, f in enumerate(self.scale_factor)]
        upscaled = pt.zeros(shape, dtype=input.dtype)
        return pt.set_subtensor(upscaled[(slice(None),) * lead + tuple(
            slice(None, None, f) for f in self.scale_factor)], input)


class Upscale1DLayer(_UpscaleLayer):
    r"""Upscales the last axis by an integer factor: ``mode='repeat'`` repeats each entry
    ``scale_factor`` times; ``mode='dilate'`` keeps each entry followed by
    ``scale_factor - 1`` zeros.

    Parameters
    ----------
    incoming : Layer or tuple
    scale_factor : int or iterable of int
    mode : {'repeat', 'dilate'}
    """

    n = 1


class Upscale2DLayer(_UpscaleLayer):
    __doc__ = Upscale1DLayer.__doc__.replace("the last axis", "the last two axes")
    n = 2


class Upscale3DLayer(_UpscaleLayer):
    __doc__ = Upscale1DLayer.__doc__.replace("the last axis", "the last three axes")
    n = 3


class FeaturePoolLayer(Layer):
    r"""Pools groups of ``pool_size`` consecutive features along ``axis``: the axis of size
    :math:`n` becomes :math:`n / k` groups, each reduced by ``pool_function`` (a maxout
    layer with the default ``max``).

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int
        :math:`k`, which must divide the size of the axis.
    axis : int
        The feature axis.
    pool_function : callable
        Called as ``pool_function(x, axis=...)``, e.g. ``pytensor.tensor.max`` or ``mean``.
    """

    def __init__(self, incoming, pool_size, axis=1, pool_function=pt.max, **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_size = pool_size
        self.axis = axis
        self.pool_function = pool_function
        num_features = self.input_shape[axis]
        if num_features is not None and num_features % pool_size:
            raise ValueError(f"Number of input feature maps ({num_features}) is not a multiple "
                             f"of the pool size (pool_size={pool_size})")

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        size = output_shape[self.axis]
        output_shape[self.axis] = None if size is None else size // self.pool_size
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        axis = self.axis % input.ndim
        shape = [input.shape[d] for d in range(input.ndim)]
        grouped = shape[:axis] + [shape[axis] // self.pool_size, self.pool_size] + shape[axis + 1:]
        return self.pool_function(input.reshape(grouped, ndim=input.ndim + 1), axis=axis + 1)


class FeatureWTALayer(Layer):
    r"""Winner takes all within groups of ``pool_size`` consecutive features along ``axis``:
    each group keeps its maximum (all tied maxima) and sets the rest to zero.

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int
        Must divide the size of the axis.
    axis : int
    """

    def __init__(self, incoming, pool_size, axis=1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_size = pool_size
        self.axis = axis
        num_features = self.input_shape[axis]
        if num_features is not None and num_features % pool_size:
            raise ValueError(f"Number of input feature maps ({num_features}) is not a multiple "
                             f"of the region size (pool_size={pool_size})")

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        axis = self.axis % input.ndim
        shape = [input.shape[d] for d in range(input.ndim)]
        grouped = input.reshape(shape[:axis] + [shape[axis] // self.pool_size, self.pool_size]
                                + shape[axis + 1:], ndim=input.ndim + 1)
        winners = pt.eq(grouped, pt.max(grouped, axis=axis + 1, keepdims=True))
        return input * pt.cast(winners.reshape(shape, ndim=input.ndim), input.dtype)


class GlobalPoolLayer(Layer):
    r"""Pools over all axes after the second: ``(batch, channels, ...)`` becomes
    ``(batch, channels)`` by ``pool_function`` (the mean by default).

    Parameters
    ----------
    incoming : Layer or tuple
    pool_function : callable
        Called as ``pool_function(x, axis=2)`` on the input flattened to three dimensions.
    """

    def __init__(self, incoming, pool_function=pt.mean, **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape):
        return tuple(input_shape[:2])

    def get_output_for(self, input, **kwargs):
        return self.pool_function(pt.as_tensor_variable(input).flatten(3), axis=2)


class SpatialPyramidPoolingLayer(Layer):
    r"""Spatial pyramid pooling (He et al., 2014): for each ``d`` in ``pool_dims`` the image is
    pooled into a ``d x d`` grid of bins, and the bins of all levels are concatenated, so that
    inputs of any size give ``(batch, channels, sum(d ** 2))``.

    With the default ``implementation='fast'`` a level pools windows of
    :math:`\lceil n / d \rceil` entries, :math:`\lfloor n / d \rfloor` apart; with
    ``'kaiming'`` the bins are those of the paper: bin :math:`i` covers the entries
    :math:`\lfloor i n / d \rfloor` to :math:`\lceil (i + 1) n / d \rceil - 1` (the same
    as ``'fast'`` for sizes divisible by ``d``).

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, channels, rows, columns)``.
    pool_dims : list of int
        The grid size of each level.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
    implementation : {'fast', 'kaiming'}
    """

    def __init__(self, incoming, pool_dims=[4, 2, 1], mode="max", implementation="fast",
                 **kwargs):
        super().__init__(incoming, **kwargs)
        if len(self.input_shape) != 4:
            raise ValueError(f"Tried to create a SPP layer with input shape {self.input_shape}. "
                             "Expected 4 input dimensions (batchsize, channels, 2 spatial "
                             "dimensions).")
        if implementation not in ("fast", "kaiming"):
            raise ValueError(f"implementation must be 'fast' or 'kaiming', got {implementation!r}")
        if mode not in ("max", "average_inc_pad", "average_exc_pad"):
            raise ValueError("Mode must be either 'max', 'average_inc_pad' or "
                             f"'average_exc_pad'. Got {mode!r}")
        self.mode = mode
        self.implementation = implementation
        self.pool_dims = list(pool_dims)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], input_shape[1], int(np.sum(np.square(self.pool_dims))))

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        rows, cols = input.shape[2], input.shape[3]
        reduce = pt.max if self.mode == "max" else pt.mean
        bins = []
        for d in self.pool_dims:
            win = [pt.cast(pt.ceil(size / np.float64(d)), "int64") for size in (rows, cols)]
            for i in range(d):
                for j in range(d):
                    if self.implementation == "fast":
                        step = [size // d for size in (rows, cols)]
                        starts = [i * step[0], j * step[1]]
                        stops = [starts[0] + win[0], starts[1] + win[1]]
                    else:
                        starts = [(i * rows) // d, (j * cols) // d]
                        # ceil((k + 1) n / d) in integers
                        stops = [-((-(i + 1) * rows) // d), -((-(j + 1) * cols) // d)]
                    region = input[:, :, starts[0]:stops[0], starts[1]:stops[1]]
                    bins.append(reduce(region, axis=(2, 3)))
        return pt.stack(bins, axis=2)

