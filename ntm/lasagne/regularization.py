"""Weight penalties to add to a loss, as in ``lasagne.regularization``.

A penalty is a function of one tensor that returns a scalar (:func:`l1`, :func:`l2`, or any
function of that form). The helpers apply it to a tensor, a list of tensors, the parameters of
some layers, or all parameters of a network::

    loss = loss + 1e-4 * regularize_network_params(l_out, l2)

By default only parameters tagged ``regularizable`` are penalised: weights, not biases.
"""
from pytensor.graph.basic import Variable
import pytensor.tensor as pt

__all__ = [
    "l1",
    "l2",
    "apply_penalty",
    "regularize_layer_params",
    "regularize_layer_params_weighted",
    "regularize_network_params",
]


def l1(x):
    """The L1 penalty: the sum of absolute values.

    .. math:: \\Omega(x) = \\sum_i |x_i|

    Parameters
    ----------
    x : symbolic tensor

    Returns
    -------
    symbolic scalar
    """
    return pt.sum(abs(pt.as_tensor_variable(x)))


def l2(x):
    """The L2 penalty: the sum of squares (without a factor 1/2 or a square root).

    .. math:: \\Omega(x) = \\sum_i x_i^2

    Parameters
    ----------
    x : symbolic tensor

    Returns
    -------
    symbolic scalar
    """
    return pt.sum(pt.sqr(pt.as_tensor_variable(x)))


def apply_penalty(tensor_or_tensors, penalty, **kwargs):
    """Apply a penalty to a tensor or sum it over a list of tensors.

    .. math:: \\sum_k \\Omega(T_k)

    Parameters
    ----------
    tensor_or_tensors : symbolic tensor or iterable of symbolic tensors
        What to penalise.
    penalty : callable
        Maps a tensor (and ``kwargs``) to a scalar, e.g. :func:`l1` or :func:`l2`.
    **kwargs
        Passed on to ``penalty``.

    Returns
    -------
    symbolic scalar
        The total penalty (0 for an empty list).

    Raises
    ------
    TypeError
        If ``penalty`` is not callable.
    """
    if not callable(penalty):
        raise TypeError(f"apply_penalty: penalty must be callable, got {penalty!r}")
    # A tensor is itself iterable over its first axis, so test for it before iterating.
    if isinstance(tensor_or_tensors, Variable):
        return penalty(tensor_or_tensors, **kwargs)
    return sum(penalty(x, **kwargs) for x in tensor_or_tensors)


def _check_tags(tags):
    if not isinstance(tags, dict):
        raise TypeError(f"tags must be a dict mapping tag names to booleans, got {tags!r}")
    return tags


def regularize_layer_params(layer, penalty, tags={"regularizable": True}, **kwargs):
    """Penalty of the parameters of one layer or of a list of layers (not their inputs).

    Parameters
    ----------
    layer : Layer or iterable of Layer
        The layers whose own parameters are penalised.
    penalty : callable
        Maps a tensor (and ``kwargs``) to a scalar, e.g. :func:`l2`.
    tags : dict
        Tag filter for the parameters, passed to ``Layer.get_params``; by default the
        parameters tagged ``regularizable``.
    **kwargs
        Passed on to ``penalty``.

    Returns
    -------
    symbolic scalar
    """
    from .layers import Layer

    tags = _check_tags(tags)
    layers = [layer] if isinstance(layer, Layer) else list(layer)
    params = []
    for each in layers:
        if not isinstance(each, Layer):
            raise TypeError(f"regularize_layer_params: layer must be a Layer or a list of "
                            f"Layers, got {each!r}")
        params.extend(each.get_params(**tags))
    return apply_penalty(params, penalty, **kwargs)


def regularize_layer_params_weighted(layers, penalty, tags={"regularizable": True},
                                     **kwargs):
    """Weighted sum of per-layer penalties.

    .. math:: \\sum_{l} c_l \\sum_{W \\in l} \\Omega(W)

    Parameters
    ----------
    layers : dict
        Maps each layer to its coefficient :math:`c_l`.
    penalty : callable
        Maps a tensor (and ``kwargs``) to a scalar, e.g. :func:`l2`.
    tags : dict
        Tag filter for the parameters, passed to ``Layer.get_params``; by default the
        parameters tagged ``regularizable``.
    **kwargs
        Passed on to ``penalty``.

    Returns
    -------
    symbolic scalar

    Raises
    ------
    TypeError
        If ``layers`` is not a dict.
    """
    if not isinstance(layers, dict):
        raise TypeError("regularize_layer_params_weighted: layers must be a dict mapping "
                        f"layers to coefficients, got {type(layers).__name__}")
    tags = _check_tags(tags)
    return sum(coeff * apply_penalty(layer.get_params(**tags), penalty, **kwargs)
               for layer, coeff in layers.items())


def regularize_network_params(layer, penalty, tags={"regularizable": True}, **kwargs):
    """Penalty of all parameters of the network that ends in ``layer``.

    Parameters
    ----------
    layer : Layer or list of Layer
        The output layer(s); every layer below them is included.
    penalty : callable
        Maps a tensor (and ``kwargs``) to a scalar, e.g. :func:`l2`.
    tags : dict
        Tag filter for the parameters, passed to ``get_all_params``; by default the
        parameters tagged ``regularizable``.
    **kwargs
        Passed on to ``penalty``.

    Returns
    -------
    symbolic scalar
    """
    from .layers import get_all_params

    tags = _check_tags(tags)
    return apply_penalty(get_all_params(layer, **tags), penalty, **kwargs)
