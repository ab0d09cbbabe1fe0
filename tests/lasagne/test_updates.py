"""Update rules against independent NumPy computations of two steps on a quadratic loss."""
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne import updates as U

# loss = 0.5 * sum(SCALE * (w - TARGET)^2), so the gradient is SCALE * (w - TARGET)
W0 = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.5]])
B0 = np.array([0.7, -0.2, 2.0])
SCALE_W = np.array([[1.0, 2.0, 0.5], [3.0, 1.5, 0.25]])
SCALE_B = np.array([2.0, 0.5, 1.0])
TARGET_W = np.full((2, 3), 0.25)
TARGET_B = np.array([-1.0, 1.0, 0.0])
N_STEPS = 2


def _problem():
    W = pytensor.shared(W0.copy(), name="W")
    b = pytensor.shared(B0.copy(), name="b")
    loss = (0.5 * pt.sum(SCALE_W * (W - TARGET_W) ** 2)
            + 0.5 * pt.sum(SCALE_B * (b - TARGET_B) ** 2))
    return loss, [W, b]


def _grads(values):
    w, b = values
    return [SCALE_W * (w - TARGET_W), SCALE_B * (b - TARGET_B)]


def _run(rule, **kwargs):
    loss, params = _problem()
    updates = rule(loss, params, **kwargs)
    step = pytensor.function([], loss, updates=updates)
    for _ in range(N_STEPS):
        step()
    return updates, params, [p.get_value() for p in params]


def _reference(step_fn, state_fn):
    """Two steps of a NumPy rule: ``step_fn(param, grad, state, t) -> (param, state)``."""
    values = [W0.copy(), B0.copy()]
    states = [state_fn(v) for v in values]
    for t in range(1, N_STEPS + 1):
        grads = _grads(values)
        for i, (v, g) in enumerate(zip(values, grads)):
            values[i], states[i] = step_fn(v, g, states[i], t)
    return values


def _zeros(v):
    return np.zeros_like(v)


def _zeros2(v):
    return (np.zeros_like(v), np.zeros_like(v))


def _np_sgd(lr):
    return lambda p, g, s, t: (p - lr * g, s)


def _np_momentum(lr, mu):
    def step(p, g, v, t):
        v = mu * v - lr * g
        return p + v, v
    return step


def _np_nesterov(lr, mu):
    def step(p, g, v, t):
        v_new = mu * v - lr * g
        return p + mu * v_new - lr * g, v_new
    return step


def _np_adagrad(lr, eps):
    def step(p, g, r, t):
        r = r + g ** 2
        return p - lr * g / np.sqrt(r + eps), r
    return step


def _np_rmsprop(lr, rho, eps):
    def step(p, g, r, t):
        r = rho * r + (1 - rho) * g ** 2
        return p - lr * g / np.sqrt(r + eps), r
    return step


def _np_adadelta(lr, rho, eps):
    def step(p, g, state, t):
        r, s = state
        r = rho * r + (1 - rho) * g ** 2
        d = g * np.sqrt(s + eps) / np.sqrt(r + eps)
        s = rho * s + (1 - rho) * d ** 2
        return p - lr * d, (r, s)
    return step


def _np_adam(lr, b1, b2, eps):
    def step(p, g, state, t):
        m, v = state
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        # textbook form: bias-corrected moments
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        a = np.sqrt(1 - b2 ** t)  # Lasagne puts epsilon outside the sqrt(1 - b2^t) correction
        return p - lr * m_hat / (np.sqrt(v_hat) + eps / a), (m, v)
    return step


def _np_adamax(lr, b1, b2, eps):
    def step(p, g, state, t):
        m, u = state
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g))
        return p - lr / (1 - b1 ** t) * m / (u + eps), (m, u)
    return step


CASES = [
    ("sgd", U.sgd, dict(learning_rate=0.1), _np_sgd(0.1), _zeros),
    ("momentum", U.momentum, dict(learning_rate=0.1, momentum=0.8),
     _np_momentum(0.1, 0.8), _zeros),
    ("nesterov_momentum", U.nesterov_momentum, dict(learning_rate=0.1, momentum=0.8),
     _np_nesterov(0.1, 0.8), _zeros),
    ("adagrad", U.adagrad, dict(learning_rate=0.5, epsilon=1e-6),
     _np_adagrad(0.5, 1e-6), _zeros),
    ("rmsprop", U.rmsprop, dict(learning_rate=0.05, rho=0.9, epsilon=1e-6),
     _np_rmsprop(0.05, 0.9, 1e-6), _zeros),
    ("adadelta", U.adadelta, dict(learning_rate=1.0, rho=0.95, epsilon=1e-6),
     _np_adadelta(1.0, 0.95, 1e-6), _zeros2),
    ("adam", U.adam, dict(learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8),
     _np_adam(0.01, 0.9, 0.999, 1e-8), _zeros2),
    ("adamax", U.adamax, dict(learning_rate=0.02, beta1=0.9, beta2=0.999, epsilon=1e-8),
     _np_adamax(0.02, 0.9, 0.999, 1e-8), _zeros2),
]


@pytest.mark.parametrize("name, rule, kwargs, np_step, np_state", CASES,
                         ids=[c[0] for c in CASES])
def test_rule_matches_numpy_two_steps(name, rule, kwargs, np_step, np_state):
    updates, params, got = _run(rule, **kwargs)
    expected = _reference(np_step, np_state)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    # the parameters moved, so the check above is not trivially satisfied
    assert not np.allclose(got[0], W0)


@pytest.mark.parametrize("name, rule, kwargs", [c[:3] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rule_returns_ordered_dict_with_named_state(name, rule, kwargs):
    loss, params = _problem()
    updates = rule(loss, params, **kwargs)
    assert isinstance(updates, OrderedDict)
    assert all(p in updates for p in params)
    state = [k for k in updates if k not in params]
    for var in state:
        assert var.name, f"{name}: state variable without a name"
        assert var.type.dtype == "float64"
    # per-parameter state is named after its parameter and shaped like it
    per_param = [v for v in state if v.get_value().ndim > 0]
    for var in per_param:
        owner = var.name.split(".")[0]
        assert owner in ("W", "b")
        expected_shape = W0.shape if owner == "W" else B0.shape
        assert var.get_value().shape == expected_shape
        assert var.type.ndim == len(expected_shape)


def test_stateless_and_stateful_rules_state_counts():
    loss, params = _problem()
    assert len(U.sgd(loss, params, 0.1)) == 2
    assert len(U.momentum(loss, params, 0.1)) == 4
    assert len(U.adadelta(loss, params)) == 6
    adam_updates = U.adam(loss, params)
    assert len(adam_updates) == 7
    names = sorted(k.name for k in adam_updates if k not in params)
    assert names == ["W.adam_m", "W.adam_v", "adam_t", "b.adam_m", "b.adam_v"]


def test_adam_state_can_be_checkpointed_and_restored():
    loss, params = _problem()
    updates = U.adam(loss, params, learning_rate=0.01)
    step = pytensor.function([], loss, updates=updates)
    step()
    keys = list(updates)
    saved = [k.get_value() for k in keys]
    step()
    after_two = [p.get_value() for p in params]
    for k, v in zip(keys, saved):
        k.set_value(v)
    step()
    for p, v in zip(params, after_two):
        np.testing.assert_allclose(p.get_value(), v)


def test_rules_accept_a_list_of_gradients():
    W = pytensor.shared(W0.copy(), name="W")
    grad = pt.constant(np.ones_like(W0))
    updates = U.sgd([grad], [W], learning_rate=0.5)
    pytensor.function([], [], updates=updates)()
    np.testing.assert_allclose(W.get_value(), W0 - 0.5)


def test_symbolic_learning_rate():
    loss, params = _problem()
    lr = pt.scalar("lr", dtype="float64")
    step = pytensor.function([lr], loss, updates=U.sgd(loss, params, lr))
    step(0.1)
    expected = _reference(_np_sgd(0.1), _zeros)
    step(0.1)
    np.testing.assert_allclose(params[0].get_value(), expected[0])


def test_apply_momentum_on_subset_keeps_other_updates():
    loss, params = _problem()
    base = U.sgd(loss, params, 0.1)
    updates = U.apply_momentum(base, params=[params[0]], momentum=0.5)
    assert updates is not base and len(base) == 2  # the input is not modified
    assert len(updates) == 3
    assert updates[params[1]] is base[params[1]]
    assert list(updates)[:2] == params


def test_get_or_compute_grads_rejects_non_shared_params():
    x = pt.vector("x")
    with pytest.raises(ValueError, match="params must contain shared variables"):
        U.get_or_compute_grads(pt.sum(x ** 2), [x])
    with pytest.raises(ValueError, match="params must contain shared variables"):
        U.adam(pt.sum(x ** 2), [x])


def test_get_or_compute_grads_checks_gradient_count():
    _, params = _problem()
    with pytest.raises(ValueError, match="got 1 gradient expressions for 2 parameters"):
        U.get_or_compute_grads([pt.zeros((2, 3))], params)


def test_get_or_compute_grads_computes_gradients():
    loss, params = _problem()
    grads = U.get_or_compute_grads(loss, params)
    got = pytensor.function([], grads)()
    for g, e in zip(got, _grads([W0, B0])):
        np.testing.assert_allclose(g, e)


def test_apply_momentum_rejects_params_without_updates():
    loss, params = _problem()
    updates = U.sgd(loss, params[:1], 0.1)
    with pytest.raises(ValueError, match="no update given"):
        U.apply_nesterov_momentum(updates, params=params)


# --- norm constraints ------------------------------------------------------------------------

def _np_norm_constraint(w, max_norm, axes, eps=1e-7):
    norms = np.sqrt(np.sum(w ** 2, axis=axes, keepdims=True))
    return w * np.clip(norms, 0, max_norm) / (norms + eps)


def test_norm_constraint_matrix_columns():
    # column norms: [5, 0.5, 13]; max 2 rescales the first and last only
    w = np.array([[3.0, 0.3, 5.0], [4.0, 0.4, 12.0]])
    x = pt.matrix("x", dtype="float64")
    got = pytensor.function([x], U.norm_constraint(x, 2.0))(w)
    np.testing.assert_allclose(got, _np_norm_constraint(w, 2.0, (0,)))
    np.testing.assert_allclose(np.sqrt((got ** 2).sum(axis=0)), [2.0, 0.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], w[:, 1], rtol=1e-6)  # below max: unchanged


def test_norm_constraint_4d_and_explicit_axes():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 2, 2))
    x = pt.tensor4("x", dtype="float64")
    f = pytensor.function([x], [U.norm_constraint(x, 1.5),
                                U.norm_constraint(x, 1.0, norm_axes=(0, 1))])
    default, explicit = f(w)
    np.testing.assert_allclose(default, _np_norm_constraint(w, 1.5, (1, 2, 3)))
    np.testing.assert_allclose(explicit, _np_norm_constraint(w, 1.0, (0, 1)))


def test_norm_constraint_needs_axes_for_vectors():
    # the words Lasagne's message has, which its users match
    with pytest.raises(ValueError, match="Unsupported tensor dimensionality.*specify norm_axes"):
        U.norm_constraint(pt.vector("v"), 1.0)
    v = pt.vector("v", dtype="float64")
    got = pytensor.function([v], U.norm_constraint(v, 1.0, norm_axes=(0,)))(np.array([3., 4.]))
    np.testing.assert_allclose(got, [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("max_norm", [2.0, 100.0], ids=["above_max", "below_max"])
def test_total_norm_constraint(max_norm):
    a_val = np.array([[1.0, 2.0], [3.0, 4.0]])
    b_val = np.array([5.0, -6.0])
    total = np.sqrt((a_val ** 2).sum() + (b_val ** 2).sum())
    a = pt.matrix("a", dtype="float64")
    b = pt.vector("b", dtype="float64")
    scaled, norm = U.total_norm_constraint([a, b], max_norm, return_norm=True)
    got_a, got_b, got_norm = pytensor.function([a, b], scaled + [norm])(a_val, b_val)
    factor = min(total, max_norm) / (total + 1e-7)
    np.testing.assert_allclose(got_norm, total)
    np.testing.assert_allclose(got_a, a_val * factor)
    np.testing.assert_allclose(got_b, b_val * factor)
    new_total = np.sqrt((got_a ** 2).sum() + (got_b ** 2).sum())
    np.testing.assert_allclose(new_total, min(total, max_norm), rtol=1e-6)


def test_total_norm_constraint_of_many_tensors():
    # More tensors than NumPy's iterators take as operands (32) in one fused operation.
    values = [np.full(3, i + 1.0) for i in range(40)]
    tensors = [pt.vector(f"t{i}", dtype="float64") for i in range(40)]
    scaled, norm = U.total_norm_constraint(tensors, 1.0, return_norm=True)
    got = pytensor.function(tensors, scaled + [norm])(*values)
    total = np.sqrt(sum((v ** 2).sum() for v in values))
    np.testing.assert_allclose(got[-1], total)
    np.testing.assert_allclose(got[0], values[0] / (total + 1e-7))


def test_total_norm_constraint_without_norm_returns_list():
    a = pt.vector("a")
    out = U.total_norm_constraint([a], 1.0)
    assert isinstance(out, list) and len(out) == 1
    with pytest.raises(ValueError, match="tensor_vars must hold at least one tensor"):
        U.total_norm_constraint([], 1.0)


def test_clipped_gradients_drive_an_update_rule():
    loss, params = _problem()
    grads = U.total_norm_constraint(pytensor.grad(loss, params), max_norm=0.1)
    step = pytensor.function([], loss, updates=U.sgd(grads, params, learning_rate=1.0))
    step()
    moved = np.sqrt(sum(((p.get_value() - v0) ** 2).sum() for p, v0 in zip(params, [W0, B0])))
    np.testing.assert_allclose(moved, 0.1, rtol=1e-5)


def test_amsgrad_keeps_the_largest_second_moment():
    lr, b1, b2, eps = 0.1, 0.9, 0.99, 1e-8
    w = pytensor.shared(np.array([1.0, -2.0]), name="w")
    g = pt.vector()
    updates = U.amsgrad([g], [w], learning_rate=lr, beta1=b1, beta2=b2, epsilon=eps)
    assert len(updates) == 5  # w, m, v, v_hat, t
    step = pytensor.function([g], [], updates=updates)
    # a large gradient, then small ones: v falls, v_hat stays at its maximum
    grads = [np.array([3.0, -1.0]), np.array([0.1, 0.1]), np.array([0.1, -0.2])]
    m = v = v_hat = np.zeros(2)
    w_np = np.array([1.0, -2.0])
    for t, grad in enumerate(grads, start=1):
        step(grad)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad ** 2
        v_hat = np.maximum(v_hat, v)
        a_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        w_np = w_np - a_t * m / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(w.get_value(), w_np, rtol=1e-10)
    assert v_hat[0] > v[0]  # the first coordinate had its large gradient first


def test_get_or_compute_grads_returns_a_given_list_itself():
    w = pytensor.shared(np.zeros(3))
    grads = [pt.ones(3)]
    assert U.get_or_compute_grads(grads, [w]) is grads
