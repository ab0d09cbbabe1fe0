"""Embedding layer: integer indices to learned vectors."""
import pytensor.tensor as pt

from .. import init
from .base import Layer

__all__ = ["EmbeddingLayer"]


class EmbeddingLayer(Layer):
    r"""Maps integer indices to rows of a learned matrix, :math:`y_{\dots} = W_{x_{\dots}}`:
    an input of shape ``s`` gives an output ``s + (output_size,)``.

    Parameters
    ----------
    incoming : Layer or tuple
        Integer indices in ``[0, input_size)``.
    input_size : int
        The number of distinct indices (the vocabulary size).
    output_size : int
        The size of each embedding vector.
    W : initializer, array or shared variable
        The embeddings, of shape ``(input_size, output_size)``.
    """

    def __init__(self, incoming, input_size, output_size, W=init.Normal(), **kwargs):
        super().__init__(incoming, **kwargs)
        self.input_size = input_size
        self.output_size = output_size
        self.W = self.add_param(W, (input_size, output_size), name="W")

    def get_output_shape_for(self, input_shape):
        return tuple(input_shape) + (self.output_size,)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        if not input.dtype.startswith(("int", "uint")):
            input = pt.cast(input, "int64")
        return self.W[input]
