r"""Fully connected layers: :class:`DenseLayer`, :class:`NINLayer` (a dense layer over the
channels at each position) and :class:`NonlinearityLayer`."""
import numpy as np
import pytensor.tensor as pt

from .. import init, nonlinearities
from .base import Layer

__all__ = ["DenseLayer", "NINLayer", "NonlinearityLayer"]


class DenseLayer(Layer):
    r"""A fully connected layer, :math:`y = \varphi(x W + b)`.

    Parameters
    ----------
    incoming : Layer or tuple
        The input layer or its shape.
    num_units : int
        Number of output units.
    W : initializer, array or shared variable
        Weights of shape ``(num_inputs, num_units)``, where ``num_inputs`` is the product of the
        trailing (non-leading) input axes.
    b : initializer, array, shared variable or None
        Biases of shape ``(num_units,)``; ``None`` for no bias.
    nonlinearity : callable or None
        :math:`\varphi`; ``None`` means linear.
    num_leading_axes : int
        How many leading axes are kept (the rest are flattened into the input units); negative
        counts from the end, so ``-1`` applies the layer to the last axis only.
    """

    def __init__(self, incoming, num_units, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, num_leading_axes=1, **kwargs):
        super().__init__(incoming, **kwargs)
        if not isinstance(num_units, (int, np.integer)) or num_units <= 0:
            raise ValueError(f"num_units must be a positive int, got {num_units!r}")
        self.num_units = int(num_units)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        ndim = len(self.input_shape)
        if num_leading_axes >= ndim:
            raise ValueError(f"num_leading_axes={num_leading_axes} leaving no trailing axes for "
                             f"an input of shape {self.input_shape}")
        if num_leading_axes < -ndim:
            raise ValueError(f"num_leading_axes={num_leading_axes} is below -{ndim}, the number "
                             f"of input dimensions of {self.input_shape}")
        self.num_leading_axes = num_leading_axes  # kept as given: -1 stays "all but the last"
        trailing = self.input_shape[num_leading_axes:]
        if any(s is None for s in trailing):
            raise ValueError(f"A DenseLayer requires a fixed input shape (except for the leading axes), got "
                             f"{self.input_shape} with num_leading_axes={num_leading_axes}")
        num_inputs = int(np.prod(trailing))
        self.W = self.add_param(W, (num_inputs, self.num_units), name="W")
        self.b = (None if b is None else
                  self.add_param(b, (self.num_units,), name="b", regularizable=False))

    def get_output_shape_for(self, input_shape):
        return tuple(input_shape[:self.num_leading_axes]) + (self.num_units,)

    def get_output_for(self, input, **kwargs):
        num_leading_axes = self.num_leading_axes
        if num_leading_axes < 0:
            num_leading_axes += input.ndim
        if input.ndim > num_leading_axes + 1:
            input = input.flatten(num_leading_axes + 1)
        activation = pt.dot(input, self.W)
        if self.b is not None:
            activation = activation + self.b
        return self.nonlinearity(activation)


class NonlinearityLayer(Layer):
    r"""Applies ``nonlinearity`` elementwise (``None`` means linear)."""

    def __init__(self, incoming, nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def get_output_for(self, input, **kwargs):
        return self.nonlinearity(input)


class NINLayer(Layer):
    r"""Network-in-network: a dense layer over the channel axis (axis 1), applied at every
    position of the trailing axes (a convolution with 1x1 filters):

    .. math:: y_{b, u, \dots} = \varphi\Big(\sum_c x_{b, c, \dots} W_{c, u} + b_u\Big)

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, channels, ...)``.
    num_units : int
        The number of output channels.
    untie_biases : bool
        One bias per unit and position (shape ``(num_units, *input_shape[2:])``) instead of
        one per unit.
    W : initializer, array or shared variable
        Weights of shape ``(channels, num_units)``.
    b : initializer, array, shared variable or None
    nonlinearity : callable or None
    """

    def __init__(self, incoming, num_units, untie_biases=False, W=init.GlorotUniform(),
                 b=init.Constant(0.), nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.num_units = num_units
        self.untie_biases = untie_biases
        num_input_channels = self.input_shape[1]
        self.W = self.add_param(W, (num_input_channels, num_units), name="W")
        if b is None:
            self.b = None
        else:
            shape = (num_units,) + tuple(self.output_shape[2:]) if untie_biases else (num_units,)
            self.b = self.add_param(b, shape, name="b", regularizable=False)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_units) + tuple(input_shape[2:])

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        # units first: (units, batch, ...), then back to (batch, units, ...)
        out = pt.tensordot(self.W, input, axes=[[0], [1]])
        out = out.dimshuffle((1, 0) + tuple(range(2, input.ndim)))
        if self.b is not None:
            if self.untie_biases:
                out = out + pt.shape_padleft(self.b, 1)
            else:
                out = out + self.b.dimshuffle(("x", 0) + ("x",) * (input.ndim - 2))
        return self.nonlinearity(out)
