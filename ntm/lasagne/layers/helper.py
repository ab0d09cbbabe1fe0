"""Functions over whole networks: collect layers and parameters, build outputs and shapes."""
import difflib
import inspect
import warnings

import numpy as np

from ..utils import as_pytensor_expression, unique
from .base import MergeLayer
from .input import InputLayer

__all__ = ["get_all_layers", "get_output", "get_output_shape", "get_all_params",
           "count_params", "get_all_param_values", "set_all_param_values"]


def _incoming(layer):
    if isinstance(layer, MergeLayer):
        return [l for l in layer.input_layers if l is not None]
    # a Lasagne InputLayer has no input_layer attribute at all; a layer built from a shape has
    # input_layer None
    return [layer.input_layer] if getattr(layer, "input_layer", None) is not None else []


def get_all_layers(layer, treat_as_input=None):
    """Every layer that ``layer`` (one or a list) depends on, in topological order.

    Each layer comes after all the layers it takes input from; the search stops at layers in
    ``treat_as_input``.
    """
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    stop = set(treat_as_input or [])
    done, result = set(), []
    # Iterative depth-first search: a layer is emitted once all its inputs have been.
    for root in layers:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded or node in stop:
                done.add(node)
                result.append(node)
                continue
            stack.append((node, True))
            for parent in reversed(_incoming(node)):
                if parent not in done:
                    stack.append((parent, False))
    return result


def _accepted_kwargs(layer):
    names = set(getattr(layer, "get_output_kwargs", []))
    try:
        signature = inspect.signature(layer.get_output_for)
    except (TypeError, ValueError):
        return names
    for param in list(signature.parameters.values())[1:]:
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            names.add(param.name)
    return names


def get_output(layer_or_layers, inputs=None, **kwargs):
    """The symbolic output of one layer or a list of layers.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
        The layer(s) whose output to compute.
    inputs : None, expression, array or dict, optional
        ``None`` uses each :class:`InputLayer`'s ``input_var``; an expression or array replaces
        the variable of the network's only input layer; a dict maps layers (input or not) to
        expressions or arrays, which then stand in for their outputs.
    **kwargs
        Passed to every layer's ``get_output_for`` (e.g. ``deterministic=True``); a warning
        names any that no layer of the network accepts (``deterministic`` is always accepted).

    Raises
    ------
    ValueError
        If a single expression is given for a network with several input layers, or a layer
        built from a shape has no input in ``inputs``.

    Returns
    -------
    An expression, or a list of expressions for a list of layers.
    """
    treat_as_input = list(inputs.keys()) if isinstance(inputs, dict) else []
    all_layers = get_all_layers(layer_or_layers, treat_as_input)
    outputs = {layer: layer.input_var for layer in all_layers if isinstance(layer, InputLayer)
               and layer not in treat_as_input}
    if isinstance(inputs, dict):
        # keys are layers, or None for the input of a layer built from a shape; a key that is
        # not in the network is ignored, as in Lasagne
        for layer, value in inputs.items():
            outputs[layer] = as_pytensor_expression(value)
    elif inputs is not None:
        if not outputs:
            raise ValueError("inputs was given but the network has no InputLayer to replace")
        if len(outputs) > 1:
            raise ValueError("get_output() was called with a single input expression on a network "
                             f"with {len(outputs)} input layers; pass a dict mapping each input "
                             "layer to its expression instead")
        value = as_pytensor_expression(inputs)
        for layer in outputs:
            outputs[layer] = value
    accepted = {"deterministic"}  # always accepted, as in Lasagne
    for layer in all_layers:
        if layer in outputs:
            continue
        if isinstance(layer, MergeLayer):
            missing = [i for i, l in enumerate(layer.input_layers) if l is None]
            if missing and None not in outputs:
                raise ValueError(f"{layer.__class__.__name__} was built from shapes, not layers, "
                                 "and has no inputs; pass them in a dict to get_output")
            layer_inputs = [outputs[l] for l in layer.input_layers]
        else:
            if layer.input_layer is None and None not in outputs:
                raise ValueError(f"{layer.__class__.__name__} was built from a shape, not a layer, "
                                 "and has no input; pass it in a dict to get_output")
            layer_inputs = outputs[layer.input_layer]
        accepted |= _accepted_kwargs(layer)
        outputs[layer] = layer.get_output_for(layer_inputs, **kwargs)
    unused = sorted(set(kwargs) - accepted)
    if unused:
        named = []
        for kwarg in unused:
            close = difflib.get_close_matches(kwarg, sorted(accepted), n=1)
            named.append(f"{kwarg} (perhaps you meant {close[0]})" if close else kwarg)
        warnings.warn("get_output() was called with unused kwargs: " + ", ".join(named)
                      + " (no layer of the network accepts them)", stacklevel=2)
    if isinstance(layer_or_layers, (list, tuple)):
        return [outputs[layer] for layer in layer_or_layers]
    return outputs[layer_or_layers]


def get_output_shape(layer_or_layers, input_shapes=None):
    """The output shape of one layer or a list of layers.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
    input_shapes : None, tuple or dict, optional
        ``None`` uses the shapes the layers were built with; a tuple replaces the shape of the
        network's only input layer; a dict maps layers to shapes.
    """
    if input_shapes is None or (isinstance(input_shapes, dict) and not input_shapes):
        if isinstance(layer_or_layers, (list, tuple)):
            return [layer.output_shape for layer in layer_or_layers]
        return layer_or_layers.output_shape
    treat_as_input = list(input_shapes.keys()) if isinstance(input_shapes, dict) else []
    all_layers = get_all_layers(layer_or_layers, treat_as_input)
    if isinstance(input_shapes, dict):
        shapes = dict(input_shapes)
    else:
        shapes = {layer: tuple(input_shapes) for layer in all_layers if isinstance(layer, InputLayer)}
        if len(shapes) > 1:
            raise ValueError("get_output_shape() was called with a single input shape on a network "
                             f"with {len(shapes)} input layers; pass a dict mapping each input "
                             "layer to its shape instead")
    for layer in all_layers:
        if layer in shapes:
            continue
        if isinstance(layer, InputLayer):
            shapes[layer] = layer.shape
        elif isinstance(layer, MergeLayer):
            # an input built from a shape takes the shape given for None, if any
            shapes[layer] = layer.get_output_shape_for(
                [shapes[l] if l is not None else shapes.get(None, shape)
                 for l, shape in zip(layer.input_layers, layer.input_shapes)])
        else:
            if layer.input_layer is None:
                input_shape = shapes.get(None, layer.input_shape)
            else:
                input_shape = shapes[layer.input_layer]
            shapes[layer] = layer.get_output_shape_for(input_shape)
    if isinstance(layer_or_layers, (list, tuple)):
        return [shapes[layer] for layer in layer_or_layers]
    return shapes[layer_or_layers]


def get_all_params(layer, unwrap_shared=True, **tags):
    """The parameters of every layer of the network, without repeats, in topological order.

    Parameters
    ----------
    layer : Layer or list of Layer
    unwrap_shared : bool
        Replace expression parameters by the shared variables they depend on.
    **tags
        Tag filter, e.g. ``trainable=True`` or ``regularizable=False``.
    """
    params = []
    for l in get_all_layers(layer):
        params.extend(l.get_params(unwrap_shared=unwrap_shared, **tags))
    return unique(params)


def count_params(layer, **tags):
    """The number of scalar parameters of the network (filtered by ``tags``)."""
    return int(sum(np.prod(p.get_value(borrow=True).shape) for p in get_all_params(layer, **tags)))


def get_all_param_values(layer, **tags):
    """The values (NumPy arrays) of :func:`get_all_params`, in the same order."""
    return [p.get_value() for p in get_all_params(layer, **tags)]


def set_all_param_values(layer, values, **tags):
    """Set the network's parameters from a list of arrays in :func:`get_all_params` order.

    Raises
    ------
    ValueError
        If the number of arrays or any array's shape does not match the parameters.
    """
    params = get_all_params(layer, **tags)
    if len(params) != len(values):
        raise ValueError(f"mismatch: got {len(values)} values to set {len(params)} parameters")
    for index, (param, value) in enumerate(zip(params, values)):
        value = np.asarray(value)
        expected = param.get_value(borrow=True).shape
        if value.shape != expected:
            raise ValueError(f"mismatch: parameter {index} ({param.name}) has shape {expected}, "
                             f"the value given has shape {value.shape}")
        param.set_value(value.astype(param.dtype))
