r"""Convolutions of any number of spatial dimensions as an im2col and one matrix product.

The input ``(batch, channels, *spatial)`` is turned, once per filter tap, into a strided slice
of itself; the slices are stacked into columns ``(batch, *out, channels * taps)`` and the
convolution is the product of that matrix with the filters reshaped to
``(channels * taps, filters)``, which PyTensor computes with BLAS. Its gradients are those of
slicing and of a product, so they come from PyTensor's own ``grad``.

For one output position :math:`o` (a tuple of spatial indices) the correlation is

.. math:: y_{b, f, o} = \sum_c \sum_k x_{b, c, o \cdot s + k \cdot d} \, W_{f, c, k}

with stride :math:`s` and dilation :math:`d`; a convolution flips the filters first
(:math:`W_{f, c, K - 1 - k}`), as Theano's ``filter_flip=True`` does.

:func:`conv1d_sc`, :func:`conv1d_mc0`, :func:`conv1d_mc1`, :func:`conv1d_unstrided`,
:func:`conv1d_sd` and :func:`conv1d_md` keep the names of Lasagne's one-dimensional
convolutions; here they all compute the same thing with the same implementation (the last
three keep the restriction of Lasagne's: a filter length that is a multiple of the stride).
A one-dimensional convolution whose filter length is symbolic uses PyTensor's
``convolve1d`` instead.
"""
import itertools
import numbers

import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.tensor.signal import convolve1d

from .padding import pad as pad_tensor

__all__ = ["conv_nd", "conv1d", "conv2d", "conv3d", "conv1d_sc", "conv1d_mc0", "conv1d_mc1",
           "conv1d_unstrided", "conv1d_sd", "conv1d_md"]


def _as_tuple(value, n, what):
    if isinstance(value, numbers.Integral):
        return (int(value),) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f"{what} must be an int or a tuple of {n} ints, got {value!r}")
    return value


def _filter_size(filters, n, filter_shape=None):
    """The static spatial size of ``filters`` (from ``filter_shape``, the type or the value),
    or None where none of them tells it."""
    if filter_shape is not None and all(s is not None for s in tuple(filter_shape)[-n:]):
        return tuple(int(s) for s in tuple(filter_shape)[-n:])
    static = filters.type.shape[-n:]
    if all(s is not None for s in static):
        return tuple(int(s) for s in static)
    if isinstance(filters, SharedVariable):
        return tuple(filters.get_value(borrow=True).shape[-n:])
    return None


def _conv1d_symbolic_length(input, filters, stride, pad, flip_filters):
    r"""A one-dimensional convolution whose filter length is only known when it runs:
    :math:`y_{b, f} = \sum_c x_{b, c} * W_{f, c}` with PyTensor's ``convolve1d`` for each
    pair of signals, then every ``stride``-th output."""
    if pad == "full":
        mode = "full"
    elif pad == "valid" or pad == (0,) or pad == 0:
        mode = "valid"
    elif isinstance(pad, numbers.Integral) or (isinstance(pad, tuple) and len(pad) == 1):
        input = pad_tensor(input, _as_tuple(pad, 1, "pad"), batch_ndim=2)
        mode = "valid"
    else:
        raise ValueError(f"pad {pad!r} needs the filter length when the graph is built; "
                         "pass filter_shape")
    if not flip_filters:  # convolve1d convolves; a correlation is a convolution flipped
        filters = filters[:, :, ::-1]
    # (batch, 1, channels, length) with (1, filters, channels, taps), summed over channels
    output = convolve1d(input[:, None], filters[None], mode=mode).sum(axis=2)
    return output[:, :, ::stride[0]] if stride[0] > 1 else output


def _pads(border_mode, filter_size, dilation):
    """``border_mode`` as one padding per spatial axis."""
    n = len(filter_size)
    span = [(k - 1) * d + 1 for k, d in zip(filter_size, dilation)]
    if border_mode == "valid":
        return (0,) * n
    if border_mode == "full":
        return tuple(s - 1 for s in span)
    if border_mode in ("half", "same"):
        return tuple(s // 2 for s in span)
    if isinstance(border_mode, numbers.Integral):
        return (int(border_mode),) * n
    if isinstance(border_mode, (tuple, list)) and len(border_mode) == n:
        return tuple(border_mode)
    raise ValueError(f"invalid border_mode {border_mode!r}: expected 'valid', 'full', 'half', "
                     f"an int or a tuple of {n} ints")


def _size(x, axis):
    static = x.type.shape[axis]
    return x.shape[axis] if static is None else int(static)


def conv_nd(input, filters, filter_size=None, stride=1, pad=0, dilation=1, flip_filters=True,
            num_groups=1):
    r"""Convolve (or correlate) ``input`` with ``filters`` over its trailing axes.

    Parameters
    ----------
    input : tensor, shape ``(batch, channels, *spatial)``
    filters : tensor, shape ``(num_filters, channels // num_groups, *filter_size)``
    filter_size : tuple of int, optional
        The spatial size of the filters, if their type and value do not tell it.
    stride : int or tuple of int
        The step :math:`s` between output positions.
    pad : int, tuple of int, 'valid', 'full' or 'same'
        Zero padding added to both sides of each spatial axis (``'full'``: the filter size
        minus one; ``'same'`` (also ``'half'``): half the filter size, rounded down).
    dilation : int or tuple of int
        The spacing :math:`d` between filter taps.
    flip_filters : bool
        Flip the filters along their spatial axes (a convolution) or not (a correlation).
    num_groups : int
        Split the channels and the filters into this many groups convolved separately.

    Returns
    -------
    tensor, shape ``(batch, num_filters, *out)``
        with :math:`out = \lfloor (n + 2p - (k - 1) d - 1) / s \rfloor + 1` per axis.
    """
    input = pt.as_tensor_variable(input)
    filters = pt.as_tensor_variable(filters)
    n = input.ndim - 2
    if filters.ndim != n + 2:
        raise ValueError(f"filters must have {n + 2} dimensions for an input of {input.ndim}, "
                         f"got {filters.ndim}")
    filter_size = _filter_size(filters, n) if filter_size is None else tuple(filter_size)
    stride = _as_tuple(stride, n, "stride")
    dilation = _as_tuple(dilation, n, "dilation")
    if filter_size is None:
        if n == 1 and dilation == (1,) and num_groups == 1:
            return _conv1d_symbolic_length(input, filters, stride, pad, flip_filters)
        raise ValueError("the spatial size of the filters must be known when the graph is "
                         "built; pass filter_shape")
    pads = _pads(pad, filter_size, dilation)
    if flip_filters:
        filters = filters[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    if num_groups > 1:
        channels = _size(input, 1)
        num_filters = _size(filters, 0)
        in_group, out_group = channels // num_groups, num_filters // num_groups
        parts = [conv_nd(input[:, g * in_group:(g + 1) * in_group],
                         filters[g * out_group:(g + 1) * out_group], filter_size, stride, pads,
                         dilation, flip_filters=False)
                 for g in range(num_groups)]
        return pt.concatenate(parts, axis=1)
    x = pad_tensor(input, pads, batch_ndim=2)
    # channels last, so that the stacked columns reshape to a matrix without a copy
    x = x.dimshuffle((0,) + tuple(range(2, n + 2)) + (1,))
    out_size = []
    for axis in range(n):
        length = _size(x, axis + 1)
        out_size.append((length - (filter_size[axis] - 1) * dilation[axis] - 1)
                        // stride[axis] + 1)
    columns = []
    for taps in itertools.product(*(range(k) for k in filter_size)):
        index = [slice(None)]
        for axis, tap in enumerate(taps):
            start = tap * dilation[axis]
            index.append(slice(start, start + (out_size[axis] - 1) * stride[axis] + 1,
                               stride[axis]))
        columns.append(x[tuple(index)])
    columns = pt.stack(columns, axis=-1)  # (batch, *out, channels, taps)
    num_filters = filters.shape[0]
    batch = x.shape[0]
    rows = columns.reshape((-1, columns.shape[-2] * columns.shape[-1]))
    kernel = filters.reshape((num_filters, -1)).T  # (channels * taps, filters)
    output = pt.dot(rows, kernel)
    output = output.reshape([batch] + out_size + [num_filters], ndim=n + 2)
    return output.dimshuffle((0, n + 1) + tuple(range(1, n + 1)))


def _theano_conv(input, filters, n, input_shape, filter_shape, border_mode, subsample,
                 filter_flip, filter_dilation, num_groups):
    filters = pt.as_tensor_variable(filters)
    size = _filter_size(filters, n, filter_shape)
    return conv_nd(input, filters, size, subsample, border_mode, filter_dilation, filter_flip,
                   num_groups)


def conv1d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1,), filter_flip=True, filter_dilation=(1,), num_groups=1):
    """A 1D convolution with the arguments of Theano's ``conv2d`` (see :func:`conv_nd`)."""
    return _theano_conv(input, filters, 1, input_shape, filter_shape, border_mode, subsample,
                        filter_flip, filter_dilation, num_groups)


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, filter_dilation=(1, 1), num_groups=1):
    """A 2D convolution with the arguments of Theano's ``conv2d``.

    ``border_mode`` is ``'valid'``, ``'full'``, ``'half'``, an int or a pair of ints;
    ``subsample`` is the stride; ``filter_flip=False`` computes a correlation. See
    :func:`conv_nd`.
    """
    return _theano_conv(input, filters, 2, input_shape, filter_shape, border_mode, subsample,
                        filter_flip, filter_dilation, num_groups)


def conv3d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1, 1), filter_flip=True, filter_dilation=(1, 1, 1), num_groups=1):
    """A 3D convolution with the arguments of Theano's ``conv3d`` (see :func:`conv_nd`)."""
    return _theano_conv(input, filters, 3, input_shape, filter_shape, border_mode, subsample,
                        filter_flip, filter_dilation, num_groups)


def _conv1d(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
            subsample=(1,), filter_flip=True):
    if border_mode not in ("valid", "full", "half", "same") and not isinstance(
            border_mode, (numbers.Integral, tuple)):
        raise RuntimeError(f"Invalid border mode: '{border_mode}'")
    return conv1d(input, filters, image_shape, filter_shape, border_mode, subsample, filter_flip)


def conv1d_sc(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
              subsample=(1,), filter_flip=True):
    r"""One-dimensional convolution of ``input`` ``(batch, channels, length)`` with ``filters``
    ``(num_filters, channels, filter_length)``; ``border_mode`` is ``'valid'``, ``'full'``,
    ``'half'`` or an int, ``subsample`` the stride, ``filter_flip=False`` a correlation."""
    return _conv1d(input, filters, image_shape, filter_shape, border_mode, subsample,
                   filter_flip)


conv1d_mc0 = conv1d_sc
conv1d_mc1 = conv1d_sc


def _stride_divides_filter(filters, filter_shape, subsample, name):
    size = _filter_size(pt.as_tensor_variable(filters), 1, filter_shape)
    stride = _as_tuple(subsample, 1, "subsample")[0]
    if size is None and stride != 1:
        raise ValueError(f"{name} with a stride needs the filter length when the graph is "
                         "built; pass filter_shape")
    if size is not None and size[0] % stride:
        raise ValueError(f"{name} needs a filter length that is a multiple of the stride, "
                         f"got filter length {size[0]} and stride {stride}")


def conv1d_unstrided(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
                     subsample=(1,), filter_flip=True):
    """As :func:`conv1d_sc`, with the restriction of Lasagne's (which reshapes the input so
    that the stride becomes 1): the filter length must be a multiple of the stride."""
    _stride_divides_filter(filters, filter_shape, subsample, "conv1d_unstrided")
    return _conv1d(input, filters, image_shape, filter_shape, border_mode, subsample,
                   filter_flip)


def conv1d_sd(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
              subsample=(1,), filter_flip=True):
    """As :func:`conv1d_sc`, with the restriction of Lasagne's (one matrix product over
    stride-sized blocks): the filter length must be a multiple of the stride."""
    _stride_divides_filter(filters, filter_shape, subsample, "conv1d_sd")
    return _conv1d(input, filters, image_shape, filter_shape, border_mode, subsample,
                   filter_flip)


def conv1d_md(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
              subsample=(1,), filter_flip=True):
    """As :func:`conv1d_sc`, with the restriction of Lasagne's (several matrix products over
    stride-sized blocks): the filter length must be a multiple of the stride."""
    _stride_divides_filter(filters, filter_shape, subsample, "conv1d_md")
    return _conv1d(input, filters, image_shape, filter_shape, border_mode, subsample,
                   filter_flip)
