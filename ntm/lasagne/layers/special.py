"""Layers defined by an arbitrary expression."""
import numpy as np
import pytensor

from .base import Layer

__all__ = ["ExpressionLayer"]


class ExpressionLayer(Layer):
    """Applies ``function`` to the input.

    Parameters
    ----------
    incoming : Layer or tuple
    function : callable
        Maps the symbolic input to the symbolic output.
    output_shape : None, tuple, callable or 'auto'
        ``None``: the input shape; a tuple: that shape; a callable: called with the input
        shape; ``'auto'``: found by applying ``function`` to arrays of the input shape (unknown
        sizes are tried at two values and stay ``None`` where the result depends on them).
    """

    def __init__(self, incoming, function, output_shape=None, **kwargs):
        super().__init__(incoming, **kwargs)
        if output_shape is not None and output_shape != "auto" and not callable(output_shape):
            output_shape = tuple(output_shape)
        self.function, self._output_shape = function, output_shape

    def get_output_shape_for(self, input_shape):
        spec = self._output_shape
        if spec is None:
            return input_shape
        if spec == "auto":
            results = []
            for filler in (2, 3):
                value = np.ones([filler if s is None else s for s in input_shape],
                                dtype=pytensor.config.floatX)
                results.append(np.shape(self.function(pytensor.shared(value)).eval()))
            return tuple(a if a == b else None for a, b in zip(*results))
        if callable(spec):
            return tuple(spec(input_shape))
        return spec

    def get_output_for(self, input, **kwargs):
        return self.function(input)
