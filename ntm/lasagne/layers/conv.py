r"""Convolutional layers: 1D, 2D and 3D convolutions, transposed and dilated convolutions.

A convolutional layer maps an input ``(batch, channels, *spatial)`` to
``(batch, num_filters, *out)``:

.. math:: y_{b, f} = \varphi\Big(\sum_c x_{b, c} \star W_{f, c} + b_f\Big)

where :math:`\star` is a convolution (filters flipped, ``flip_filters=True``, the default) or
a correlation. The convolutions are computed by
:func:`ntm.lasagne.theano_extensions.conv.conv_nd` (an im2col and one matrix product).
"""
import numbers

import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .. import init, nonlinearities
from ..theano_extensions import conv as conv_ops
from ..theano_extensions.padding import pad as pad_tensor
from ..utils import as_tuple
from .base import Layer

__all__ = ["conv_output_length", "conv_input_length", "BaseConvLayer", "Conv1DLayer",
           "Conv2DLayer", "Conv3DLayer", "TransposedConv2DLayer", "Deconv2DLayer",
           "TransposedConv3DLayer", "Deconv3DLayer", "DilatedConv2DLayer"]


def conv_output_length(input_length, filter_size, stride, pad=0):
    r"""The output length of a convolution along one axis.

    .. math:: n_{out} = \lceil (n_{in} + 2p - k + 1) / s \rceil

    with :math:`p = 0` for ``'valid'``, :math:`k - 1` for ``'full'`` and :math:`\lfloor k/2
    \rfloor` for ``'same'`` (where the unstrided output keeps the input's length).

    Parameters
    ----------
    input_length : int or None
    filter_size : int
    stride : int
    pad : int, 'valid', 'full' or 'same'

    Returns
    -------
    int or None
        ``None`` if ``input_length`` is ``None``.

    Raises
    ------
    ValueError
        If ``pad`` is none of the above.
    """
    if input_length is None:
        return None
    if pad == "valid":
        output_length = input_length - filter_size + 1
    elif pad == "full":
        output_length = input_length + filter_size - 1
    elif pad == "same":
        output_length = input_length
    elif isinstance(pad, numbers.Integral):
        output_length = input_length + 2 * pad - filter_size + 1
    else:
        raise ValueError(f"Invalid pad: {pad!r} (expected 'valid', 'full', 'same' or an int)")
    return (output_length + stride - 1) // stride


def conv_input_length(output_length, filter_size, stride, pad=0):
    r"""The input length of a convolution that gives ``output_length``; with strides several
    lengths do, and this is the smallest (the output length of the transposed convolution).

    .. math:: n_{in} = (n_{out} - 1) s - 2p + k

    Parameters
    ----------
    output_length : int or None
    filter_size : int
    stride : int
    pad : int, 'valid', 'full' or 'same'

    Raises
    ------
    ValueError
        If ``pad`` is none of the above.
    """
    if output_length is None:
        return None
    if pad == "valid":
        pad = 0
    elif pad == "full":
        pad = filter_size - 1
    elif pad == "same":
        pad = filter_size // 2
    if not isinstance(pad, numbers.Integral):
        raise ValueError(f"Invalid pad: {pad!r} (expected 'valid', 'full', 'same' or an int)")
    return (output_length - 1) * stride - 2 * pad + filter_size


def _check_pad(pad, n, filter_size):
    """``pad`` normalized: 'valid' becomes zeros; 'full' and 'same' stay; ints become tuples."""
    if pad == "valid":
        return (0,) * n
    if pad in ("full", "same"):
        if pad == "same" and any(s % 2 == 0 for s in filter_size):
            raise NotImplementedError("pad='same' requires odd filter size, got filter_size="
                                      f"{filter_size}")
        return pad
    return as_tuple(pad, n, int)


class BaseConvLayer(Layer):
    r"""The common part of the convolutional layers: parameters, shapes, bias and
    nonlinearity; subclasses implement :meth:`convolve`.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, *spatial)`` with ``n`` spatial axes.
    num_filters : int
        The number of filters (output channels).
    filter_size : int or tuple of int
        The spatial size of the filters.
    stride : int or tuple of int
        The step between filter positions.
    pad : int, tuple of int, 'valid', 'full' or 'same'
        Zero padding on both sides of each spatial axis: ``'valid'`` none (the default, as 0),
        ``'full'`` the filter size minus one, ``'same'`` half the filter size (odd sizes
        only), so that the unstrided output has the input's size.
    untie_biases : bool
        One bias per filter and output position (shape ``(num_filters, *out)``) instead of
        one per filter.
    W : initializer, array or shared variable
        Filters of shape ``(num_filters, channels // num_groups, *filter_size)``.
    b : initializer, array, shared variable or None
        Biases; ``None`` for none.
    nonlinearity : callable or None
        :math:`\varphi`; ``None`` means linear.
    flip_filters : bool
        Flip the filters (a convolution, the default) or not (a correlation).
    num_groups : int
        Split input channels and filters into this many groups convolved separately.
    n : int, optional
        The number of spatial axes; by default the input's dimensions minus two.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0, untie_biases=False,
                 W=init.GlorotUniform(), b=init.Constant(0.), nonlinearity=nonlinearities.rectify,
                 flip_filters=True, n=None, num_groups=1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        if n is None:
            n = len(self.input_shape) - 2
        elif n != len(self.input_shape) - 2:
            raise ValueError(f"Tried to create a {n}D convolution layer with input shape "
                             f"{self.input_shape}. Expected {n + 2} input dimensions "
                             f"(batchsize, channels, {n} spatial dimensions).")
        self.n = n
        self.num_filters = num_filters
        self.filter_size = as_tuple(filter_size, n, int)
        self.flip_filters = flip_filters
        self.stride = as_tuple(stride, n, int)
        self.untie_biases = untie_biases
        self.pad = _check_pad(pad, n, self.filter_size)
        channels = self.input_shape[1]
        if not isinstance(num_groups, numbers.Integral) or num_groups < 1:
            raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
        if channels is not None and channels % num_groups:
            raise ValueError(f"num_groups ({num_groups}) must divide the number of input "
                             f"channels ({channels})")
        if num_filters % num_groups:
            raise ValueError(f"num_groups ({num_groups}) must divide num_filters "
                             f"({num_filters})")
        self.num_groups = num_groups
        self.W = self.add_param(W, self.get_W_shape(), name="W")
        if b is None:
            self.b = None
        else:
            if self.untie_biases:
                biases_shape = (num_filters,) + self.output_shape[2:]
            else:
                biases_shape = (num_filters,)
            self.b = self.add_param(b, biases_shape, name="b", regularizable=False)

    def get_W_shape(self):
        """The shape of the filters, ``(num_filters, channels // num_groups, *filter_size)``."""
        channels = self.input_shape[1]
        return (self.num_filters, channels // self.num_groups) + self.filter_size

    def get_output_shape_for(self, input_shape):
        pad = self.pad if isinstance(self.pad, tuple) else (self.pad,) * self.n
        batch = input_shape[0]
        return (batch, self.num_filters) + tuple(
            conv_output_length(length, size, stride, p)
            for length, size, stride, p in zip(input_shape[2:], self.filter_size, self.stride,
                                               pad))

    def get_output_for(self, input, **kwargs):
        conved = self.convolve(pt.as_tensor_variable(input), **kwargs)
        if self.b is None:
            activation = conved
        elif self.untie_biases:
            activation = conved + pt.shape_padleft(self.b, 1)
        else:
            activation = conved + self.b.dimshuffle(("x", 0) + ("x",) * self.n)
        return self.nonlinearity(activation)

    def convolve(self, input, **kwargs):
        """The convolution of ``input`` with the filters, before bias and nonlinearity."""
        raise NotImplementedError("BaseConvLayer.convolve is implemented by its subclasses")

    def _convolve_nd(self, input):
        return conv_ops.conv_nd(input, self.W, self.filter_size, self.stride, self.pad,
                                flip_filters=self.flip_filters, num_groups=self.num_groups)


class Conv1DLayer(BaseConvLayer):
    """A 1D convolution over inputs ``(batch, channels, length)``; see :class:`BaseConvLayer`.

    ``convolution`` is the function called as ``convolution(input, W, input_shape, W_shape,
    subsample=..., border_mode=..., filter_flip=...)``, by default
    :func:`~ntm.lasagne.theano_extensions.conv.conv1d_mc0`.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0, untie_biases=False,
                 W=init.GlorotUniform(), b=init.Constant(0.), nonlinearity=nonlinearities.rectify,
                 flip_filters=True, convolution=conv_ops.conv1d_mc0, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=1, **kwargs)
        self.convolution = convolution

    def convolve(self, input, **kwargs):
        border_mode = "half" if self.pad == "same" else self.pad
        return self.convolution(input, self.W, self.input_shape, self.get_W_shape(),
                                subsample=self.stride, border_mode=border_mode,
                                filter_flip=self.flip_filters)


class Conv2DLayer(BaseConvLayer):
    """A 2D convolution over inputs ``(batch, channels, rows, columns)``; see
    :class:`BaseConvLayer`.

    ``convolution`` is the function called as ``convolution(input, W, input_shape, W_shape,
    subsample=..., border_mode=..., filter_flip=...)`` (and ``num_groups=`` when it is not 1),
    by default :func:`~ntm.lasagne.theano_extensions.conv.conv2d`.
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.),
                 nonlinearity=nonlinearities.rectify, flip_filters=True,
                 convolution=conv_ops.conv2d, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)
        self.convolution = convolution

    def convolve(self, input, **kwargs):
        border_mode = "half" if self.pad == "same" else self.pad
        extra = {"num_groups": self.num_groups} if self.num_groups > 1 else {}
        return self.convolution(input, self.W, self.input_shape, self.get_W_shape(),
                                subsample=self.stride, border_mode=border_mode,
                                filter_flip=self.flip_filters, **extra)


class Conv3DLayer(BaseConvLayer):
    """A 3D convolution over inputs ``(batch, channels, depth, rows, columns)``; see
    :class:`BaseConvLayer` and :class:`Conv2DLayer` for ``convolution``."""

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.),
                 nonlinearity=nonlinearities.rectify, flip_filters=True,
                 convolution=conv_ops.conv3d, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=3, **kwargs)
        self.convolution = convolution

    convolve = Conv2DLayer.convolve  # the same call, with the 3D convolution


class _TransposedConvLayer(BaseConvLayer):
    r"""The transpose of a convolution (its gradient with respect to its input): each input
    position adds its value times the filters into the output, ``stride`` places apart.

    .. math:: y_{b, f, i s + k} \mathrel{+}= \sum_c x_{b, c, i} W_{c, f, k}

    (with the filters flipped when ``flip_filters=False``, the default: the transpose of a
    convolution that flips), then ``crop`` entries are removed from both ends of each axis.
    The output length is :func:`conv_input_length`, or ``output_size``.

    Parameters
    ----------
    incoming : Layer or tuple
    num_filters : int
        The number of output channels.
    filter_size : int or tuple of int
    stride : int or tuple of int
        The upsampling factor.
    crop : int, tuple of int, 'valid', 'full' or 'same'
        What the forward convolution padded: ``'valid'`` (0) crops nothing, ``'full'`` crops
        the filter size minus one, ``'same'`` half the filter size.
    untie_biases, b, nonlinearity
        As in :class:`BaseConvLayer`.
    W : initializer, array or shared variable
        Filters of shape ``(channels, num_filters, *filter_size)`` (the forward convolution's).
    flip_filters : bool
        Flip the filters or not (the default; see above).
    output_size : int, tuple of int or symbolic, optional
        The output's spatial size, for strides where several sizes are possible (at most
        ``stride - 1`` more than the smallest); a symbolic size leaves the output shape
        unknown.
    """

    def __init__(self, incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                 nonlinearity, flip_filters, output_size, n, **kwargs):
        self.crop = _check_pad(crop, n, as_tuple(filter_size, n, int))
        self.output_size = output_size
        if output_size is not None and not isinstance(output_size, Variable):
            self.output_size = as_tuple(output_size, n, int)
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, n=n, **kwargs)
        # the forward convolution's padding is this layer's cropping
        self.pad = self.crop

    def get_W_shape(self):
        return (self.input_shape[1], self.num_filters) + self.filter_size

    def get_output_shape_for(self, input_shape):
        if self.output_size is not None:
            if isinstance(self.output_size, Variable):
                return (input_shape[0], self.num_filters) + (None,) * self.n
            return (input_shape[0], self.num_filters) + self.output_size
        crop = self.crop if isinstance(self.crop, tuple) else (self.crop,) * self.n
        return (input_shape[0], self.num_filters) + tuple(
            conv_input_length(length, size, stride, c)
            for length, size, stride, c in zip(input_shape[2:], self.filter_size, self.stride,
                                               crop))

    def convolve(self, input, **kwargs):
        n = self.n
        crop = self.crop
        if crop == "full":
            crop = tuple(k - 1 for k in self.filter_size)
        elif crop == "same":
            crop = tuple(k // 2 for k in self.filter_size)
        # zeros between the inputs, stride apart
        size = [input.shape[d] for d in range(input.ndim)]
        dilated_size = size[:2] + [(size[2 + a] - 1) * self.stride[a] + 1 for a in range(n)]
        dilated = pt.zeros(dilated_size, dtype=input.dtype)
        dilated = pt.set_subtensor(
            dilated[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in self.stride)],
            input)
        natural = [(size[2 + a] - 1) * self.stride[a] + self.filter_size[a] - 2 * crop[a]
                   for a in range(n)]
        if self.output_size is None:
            extra = [0] * n
            out_size = natural
        else:
            out_size = [self.output_size[a] for a in range(n)]
            extra = [out_size[a] - natural[a] for a in range(n)]
        widths = [(k - 1, k - 1 + e) for k, e in zip(self.filter_size, extra)]
        padded = pad_tensor(dilated, widths, batch_ndim=2)
        W = self.W.dimshuffle((1, 0) + tuple(range(2, n + 2)))
        full = conv_ops.conv_nd(padded, W, self.filter_size, 1, 0,
                                flip_filters=self.flip_filters)
        return full[(slice(None), slice(None)) + tuple(
            slice(c, c + o) for c, o in zip(crop, out_size))]


class TransposedConv2DLayer(_TransposedConvLayer):
    __doc__ = _TransposedConvLayer.__doc__

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), crop=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, output_size=None,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, output_size, n=2, **kwargs)


Deconv2DLayer = TransposedConv2DLayer


class TransposedConv3DLayer(_TransposedConvLayer):
    __doc__ = _TransposedConvLayer.__doc__

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1, 1), crop=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, output_size=None,
                 **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, crop, untie_biases, W, b,
                         nonlinearity, flip_filters, output_size, n=3, **kwargs)


Deconv3DLayer = TransposedConv3DLayer


class DilatedConv2DLayer(BaseConvLayer):
    r"""A 2D correlation with dilated filters (taps ``dilation`` apart, "à trous"):

    .. math:: y_{b, f, o} = \varphi\Big(\sum_c \sum_k x_{b, c, o + k d} W_{c, f, k} + b_f\Big)

    so the output has :math:`n - (k - 1) d` positions per axis.

    Parameters
    ----------
    incoming, num_filters, filter_size, untie_biases, b, nonlinearity
        As in :class:`BaseConvLayer`.
    dilation : int or tuple of int
        The spacing :math:`d` of the filter taps.
    pad : 0 or 'valid'
        Only no padding is supported (as in Lasagne).
    W : initializer, array or shared variable
        Filters of shape ``(channels, num_filters, *filter_size)``.
    flip_filters : False
        Only a correlation is supported (as in Lasagne).
    """

    def __init__(self, incoming, num_filters, filter_size, dilation=(1, 1), pad=0,
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.),
                 nonlinearity=nonlinearities.rectify, flip_filters=False, **kwargs):
        self.dilation = as_tuple(dilation, 2, int)
        super().__init__(incoming, num_filters, filter_size, 1, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)
        if self.pad not in ((0, 0), "valid"):
            raise NotImplementedError("DilatedConv2DLayer requires pad=0 / (0,0) / 'valid', "
                                      f"got {pad!r}")
        if self.flip_filters:
            raise NotImplementedError("DilatedConv2DLayer requires flip_filters=False")

    def get_W_shape(self):
        return (self.input_shape[1], self.num_filters) + self.filter_size

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_filters) + tuple(
            None if length is None else length - (size - 1) * d
            for length, size, d in zip(input_shape[2:], self.filter_size, self.dilation))

    def convolve(self, input, **kwargs):
        W = self.W.dimshuffle(1, 0, 2, 3)
        return conv_ops.conv_nd(input, W, self.filter_size, 1, 0, self.dilation,
                                flip_filters=False)
