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
