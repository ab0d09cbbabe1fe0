"""The layer base classes: :class:`Layer` (one input) and :class:`MergeLayer` (several)."""
import numbers
from collections import OrderedDict

from pytensor.graph.basic import Variable

from ..utils import collect_shared_vars, create_param

__all__ = ["Layer", "MergeLayer", "collect_shared_vars"]


def _check_shape(shape, what):
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints or None, got {shape!r}") from None
    if any(d is not None and (not isinstance(d, numbers.Integral) or d <= 0) for d in shape):
        raise ValueError(f"{what} must contain only positive ints or None, got {shape}")
    return shape


class Layer:
    """A layer of a network with a single input.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding this one, or the expected input shape (``None`` for unknown sizes).
    name : str, optional
        A name for the layer; its parameters are named ``"<layer name>.<param name>"``.

    Attributes
    ----------
    params : OrderedDict
        Maps each parameter (shared variable or expression) to its set of tags.
    get_output_kwargs : list of str
        Keyword arguments of :meth:`get_output_for` beyond the input, so that
        :func:`~ntm.lasagne.layers.get_output` can warn about ones no layer uses.
    """

    def __init__(self, incoming, name=None):
        if isinstance(incoming, tuple):
            self.input_shape = _check_shape(incoming, "incoming shape")
            self.input_layer = None
        else:
            self.input_shape = incoming.output_shape
            if any(d is not None and d <= 0 for d in self.input_shape):
                raise ValueError("Cannot create Layer with a non-positive input_shape dimension. "
                                 f"input_shape={self.input_shape!r}, self.name={name!r}")
            self.input_layer = incoming
        self.name = name
        self.params = OrderedDict()
        self.get_output_kwargs = []

    @property
    def output_shape(self):
        """The shape of the output, computed from the input shape (``None`` where unknown)."""
        shape = self.get_output_shape_for(self.input_shape)
        if any(isinstance(s, Variable) for s in shape):
            raise ValueError(f"{self.__class__.__name__} returned a symbolic output shape {shape}")
        return shape

    def get_params(self, unwrap_shared=True, **tags):
        """The layer's parameters, filtered by tags.

        Parameters
        ----------
        unwrap_shared : bool
            Replace parameters that are expressions by the shared variables they depend on.
        **tags
            ``trainable=True`` keeps only parameters with that tag; ``regularizable=False``
            keeps only those without it.
        """
        result = list(self.params.keys())
        wanted = {tag for tag, value in tags.items() if value}
        unwanted = {tag for tag, value in tags.items() if not value}
        if wanted:
            result = [p for p in result if not (wanted - self.params[p])]
        if unwanted:
            result = [p for p in result if not (self.params[p] & unwanted)]
        if unwrap_shared:
            return collect_shared_vars(result) if result else []
        return result

    def get_output_shape_for(self, input_shape):
        """The output shape for an input of ``input_shape`` (the identity by default)."""
        return input_shape

    def get_output_for(self, input, **kwargs):
        """The symbolic output of the layer for the symbolic ``input``."""
        raise NotImplementedError()

    def add_param(self, spec, shape, name=None, **tags):
        """Create a parameter with :func:`~ntm.lasagne.utils.create_param` and register it.

        Parameters
        ----------
        spec : array, shared variable, expression or callable
            The initial value or an initializer.
        shape : tuple of int
            The parameter's shape.
        name : str, optional
            Its name, prefixed with the layer's name when the layer has one.
        **tags
            Tags set to True or False; ``trainable`` and ``regularizable`` default to True.

        Returns
        -------
        The shared variable (or expression) created.
        """
        if name is not None and self.name is not None:
            name = f"{self.name}.{name}"
        param = create_param(spec, shape, name)
        tags.setdefault("trainable", True)
        tags.setdefault("regularizable", True)
        self.params[param] = {tag for tag, value in tags.items() if value}
        return param


class MergeLayer(Layer):
    """A layer with several inputs.

    Parameters
    ----------
    incomings : list of Layer or tuple
        The layers feeding this one, or their expected shapes.
    name : str, optional
        A name for the layer.
    """

    def __init__(self, incomings, name=None):
        self.input_shapes = [inc if isinstance(inc, tuple) else inc.output_shape
                             for inc in incomings]
        self.input_layers = [None if isinstance(inc, tuple) else inc for inc in incomings]
        self.name = name
        self.params = OrderedDict()
        self.get_output_kwargs = []

    @Layer.output_shape.getter
    def output_shape(self):
        shape = self.get_output_shape_for(self.input_shapes)
        if any(isinstance(s, Variable) for s in shape):
            raise ValueError(f"{self.__class__.__name__} returned a symbolic output shape {shape}")
        return shape

    def get_output_shape_for(self, input_shapes):
        """The output shape for inputs of ``input_shapes``."""
        raise NotImplementedError()

    def get_output_for(self, inputs, **kwargs):
        """The symbolic output for the list of symbolic ``inputs``."""
        raise NotImplementedError()
