r"""Optimisers used to train NTMs, beside those of :mod:`ntm.lasagne.updates`."""
from collections import OrderedDict

import pytensor.tensor as pt

from .lasagne.updates import _state_like, get_or_compute_grads

__all__ = ["graves_rmsprop"]


def graves_rmsprop(loss_or_grads, params, learning_rate=1e-4, chi=0.95, alpha=0.9,
                   epsilon=1e-4):
    r"""The RMSProp variant of Graves (2013), "Generating Sequences With Recurrent Neural
    Networks", eq. 38-41, used to train the NTM in the paper.

    .. math::
        n_t &= \aleph\, n_{t-1} + (1 - \aleph)\, g_t^2 \\
        \bar g_t &= \aleph\, \bar g_{t-1} + (1 - \aleph)\, g_t \\
        \Delta_t &= \beth\, \Delta_{t-1} - \gimel\, \frac{g_t}{\sqrt{n_t - \bar g_t^2 + \epsilon}} \\
        w_t &= w_{t-1} + \Delta_t

    :math:`n_t - \bar g_t^2` estimates the gradient's variance (so the denominator is never
    below :math:`\sqrt\epsilon`).

    Parameters
    ----------
    loss_or_grads : scalar expression or list of expressions
        The loss, or its gradients with respect to ``params``.
    params : list of shared variables
    learning_rate : float
        :math:`\gimel` (1e-4 in the paper).
    chi : float
        :math:`\aleph`, the decay of the running averages (0.95).
    alpha : float
        :math:`\beth`, the momentum (0.9).
    epsilon : float
        :math:`\epsilon` (1e-4).

    Returns
    -------
    OrderedDict
        Updates of the parameters and of the optimiser's state variables ``n``, ``g`` and
        ``delta`` (named after each parameter).
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        n, g, delta = (_state_like(param, suffix)
                       for suffix in ("graves_n", "graves_g", "graves_delta"))
        n_new = chi * n + (1 - chi) * grad ** 2
        g_new = chi * g + (1 - chi) * grad
        delta_new = alpha * delta - learning_rate * grad / pt.sqrt(n_new - g_new ** 2 + epsilon)
        updates[n], updates[g], updates[delta] = n_new, g_new, delta_new
        updates[param] = param + delta_new
    return updates
