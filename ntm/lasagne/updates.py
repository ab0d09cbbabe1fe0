"""Parameter update rules for gradient-based training, as in ``lasagne.updates``.

Every rule takes a loss expression (or a list of gradient expressions) and a list of shared
parameters, and returns an :class:`~collections.OrderedDict` that maps each shared variable
to its update expression, ready for ``pytensor.function(..., updates=updates)``.

Rules with internal state (velocities, running averages, the Adam time step) create that state
as new shared variables, which are keys of the returned dictionary as well. Each state
variable is named after its parameter (for example ``"W.adam_m"`` for the first moment of a
parameter named ``"W"``), so a training loop can checkpoint the optimizer with::

    state = [var for var in updates if var not in params]

The module also offers :func:`norm_constraint` and :func:`total_norm_constraint` to rescale
weights or gradients whose norm exceeds a maximum.
"""
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable

from .utils import floatX

__all__ = [
    "get_or_compute_grads",
    "sgd",
    "apply_momentum",
    "momentum",
    "apply_nesterov_momentum",
    "nesterov_momentum",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "adamax",
    "amsgrad",
    "norm_constraint",
    "total_norm_constraint",
]


def get_or_compute_grads(loss_or_grads, params):
    """Return the gradients of a loss with respect to ``params``, or check given gradients.

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, whose gradients are computed with :func:`pytensor.grad`, or a list of
        gradient expressions already computed, one per parameter.
    params : list of SharedVariable
        The parameters.

    Returns
    -------
    list of symbolic expressions
        One gradient per parameter, in the order of ``params``.

    Raises
    ------
    ValueError
        If ``params`` holds anything but shared variables, or if the number of given gradients
        differs from the number of parameters.
    """
    params = list(params)
    not_shared = [p for p in params if not isinstance(p, SharedVariable)]
    if not_shared:
        raise ValueError(
            "params must contain shared variables only, got "
            f"{', '.join(repr(p) for p in not_shared)}; for parameters given as expressions, "
            "pass the shared variables they are built from")
    if isinstance(loss_or_grads, (list, tuple)):
        if len(loss_or_grads) != len(params):
            raise ValueError(f"loss_or_grads: got {len(loss_or_grads)} gradient expressions "
                             f"for {len(params)} parameters")
        return loss_or_grads if isinstance(loss_or_grads, list) else list(loss_or_grads)
    return pytensor.grad(loss_or_grads, params)


def _state_like(param, suffix):
    """A zero-filled shared variable with the dtype and static shape of ``param``.

    Named ``"<param name>.<suffix>"`` (or just ``suffix`` for an unnamed parameter) so that
    optimizer state can be found and checkpointed.
    """
    value = param.get_value(borrow=True)
    name = f"{param.name}.{suffix}" if param.name else suffix
    return pytensor.shared(np.zeros(value.shape, dtype=value.dtype), name=name,
                           shape=param.type.shape)


def _params_with_updates(updates, params):
    """``params`` (default: every key of ``updates``), checked to have an update each, and a
    copy of ``updates`` to extend."""
    if params is None:
        params = list(updates.keys())
    missing = [p for p in params if p not in updates]
    if missing:
        raise ValueError(f"params: no update given for {', '.join(repr(p) for p in missing)}")
    return params, OrderedDict(updates)


def sgd(loss_or_grads, params, learning_rate):
    """Stochastic gradient descent.

    .. math:: \\theta \\leftarrow \\theta - \\eta \\, g

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.

    Returns
    -------
    OrderedDict
        Maps each parameter to its update expression.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        updates[param] = param - learning_rate * grad
    return updates


def apply_momentum(updates, params=None, momentum=0.9):
    """Add classical momentum to existing updates.

    With :math:`u(\\theta)` the update expression given for :math:`\\theta` (e.g. from
    :func:`sgd`) and a velocity :math:`v` that starts at zero:

    .. math::
        x &= \\mu v + u(\\theta) \\\\
        v &\\leftarrow x - \\theta \\\\
        \\theta &\\leftarrow x

    Parameters
    ----------
    updates : OrderedDict
        Maps shared variables to their update expressions.
    params : list of SharedVariable, optional
        The variables to add momentum to; default all keys of ``updates``.
    momentum : float or symbolic scalar
        The momentum coefficient :math:`\\mu`.

    Returns
    -------
    OrderedDict
        A copy of ``updates`` with momentum applied, holding the velocities as well.
    """
    params, updates = _params_with_updates(updates, params)
    for param in params:
        velocity = _state_like(param, "velocity")
        x = momentum * velocity + updates[param]
        updates[velocity] = x - param
        updates[param] = x
    return updates


def momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """Stochastic gradient descent with classical momentum.

    .. math::
        v &\\leftarrow \\mu v - \\eta \\, g \\\\
        \\theta &\\leftarrow \\theta + v

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.
    momentum : float or symbolic scalar
        The momentum coefficient :math:`\\mu`.

    Returns
    -------
    OrderedDict
        Maps the parameters and their velocities to their update expressions.
    """
    updates = sgd(loss_or_grads, params, learning_rate)
    return apply_momentum(updates, params, momentum=momentum)


def apply_nesterov_momentum(updates, params=None, momentum=0.9):
    """Add Nesterov momentum to existing updates.

    With :math:`u(\\theta)` the update expression given for :math:`\\theta` and a velocity
    :math:`v` that starts at zero:

    .. math::
        x &= \\mu v + u(\\theta) - \\theta \\\\
        v &\\leftarrow x \\\\
        \\theta &\\leftarrow \\mu x + u(\\theta)

    This is the reformulation of Nesterov's accelerated gradient that evaluates the gradient
    at the current parameters rather than at the look-ahead point.

    Parameters
    ----------
    updates : OrderedDict
        Maps shared variables to their update expressions.
    params : list of SharedVariable, optional
        The variables to add momentum to; default all keys of ``updates``.
    momentum : float or symbolic scalar
        The momentum coefficient :math:`\\mu`.

    Returns
    -------
    OrderedDict
        A copy of ``updates`` with momentum applied, holding the velocities as well.
    """
    params, updates = _params_with_updates(updates, params)
    for param in params:
        velocity = _state_like(param, "velocity")
        x = momentum * velocity + updates[param] - param
        updates[velocity] = x
        updates[param] = momentum * x + updates[param]
    return updates


def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """Stochastic gradient descent with Nesterov momentum.

    .. math::
        v &\\leftarrow \\mu v - \\eta \\, g \\\\
        \\theta &\\leftarrow \\theta + \\mu v - \\eta \\, g

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.
    momentum : float or symbolic scalar
        The momentum coefficient :math:`\\mu`.

    Returns
    -------
    OrderedDict
        Maps the parameters and their velocities to their update expressions.
    """
    updates = sgd(loss_or_grads, params, learning_rate)
    return apply_nesterov_momentum(updates, params, momentum=momentum)


def adagrad(loss_or_grads, params, learning_rate=1.0, epsilon=1e-6):
    """Adagrad (Duchi, Hazan & Singer, 2011).

    With an accumulator :math:`r` that starts at zero:

    .. math::
        r &\\leftarrow r + g^2 \\\\
        \\theta &\\leftarrow \\theta - \\eta \\, \\frac{g}{\\sqrt{r + \\epsilon}}

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.
    epsilon : float or symbolic scalar
        Small constant :math:`\\epsilon` for numerical stability.

    Returns
    -------
    OrderedDict
        Maps the parameters and their accumulators (named ``"<param>.adagrad_accu"``) to
        their update expressions.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _state_like(param, "adagrad_accu")
        accu_new = accu + grad ** 2
        updates[accu] = accu_new
        updates[param] = param - learning_rate * grad / pt.sqrt(accu_new + epsilon)
    return updates


def rmsprop(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-6):
    """RMSProp (Tieleman & Hinton, 2012).

    With a running average :math:`r` of squared gradients that starts at zero:

    .. math::
        r &\\leftarrow \\rho r + (1 - \\rho) g^2 \\\\
        \\theta &\\leftarrow \\theta - \\eta \\, \\frac{g}{\\sqrt{r + \\epsilon}}

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.
    rho : float or symbolic scalar
        Decay rate :math:`\\rho` of the running average.
    epsilon : float or symbolic scalar
        Small constant :math:`\\epsilon` for numerical stability.

    Returns
    -------
    OrderedDict
        Maps the parameters and their running averages (named ``"<param>.rmsprop_accu"``)
        to their update expressions.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _state_like(param, "rmsprop_accu")
        accu_new = rho * accu + (1 - rho) * grad ** 2
        updates[accu] = accu_new
        updates[param] = param - learning_rate * grad / pt.sqrt(accu_new + epsilon)
    return updates


def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6):
    """Adadelta (Zeiler, 2012).

    With running averages :math:`r` of squared gradients and :math:`s` of squared steps,
    both starting at zero:

    .. math::
        r &\\leftarrow \\rho r + (1 - \\rho) g^2 \\\\
        \\Delta &= g \\, \\frac{\\sqrt{s + \\epsilon}}{\\sqrt{r + \\epsilon}} \\\\
        \\theta &\\leftarrow \\theta - \\eta \\, \\Delta \\\\
        s &\\leftarrow \\rho s + (1 - \\rho) \\Delta^2

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta` (1.0 in the paper).
    rho : float or symbolic scalar
        Decay rate :math:`\\rho` of the running averages.
    epsilon : float or symbolic scalar
        Small constant :math:`\\epsilon` for numerical stability.

    Returns
    -------
    OrderedDict
        Maps the parameters and their running averages (named ``"<param>.adadelta_accu"``
        and ``"<param>.adadelta_delta_accu"``) to their update expressions.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _state_like(param, "adadelta_accu")
        delta_accu = _state_like(param, "adadelta_delta_accu")
        accu_new = rho * accu + (1 - rho) * grad ** 2
        updates[accu] = accu_new
        step = grad * pt.sqrt(delta_accu + epsilon) / pt.sqrt(accu_new + epsilon)
        updates[param] = param - learning_rate * step
        updates[delta_accu] = rho * delta_accu + (1 - rho) * step ** 2
    return updates


def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adam (Kingma & Ba, 2014).

    With moments :math:`m` and :math:`v` starting at zero and a step counter :math:`t` shared
    by all parameters, starting at zero:

    .. math::
        t &\\leftarrow t + 1 \\\\
        a_t &= \\eta \\, \\frac{\\sqrt{1 - \\beta_2^t}}{1 - \\beta_1^t} \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\theta &\\leftarrow \\theta - a_t \\, \\frac{m}{\\sqrt{v} + \\epsilon}

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.
    beta1 : float or symbolic scalar
        Decay rate :math:`\\beta_1` of the first moment.
    beta2 : float or symbolic scalar
        Decay rate :math:`\\beta_2` of the second moment.
    epsilon : float or symbolic scalar
        Small constant :math:`\\epsilon` for numerical stability.

    Returns
    -------
    OrderedDict
        Maps the parameters, their moments (named ``"<param>.adam_m"`` and
        ``"<param>.adam_v"``) and the step counter (named ``"adam_t"``) to their update
        expressions.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    t_prev = pytensor.shared(floatX(0.0), name="adam_t")
    t = t_prev + 1
    one = pt.constant(1)
    a_t = learning_rate * pt.sqrt(one - beta2 ** t) / (one - beta1 ** t)
    for param, grad in zip(params, grads):
        m_prev = _state_like(param, "adam_m")
        v_prev = _state_like(param, "adam_v")
        m_t = beta1 * m_prev + (one - beta1) * grad
        v_t = beta2 * v_prev + (one - beta2) * grad ** 2
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[param] = param - a_t * m_t / (pt.sqrt(v_t) + epsilon)
    updates[t_prev] = t
    return updates


def adamax(loss_or_grads, params, learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adamax, the infinity-norm variant of Adam (Kingma & Ba, 2014, section 7).

    With :math:`m` and :math:`u` starting at zero and a step counter :math:`t` shared by all
    parameters, starting at zero:

    .. math::
        t &\\leftarrow t + 1 \\\\
        a_t &= \\frac{\\eta}{1 - \\beta_1^t} \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g \\\\
        u &\\leftarrow \\max(\\beta_2 u, |g|) \\\\
        \\theta &\\leftarrow \\theta - a_t \\, \\frac{m}{u + \\epsilon}

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
        A scalar loss, or one gradient expression per parameter.
    params : list of SharedVariable
        The parameters to update.
    learning_rate : float or symbolic scalar
        The step size :math:`\\eta`.
    beta1 : float or symbolic scalar
        Decay rate :math:`\\beta_1` of the first moment.
    beta2 : float or symbolic scalar
        Decay rate :math:`\\beta_2` of the weighted infinity norm.
    epsilon : float or symbolic scalar
        Small constant :math:`\\epsilon` for numerical stability.

    Returns
    -------
    OrderedDict
        Maps the parameters, their state (named ``"<param>.adamax_m"`` and
        ``"<param>.adamax_u"``) and the step counter (named ``"adamax_t"``) to their update
        expressions.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    t_prev = pytensor.shared(floatX(0.0), name="adamax_t")
    t = t_prev + 1
    one = pt.constant(1)
    a_t = learning_rate / (one - beta1 ** t)
    for param, grad in zip(params, grads):
        m_prev = _state_like(param, "adamax_m")
        u_prev = _state_like(param, "adamax_u")
        m_t = beta1 * m_prev + (one - beta1) * grad
        u_t = pt.maximum(beta2 * u_prev, abs(grad))
        updates[m_prev] = m_t
        updates[u_prev] = u_t
        updates[param] = param - a_t * m_t / (u_t + epsilon)
    updates[t_prev] = t
    return updates


def amsgrad(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """AMSGrad (Reddi, Kale & Kumar, 2018): Adam with the running maximum of the second
    moment, so that the effective step size never grows.

    .. math::
        t &\\leftarrow t + 1 \\\\
        a_t &= \\eta \\, \\frac{\\sqrt{1 - \\beta_2^t}}{1 - \\beta_1^t} \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\hat v &\\leftarrow \\max(\\hat v, v) \\\\
        \\theta &\\leftarrow \\theta - a_t \\, \\frac{m}{\\sqrt{\\hat v} + \\epsilon}

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of symbolic expressions
    params : list of SharedVariable
    learning_rate, beta1, beta2, epsilon : float or symbolic scalar
        As in :func:`adam`.

    Returns
    -------
    OrderedDict
        Maps the parameters, their moments (``"<param>.amsgrad_m"``, ``"<param>.amsgrad_v"``,
        ``"<param>.amsgrad_vhat"``) and the step counter (``"amsgrad_t"``) to their updates.
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    t_prev = pytensor.shared(floatX(0.0), name="amsgrad_t")
    t = t_prev + 1
    one = pt.constant(1)
    a_t = learning_rate * pt.sqrt(one - beta2 ** t) / (one - beta1 ** t)
    for param, grad in zip(params, grads):
        m_prev = _state_like(param, "amsgrad_m")
        v_prev = _state_like(param, "amsgrad_v")
        v_hat_prev = _state_like(param, "amsgrad_vhat")
        m_t = beta1 * m_prev + (one - beta1) * grad
        v_t = beta2 * v_prev + (one - beta2) * grad ** 2
        v_hat_t = pt.maximum(v_hat_prev, v_t)
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[v_hat_prev] = v_hat_t
        updates[param] = param - a_t * m_t / (pt.sqrt(v_hat_t) + epsilon)
    updates[t_prev] = t
    return updates


def norm_constraint(tensor_var, max_norm, norm_axes=None, epsilon=1e-7):
    """Rescale slices of a tensor so that their Euclidean norms do not exceed ``max_norm``.

    With :math:`n` the norm of each slice over ``norm_axes``:

    .. math:: W \\leftarrow W \\, \\frac{\\min(n, c)}{n + \\epsilon}

    Typically applied to the update expression of a weight, e.g.
    ``updates[W] = norm_constraint(updates[W], 3.0)``.

    Parameters
    ----------
    tensor_var : symbolic tensor
        The tensor to constrain.
    max_norm : float
        The maximum norm :math:`c`.
    norm_axes : sequence of int, optional
        The axes to compute the norms over. By default the first axis for matrices (the norm
        of each unit's incoming weights in a dense layer) and all axes but the first for 3-,
        4- and 5-dimensional tensors (each filter of a convolution); other dimensionalities
        need ``norm_axes``.
    epsilon : float
        Small constant :math:`\\epsilon` that avoids division by zero.

    Returns
    -------
    symbolic tensor
        ``tensor_var`` with each slice rescaled to a norm of at most ``max_norm``.

    Raises
    ------
    ValueError
        If ``norm_axes`` is not given and ``tensor_var`` is not 2- to 5-dimensional.
    """
    ndim = tensor_var.ndim
    if norm_axes is not None:
        sum_over = tuple(norm_axes)
    elif ndim == 2:
        sum_over = (0,)
    elif ndim in (3, 4, 5):
        sum_over = tuple(range(1, ndim))
    else:
        raise ValueError(f"Unsupported tensor dimensionality {ndim} of tensor_var in "
                         "norm_constraint; specify norm_axes")
    dtype = np.dtype(pytensor.config.floatX).type
    norms = pt.sqrt(pt.sum(pt.sqr(tensor_var), axis=sum_over, keepdims=True))
    target_norms = pt.clip(norms, 0, dtype(max_norm))
    return tensor_var * (target_norms / (dtype(epsilon) + norms))


def total_norm_constraint(tensor_vars, max_norm, epsilon=1e-7, return_norm=False):
    """Rescale a list of tensors together so that their joint Euclidean norm is at most
    ``max_norm``, as in gradient clipping (Pascanu, Mikolov & Bengio, 2013).

    With :math:`n = \\sqrt{\\sum_i \\|T_i\\|^2}` the norm of all tensors together:

    .. math:: T_i \\leftarrow T_i \\, \\frac{\\min(n, c)}{n + \\epsilon}

    Typically applied to gradients before passing them to an update rule::

        grads = pytensor.grad(loss, params)
        grads = total_norm_constraint(grads, 5.0)
        updates = adam(grads, params)

    Parameters
    ----------
    tensor_vars : list of symbolic tensors
        The tensors to rescale.
    max_norm : float
        The maximum joint norm :math:`c`.
    epsilon : float
        Small constant :math:`\\epsilon` that avoids division by zero.
    return_norm : bool
        If ``True``, also return the joint norm :math:`n` before rescaling.

    Returns
    -------
    list of symbolic tensors, or (list of symbolic tensors, symbolic scalar)
        The rescaled tensors, and the joint norm if ``return_norm`` is ``True``.

    Raises
    ------
    ValueError
        If ``tensor_vars`` is empty.
    """
    tensor_vars = list(tensor_vars)
    if not tensor_vars:
        raise ValueError("total_norm_constraint: tensor_vars must hold at least one tensor")
    # One sum over all elements: a sum of per-tensor sums is rewritten into a single
    # elementwise add of as many inputs, which the Python backend cannot run beyond 32.
    norm = pt.sqrt(pt.sum(pt.sqr(pt.concatenate([pt.flatten(t) for t in tensor_vars]))))
    dtype = np.dtype(pytensor.config.floatX).type
    target_norm = pt.clip(norm, 0, dtype(max_norm))
    multiplier = target_norm / (dtype(epsilon) + norm)
    scaled = [t * multiplier for t in tensor_vars]
    if return_norm:
        return scaled, norm
    return scaled
