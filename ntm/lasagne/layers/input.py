"""The network's entry point: :class:`InputLayer`."""
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .base import Layer, _check_shape

__all__ = ["InputLayer"]


class InputLayer(Layer):
    """Holds the symbolic input of a network.

    Parameters
    ----------
    shape : tuple of int or None
        The input's shape; ``None`` for sizes known only at run time (e.g. batch or time). A
        new variable is broadcastable (static size 1) on the axes of size 1.
    input_var : TensorVariable, optional
        The variable to use; a new ``floatX`` tensor of ``len(shape)`` dimensions by default.
    name : str, optional
        A name for the layer (and the new variable).

    Raises
    ------
    ValueError
        If ``shape`` has a non-positive entry or ``input_var`` has another number of dimensions.
    """

    def __init__(self, shape, input_var=None, name=None, **kwargs):
        self.shape = _check_shape(shape, "InputLayer shape")
        ndim = len(self.shape)
        if input_var is None:
            var_name = f"{name}.input" if name is not None else "input"
            # axes of size 1 are broadcastable, as Lasagne's input variables are
            input_var = pt.tensor(var_name, dtype=pytensor.config.floatX,
                                  shape=tuple(1 if s == 1 else None for s in self.shape))
        else:
            if not isinstance(input_var, Variable):
                raise TypeError(f"input_var must be a PyTensor variable, got {input_var!r}")
            if input_var.ndim != ndim:
                raise ValueError(f"input_var has {input_var.ndim} dimensions, but shape {self.shape} "
                                 f"has {ndim}")
        self.input_var = input_var
        super().__init__(self.shape, name=name)
        # as in Lasagne, an input layer has no input_layer attribute: nothing feeds it
        del self.input_layer

    @Layer.output_shape.getter
    def output_shape(self):
        return self.shape
