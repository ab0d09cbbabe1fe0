r"""Locally connected layers: convolutions whose filters differ at every output position."""
import itertools

import pytensor.tensor as pt

from .. import init, nonlinearities
from ..theano_extensions.padding import pad as pad_tensor
from ..utils import as_tuple
from .conv import BaseConvLayer

__all__ = ["LocallyConnected2DLayer"]


class LocallyConnected2DLayer(BaseConvLayer):
    r"""A 2D convolution with unshared weights: each output position :math:`o` has its own
    filters,

    .. math:: y_{b, f, o} = \varphi\Big(\sum_c \sum_k x_{b, c, o + k - \lfloor K/2 \rfloor}
              W_{f, c, k, o} + b_f\Big)

    (filters flipped when ``flip_filters=True``), with 'same' zero padding and stride 1, so the
    output has the input's height and width. With ``channelwise=True`` each filter sees only
    its own channel: :math:`y_{b, f, o} = \sum_k x_{b, f, o + k - \lfloor K/2 \rfloor}
    W_{f, k, o}`.

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, channels, rows, columns)`` with all but the batch size known.
    num_filters : int
    filter_size : int or tuple of int
        Odd sizes.
    stride : 1 or (1, 1)
        Only 1 is supported.
    pad : 'same'
        Only 'same' is supported.
    untie_biases, b, nonlinearity, flip_filters
        As in :class:`~ntm.lasagne.layers.BaseConvLayer`.
    W : initializer, array or shared variable
        Of shape ``(num_filters, channels, *filter_size, *output_size)``, or
        ``(num_filters, *filter_size, *output_size)`` if ``channelwise``.
    channelwise : bool
        One filter per channel (``num_filters`` must equal the number of channels).
    """

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad="same",
                 untie_biases=False, W=init.GlorotUniform(), b=init.Constant(0.),
                 nonlinearity=nonlinearities.rectify, flip_filters=True, channelwise=False,
                 **kwargs):
        self.channelwise = channelwise
        input_shape = incoming if isinstance(incoming, tuple) else incoming.output_shape
        if any(s is None for s in tuple(input_shape)[1:]):
            raise ValueError("A LocallyConnected2DLayer requires a fixed input shape (except "
                             f"for the batch size), got {tuple(input_shape)}")
        if channelwise and num_filters != input_shape[1]:
            raise ValueError("With channelwise=True, num_filters and the number of input "
                             f"channels should match, got {num_filters} and {input_shape[1]}")
        if pad != "same":
            raise NotImplementedError(f"LocallyConnected2DLayer requires pad='same', got {pad!r}")
        if as_tuple(stride, 2) != (1, 1):
            raise NotImplementedError("LocallyConnected2DLayer requires stride=1 / (1, 1), got "
                                      f"{stride!r}")
        super().__init__(incoming, num_filters, filter_size, stride, pad, untie_biases, W, b,
                         nonlinearity, flip_filters, n=2, **kwargs)

    def get_W_shape(self):
        output_size = self.get_output_shape_for(self.input_shape)[2:]
        if self.channelwise:
            return (self.num_filters,) + self.filter_size + output_size
        return (self.num_filters, self.input_shape[1]) + self.filter_size + output_size

    def convolve(self, input, **kwargs):
        rows, cols = self.filter_size
        height, width = self.input_shape[2:]
        x = pad_tensor(input, (rows // 2, cols // 2), batch_ndim=2)
        # (batch, channels, taps, rows, columns)
        columns = pt.stack([x[:, :, i:i + height, j:j + width]
                            for i, j in itertools.product(range(rows), range(cols))], axis=2)
        W = self.W
        if self.flip_filters:
            W = (W[:, ::-1, ::-1] if self.channelwise else W[:, :, ::-1, ::-1])
        if self.channelwise:
            W = W.reshape((self.num_filters, rows * cols, height, width))
            return pt.sum(columns * W.dimshuffle("x", 0, 1, 2, 3), axis=2)
        W = W.reshape((self.num_filters, self.input_shape[1], rows * cols, height, width))
        return pt.sum(columns.dimshuffle(0, "x", 1, 2, 3, 4) * W.dimshuffle("x", 0, 1, 2, 3, 4),
                      axis=(2, 3))
