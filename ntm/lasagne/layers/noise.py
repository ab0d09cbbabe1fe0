r"""Layers that add noise during training: dropout and Gaussian noise.

Each layer draws from its own random stream, seeded from :func:`ntm.lasagne.random.get_rng`
when it is built, so that ``set_rng`` before building a network makes its noise
reproducible. The stream advances on every call of a compiled function that uses it (a
default update of the stream's state), so training functions need no extra ``updates``.
"""
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..random import get_rng
from .base import Layer

__all__ = ["DropoutLayer", "dropout", "dropout_channels", "spatial_dropout",
           "dropout_locations", "GaussianNoiseLayer"]


def _random_stream():
    """A shared random generator that advances each time a compiled function uses it."""
    seed = int(get_rng().randint(1, 2147462579))
    return pytensor.shared(np.random.default_rng(seed))


def _advance(rng, next_rng):
    # PyTensor marks ``default_update`` as deprecated but still honours it; it is how a layer's
    # noise changes between calls without the user passing updates (as in Lasagne).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rng.default_update = next_rng


class DropoutLayer(Layer):
    r"""Sets each input to zero with probability ``p`` during training.

    .. math:: y = x \odot m / (1 - p), \quad m_i \sim \mathrm{Bernoulli}(1 - p)

    (without the division when ``rescale=False``), so that the expected output equals the
    input; with ``deterministic=True`` the layer passes its input through.

    Parameters
    ----------
    incoming : Layer or tuple
    p : float or scalar expression
        The probability of dropping an input.
    rescale : bool
        Divide the kept inputs by the retain probability :math:`1 - p`.
    shared_axes : tuple of int
        Axes along which one mask value is shared (size 1 in the mask), e.g. ``(2, 3)`` drops
        whole feature maps of a convolutional layer.
    """

    def __init__(self, incoming, p=0.5, rescale=True, shared_axes=(), **kwargs):
        super().__init__(incoming, **kwargs)
        self.p = p
        self.rescale = rescale
        self.shared_axes = tuple(shared_axes)
        self._rng = _random_stream()

    def get_output_for(self, input, deterministic=False, **kwargs):
        """The input with dropout applied (unchanged if ``deterministic`` or ``p == 0``)."""
        if deterministic or (isinstance(self.p, (int, float)) and self.p == 0):
            return input
        input = pt.as_tensor_variable(input)
        retain = 1 - pt.as_tensor_variable(self.p)
        if self.rescale:
            input = input / pt.cast(retain, input.dtype)
        shared = [a % input.ndim for a in self.shared_axes]
        mask_shape = tuple(1 if a in shared else input.shape[a] for a in range(input.ndim))
        next_rng, mask = pt.random.binomial(1, retain, size=mask_shape, rng=self._rng,
                                            return_next_rng=True)
        _advance(self._rng, next_rng)
        mask = pt.cast(mask, input.dtype)
        if shared:
            mask = pt.specify_broadcastable(mask, *shared)
        return input * mask


dropout = DropoutLayer  # shortcut, as in Lasagne


def dropout_channels(incoming, *args, **kwargs):
    """A :class:`DropoutLayer` that drops whole channels: the mask is shared over every axis
    after the second (the spatial axes of ``(batch, channels, ...)``)."""
    ndim = len(getattr(incoming, "output_shape", incoming))
    kwargs["shared_axes"] = tuple(range(2, ndim))
    return DropoutLayer(incoming, *args, **kwargs)


spatial_dropout = dropout_channels


def dropout_locations(incoming, *args, **kwargs):
    """A :class:`DropoutLayer` that drops whole locations: the mask is shared over the channel
    axis (axis 1)."""
    kwargs["shared_axes"] = (1,)
    return DropoutLayer(incoming, *args, **kwargs)


class GaussianNoiseLayer(Layer):
    r"""Adds zero-mean Gaussian noise during training, :math:`y = x + \epsilon`,
    :math:`\epsilon \sim \mathcal{N}(0, \sigma^2)`; the identity with ``deterministic=True``.

    Parameters
    ----------
    incoming : Layer or tuple
    sigma : float or scalar expression
        The standard deviation :math:`\sigma` of the noise.
    """

    def __init__(self, incoming, sigma=0.1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.sigma = sigma
        self._rng = _random_stream()

    def get_output_for(self, input, deterministic=False, **kwargs):
        """The input plus noise (unchanged if ``deterministic`` or ``sigma == 0``)."""
        if deterministic or (isinstance(self.sigma, (int, float)) and self.sigma == 0):
            return input
        input = pt.as_tensor_variable(input)
        next_rng, noise = pt.random.normal(0.0, self.sigma, size=input.shape, rng=self._rng,
                                           return_next_rng=True)
        _advance(self._rng, next_rng)
        return input + pt.cast(noise, input.dtype)
