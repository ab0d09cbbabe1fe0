r"""Normalization layers: local response normalization, batch normalization, and
standardization over chosen axes (instance and layer normalization)."""
import warnings

import pytensor.tensor as pt

from .. import init, nonlinearities
from .base import Layer

__all__ = ["LocalResponseNormalization2DLayer", "BatchNormLayer", "batch_norm",
           "StandardizationLayer", "instance_norm", "layer_norm"]


class LocalResponseNormalization2DLayer(Layer):
    r"""Local response normalization across channels (Krizhevsky et al., 2012):

    .. math:: y_{b, c} = x_{b, c} \Big/ \Big(k + \alpha \sum_{j = c - \lfloor n/2 \rfloor}
              ^{c + \lfloor n/2 \rfloor} x_{b, j}^2\Big)^\beta

    (the sum over the channels that exist; :math:`\alpha` is not divided by :math:`n`).

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, channels, rows, columns)``.
    alpha, k, beta : float
    n : int
        The (odd) number of channels in the window.

    Raises
    ------
    NotImplementedError
        If ``n`` is even.
    """

    def __init__(self, incoming, alpha=1e-4, k=2, beta=0.75, n=5, **kwargs):
        super().__init__(incoming, **kwargs)
        if n % 2 == 0:
            raise NotImplementedError(f"LocalResponseNormalization2DLayer only works with odd n, "
                                      f"got n={n}")
        self.alpha, self.k, self.beta, self.n = alpha, k, beta, n

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        half = self.n // 2
        squares = pt.sqr(input)
        channels = input.shape[1]
        padded = pt.zeros((input.shape[0], channels + 2 * half, input.shape[2], input.shape[3]),
                          dtype=input.dtype)
        padded = pt.set_subtensor(padded[:, half:half + channels], squares)
        scale = self.k
        for offset in range(self.n):
            scale = scale + self.alpha * padded[:, offset:offset + channels]
        return input / scale ** self.beta


def _param_pattern(ndim, axes):
    """The dimshuffle pattern that broadcasts a parameter over ``axes``."""
    kept = iter(range(ndim - len(axes)))
    return tuple("x" if axis in axes else next(kept) for axis in range(ndim))


class BatchNormLayer(Layer):
    r"""Batch normalization (Ioffe & Szegedy, 2015):

    .. math:: y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \gamma + \beta

    with the mean :math:`\mu` and variance :math:`\sigma^2` of the mini-batch over ``axes``
    during training, and running averages of them otherwise
    (``deterministic=True``). Each training pass moves the averages towards the batch's
    statistics, :math:`m \leftarrow (1 - \alpha) m + \alpha \mu` (and likewise the inverse
    standard deviation), through default updates of the ``mean`` and ``inv_std`` parameters.

    Parameters
    ----------
    incoming : Layer or tuple
    axes : 'auto', int or tuple of int
        The axes to normalize over; ``'auto'``: all but the second (the batch and the spatial
        axes of a convolutional layer's output, the batch of a dense layer's).
    epsilon : float
        :math:`\epsilon`, added to the variance.
    alpha : float
        The weight :math:`\alpha` of a new batch in the running averages.
    beta, gamma : initializer, array, shared variable or None
        The learned shift and scale, of the shape of the axes not normalized over; ``None``
        for none.
    mean, inv_std : initializer, array or shared variable
        The running averages (not trainable).

    Notes
    -----
    ``get_output(..., batch_norm_use_averages=..., batch_norm_update_averages=...)`` sets
    which statistics are used and whether the averages are updated; they default to
    ``deterministic`` and ``not deterministic``.

    Raises
    ------
    ValueError
        If an axis not normalized over has an unknown size.
    """

    def __init__(self, incoming, axes="auto", epsilon=1e-4, alpha=0.1,
                 beta=init.Constant(0), gamma=init.Constant(1), mean=init.Constant(0),
                 inv_std=init.Constant(1), **kwargs):
        super().__init__(incoming, **kwargs)
        if axes == "auto":
            axes = (0,) + tuple(range(2, len(self.input_shape)))
        elif isinstance(axes, int):
            axes = (axes,)
        self.axes = tuple(axes)
        self.epsilon = epsilon
        self.alpha = alpha
        shape = [size for axis, size in enumerate(self.input_shape) if axis not in self.axes]
        if any(size is None for size in shape):
            raise ValueError("BatchNormLayer needs specified input sizes for all axes not "
                             f"normalized over, got {self.input_shape} with axes={self.axes}")
        shape = tuple(shape)
        self.beta = None if beta is None else self.add_param(
            beta, shape, "beta", trainable=True, regularizable=False)
        self.gamma = None if gamma is None else self.add_param(
            gamma, shape, "gamma", trainable=True, regularizable=True)
        self.mean = self.add_param(mean, shape, "mean", trainable=False, regularizable=False)
        self.inv_std = self.add_param(inv_std, shape, "inv_std", trainable=False,
                                      regularizable=False)

    def get_output_for(self, input, deterministic=False, batch_norm_use_averages=None,
                       batch_norm_update_averages=None, **kwargs):
        input = pt.as_tensor_variable(input)
        input_mean = input.mean(self.axes)
        input_inv_std = pt.reciprocal(pt.sqrt(input.var(self.axes) + self.epsilon))
        use_averages = deterministic if batch_norm_use_averages is None \
            else batch_norm_use_averages
        update_averages = (not deterministic) if batch_norm_update_averages is None \
            else batch_norm_update_averages
        mean, inv_std = (self.mean, self.inv_std) if use_averages else (input_mean,
                                                                         input_inv_std)
        if update_averages:
            # copies of the shared variables that carry the update, so that the parameters
            # themselves keep none and a function that does not use this output is unaffected
            running_mean = self.mean.clone()
            running_inv_std = self.inv_std.clone()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                running_mean.default_update = _as_type_of(
                    running_mean, (1 - self.alpha) * running_mean + self.alpha * input_mean)
                running_inv_std.default_update = _as_type_of(
                    running_inv_std,
                    (1 - self.alpha) * running_inv_std + self.alpha * input_inv_std)
            # make the output depend on them, so that the updates happen
            mean = mean + 0 * running_mean
            inv_std = inv_std + 0 * running_inv_std
        pattern = _param_pattern(input.ndim, self.axes)
        beta = 0 if self.beta is None else self.beta.dimshuffle(pattern)
        gamma = 1 if self.gamma is None else self.gamma.dimshuffle(pattern)
        return (input - mean.dimshuffle(pattern)) * (gamma * inv_std.dimshuffle(pattern)) + beta


def _as_type_of(shared, value):
    """``value`` with exactly the type of ``shared``, as an update must have.

    A size that ``value`` knows statically (an input of fixed shape) but ``shared`` does not
    is forgotten by slicing up to the shared variable's own size, which selects everything.
    """
    if value.type != shared.type:
        value = value[tuple(
            slice(None, shared.shape[i]) if known is None and value.type.shape[i] is not None
            else slice(None) for i, known in enumerate(shared.type.shape))]
        value = shared.type.filter_variable(value, allow_convert=True)
    return value


def _steal_nonlinearity_and_bias(layer):
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    return nonlinearity


def _add_nonlinearity(layer, nonlinearity, name):
    if nonlinearity is None:
        return layer
    from .dense import NonlinearityLayer
    return NonlinearityLayer(layer, nonlinearity, name=name and name + "_nonlin")


def batch_norm(layer, **kwargs):
    """Batch-normalize ``layer``'s output before its nonlinearity: the layer loses its
    nonlinearity and its bias (which :class:`BatchNormLayer`'s ``beta`` replaces), and a
    :class:`BatchNormLayer` and, if the layer had a nonlinearity, a
    :class:`~ntm.lasagne.layers.NonlinearityLayer` are stacked on it.

    Parameters
    ----------
    layer : Layer
        Modified in place.
    **kwargs
        Passed to :class:`BatchNormLayer` (a ``name`` defaults to the layer's name + ``_bn``).

    Returns
    -------
    The last layer added.
    """
    nonlinearity = _steal_nonlinearity_and_bias(layer)
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and layer.name + "_bn")
    layer = BatchNormLayer(layer, name=name, **kwargs)
    return _add_nonlinearity(layer, nonlinearity, name)


class StandardizationLayer(Layer):
    r"""Normalizes each example to zero mean and unit variance over ``axes``:

    .. math:: y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}

    with :math:`\mu`, :math:`\sigma^2` the mean and variance over ``axes`` (the same in
    training and testing; there are no parameters).

    Parameters
    ----------
    incoming : Layer or tuple
    axes : 'spatial', 'features', int or tuple of int
        ``'spatial'`` (the default): all axes after the second (instance normalization);
        ``'features'``: all axes after the first (layer normalization).
    epsilon : float
    """

    def __init__(self, incoming, axes="spatial", epsilon=1e-4, **kwargs):
        super().__init__(incoming, **kwargs)
        ndim = len(self.input_shape)
        if axes == "spatial":
            axes = tuple(range(2, ndim))
        elif axes == "features":
            axes = tuple(range(1, ndim))
        elif isinstance(axes, int):
            axes = (axes,)
        self.axes = tuple(axes)
        if not self.axes:
            raise ValueError(f"StandardizationLayer needs at least one axis to normalize over; "
                             f"input shape {self.input_shape} with axes={axes!r} has none")
        self.epsilon = epsilon

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        mean = input.mean(self.axes, keepdims=True)
        std = pt.sqrt(input.var(self.axes, keepdims=True) + self.epsilon)
        return (input - mean) / std


def instance_norm(layer, learn_scale=True, learn_bias=True, **kwargs):
    """Instance normalization (Ulyanov et al., 2016) of ``layer``'s output before its
    nonlinearity: the layer loses nonlinearity and bias, and a :class:`StandardizationLayer`
    over the spatial axes, a :class:`~ntm.lasagne.layers.ScaleLayer` (``learn_scale``), a
    :class:`~ntm.lasagne.layers.BiasLayer` (``learn_bias``) and the nonlinearity follow.

    ``**kwargs`` go to :class:`StandardizationLayer` (a ``name`` defaults to the layer's
    name + ``_in``). Returns the last layer added.
    """
    from .special import BiasLayer, ScaleLayer
    nonlinearity = _steal_nonlinearity_and_bias(layer)
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and layer.name + "_in")
    layer = StandardizationLayer(layer, axes="spatial", name=name, **kwargs)
    if learn_scale:
        layer = ScaleLayer(layer, shared_axes="auto")
    if learn_bias:
        layer = BiasLayer(layer, shared_axes="auto")
    return _add_nonlinearity(layer, nonlinearity, name)


def layer_norm(layer, **kwargs):
    """Layer normalization (Ba et al., 2016) of ``layer``'s output before its nonlinearity:
    the layer loses nonlinearity and bias, and a :class:`StandardizationLayer` over all axes
    but the batch, a :class:`~ntm.lasagne.layers.ScaleLayer`, a
    :class:`~ntm.lasagne.layers.BiasLayer` and the nonlinearity follow.

    ``**kwargs`` go to :class:`StandardizationLayer` (a ``name`` defaults to the layer's
    name + ``_ln``). Returns the last layer added.
    """
    from .special import BiasLayer, ScaleLayer
    nonlinearity = _steal_nonlinearity_and_bias(layer)
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and layer.name + "_ln")
    layer = StandardizationLayer(layer, axes="features", name=name, **kwargs)
    layer = ScaleLayer(layer, shared_axes="auto")
    layer = BiasLayer(layer, shared_axes="auto")
    return _add_nonlinearity(layer, nonlinearity, name)
