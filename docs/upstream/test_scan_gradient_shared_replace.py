"""Test for ``scan-gradient-shared-replace.patch`` (PyTensor's ``tests/scan/``).

A scan whose step has many differentiable inputs: the backward step must stay of the order
of the forward step (without the patch each input's gradient is cloned once per recurrent
output: it grows with their product), and the gradients are those of finite differences.

Run against a patched PyTensor as ``docs/upstream/README.md`` says.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import verify_grad
from pytensor.scan.op import Scan

NUM_WEIGHTS = 12


def _step(x_t, h, c, *weights):
    # every weight feeds both states, through shared subexpressions
    mixed = sum(pt.tanh(h @ w) for w in weights)
    c_new = 0.5 * c + pt.sigmoid(mixed + x_t)
    h_new = pt.tanh(c_new) * pt.sigmoid(mixed)
    return h_new, c_new


def _cost(x, weights):
    h0 = pt.zeros((3,), dtype=x.dtype)
    (h, c) = pytensor.scan(_step, sequences=[x], outputs_info=[h0, h0],
                           non_sequences=list(weights), return_updates=False)
    return (h ** 2).sum() + c[-1].sum()


def test_backward_step_size_does_not_grow_with_inputs_times_outputs():
    x = pt.matrix("x")
    weights = [pt.matrix(f"w{i}") for i in range(NUM_WEIGHTS)]
    grads = pytensor.grad(_cost(x, weights), weights)
    scans = [v.owner for v in pytensor.graph.traversal.ancestors(grads)
             if v.owner is not None and isinstance(v.owner.op, Scan)]
    forward = min(len(s.op.fgraph.apply_nodes) for s in scans)
    backward = max(len(s.op.fgraph.apply_nodes) for s in scans)
    assert backward < 20 * forward, (forward, backward)


def test_gradients_are_unchanged():
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(4, 3))] + [rng.normal(size=(3, 3)) * 0.3
                                          for _ in range(3)]
    verify_grad(lambda x, *w: _cost(x, w), values, rng=np.random.RandomState(1))
