"""The faster scan gradient of :mod:`ntm.scan_gradient` gives PyTensor's gradients, smaller."""
import importlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import io_toposort

from ntm import scan_gradient

Scan = importlib.import_module("pytensor.scan.op").Scan


def _recurrence_gradients():
    """A two-state recurrence whose step reuses its outputs in several places, its gradients
    with respect to three parameters, and the node count of the backward step."""
    rng = np.random.default_rng(0)
    W = pytensor.shared(rng.normal(size=(4, 4)) * 0.5, name="W")
    U = pytensor.shared(rng.normal(size=(4, 4)) * 0.5, name="U")
    v = pytensor.shared(rng.normal(size=4), name="v")
    x = pt.matrix("x")

    def step(x_t, h, c):
        c_new = pt.tanh(pt.dot(h, W) + x_t) * pt.special.softmax(c + v)
        h_new = pt.sigmoid(pt.dot(c_new, U)) * h + c_new ** 2
        return h_new, c_new

    (hs, cs) = pytensor.scan(step, sequences=[x], outputs_info=[pt.ones(4) * 0.1, pt.zeros(4)],
                             return_updates=False)
    cost = (hs[-1] ** 2).sum() + cs.sum()
    grads = pytensor.grad(cost, [W, U, v])
    backward = [n for n in io_toposort([x], grads) if isinstance(n.op, Scan)
                and n.op.name and n.op.name.startswith("grad_of")]
    size = sum(len(io_toposort(n.op.inner_inputs, n.op.inner_outputs)) for n in backward)
    value = pytensor.function([x], grads, mode="FAST_COMPILE")(
        rng.normal(size=(5, 4)).astype(pytensor.config.floatX))
    return value, size


@pytest.mark.skipif(not scan_gradient.is_applied(),
                    reason="this PyTensor version is not among scan_gradient.CHECKED_VERSIONS")
def test_same_gradients_as_pytensor_with_a_smaller_backward_step():
    fast, fast_size = _recurrence_gradients()
    scan_gradient.remove()
    try:
        assert not scan_gradient.is_applied()
        reference, reference_size = _recurrence_gradients()
    finally:
        assert scan_gradient.apply()
    for ours, theirs in zip(fast, reference):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert fast_size < reference_size


def test_apply_is_idempotent_and_only_for_checked_versions():
    applied = scan_gradient.is_applied()
    assert applied == (pytensor.__version__ in scan_gradient.CHECKED_VERSIONS)
    assert scan_gradient.apply() == applied
    assert scan_gradient.is_applied() == applied


def _saved_output_gradients(save):
    """A step whose output ``s`` (not fed back) is computed from the new state ``m``; with
    ``save`` the step returns ``s`` as an output too. Returns the gradients (float64), the
    number of ``Exp`` nodes in the backward step and the backward step's inputs' count."""
    rng = np.random.default_rng(1)
    W = pytensor.shared(rng.normal(size=(3, 3)) * 0.5, name="W")
    x = pt.matrix("x", dtype="float64")

    def step(x_t, m, h):
        m_new = pt.tanh(pt.dot(m, W) + x_t)
        s = pt.exp(m_new)  # like the NTM's similarities of the memory just written
        h_new = h * s + m_new
        return [m_new, h_new, s] if save else [m_new, h_new]

    outputs_info = [pt.zeros(3, dtype="float64"), pt.ones(3, dtype="float64")]
    outputs = pytensor.scan(step, sequences=[x], outputs_info=outputs_info + [None] * save,
                            return_updates=False)
    cost = (outputs[1][-1] ** 2).sum() + outputs[0].sum()
    grads = pytensor.grad(cost, [W, x])
    backward = [n for n in io_toposort([x], grads) if isinstance(n.op, Scan)
                and n.op.name and n.op.name.startswith("grad_of")]
    assert len(backward) == 1
    inner = io_toposort(backward[0].op.inner_inputs, backward[0].op.inner_outputs)
    exps = sum(isinstance(n.op, pt.elemwise.Elemwise) and n.op.scalar_op.__class__.__name__
               == "Exp" for n in inner)
    function = pytensor.function([x], grads + [cost], mode="FAST_COMPILE")
    return function, exps


@pytest.mark.skipif(not scan_gradient.is_applied(),
                    reason="this PyTensor version is not among scan_gradient.CHECKED_VERSIONS")
def test_backward_step_reads_a_saved_output_computed_from_a_state():
    """An output computed from the step's new state is read from the forward scan's saved
    sequence, not computed again: no ``exp`` left in the backward step (one without saving
    it, and with PyTensor's own gradient, which finds it only before the state is replaced);
    same gradients, which also match central differences."""
    saving, saving_exps = _saved_output_gradients(save=True)
    plain, plain_exps = _saved_output_gradients(save=False)
    scan_gradient.remove()
    try:
        _, pytensor_exps = _saved_output_gradients(save=True)
    finally:
        assert scan_gradient.apply()
    assert saving_exps == 0
    assert plain_exps >= 1 and pytensor_exps >= 1
    x = np.random.default_rng(2).normal(size=(5, 3))
    for ours, theirs in zip(saving(x)[:2], plain(x)[:2]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    dx = saving(x)[1]
    eps = 1e-6
    for index in [(0, 0), (2, 1), (4, 2)]:
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        numeric = (saving(up)[2] - saving(down)[2]) / (2 * eps)
        np.testing.assert_allclose(dx[index], numeric, rtol=1e-6, atol=1e-8)
