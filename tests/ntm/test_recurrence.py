"""ntm.recurrence: the same values as ``pytensor.scan``, gradients equal to PyTensor's own
scan gradient and to finite differences, one backward scan of the forward step's size."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad
from pytensor.scan.op import Scan

import ntm.layers
from ntm.hoisting import scan_hoisting_parameters
from ntm.lasagne import layers
from ntm.recurrence import recurrence
from tests.small_ntm import binary_sequences, small_ntm

RNG = np.random.RandomState(0)
W = pytensor.shared(RNG.normal(size=(3, 3)), name="W")
V = pytensor.shared(RNG.normal(size=(3, 3)), name="V")


def toy_step(x_t, m, h):
    """Two states and one extra output; the new memory is also used inside the step, and the
    extra output feeds nothing (its gradient enters only through the cost)."""
    m_new = 0.9 * m + pt.tanh(h @ V)
    h_new = pt.tanh(x_t + pt.dot(W, h) + m_new)
    return [m_new, h_new, 2 * m_new * h_new]


def cost_of(outputs):
    memory, hidden, extra = outputs
    return (hidden ** 2).sum() + memory[-1].sum() + (extra[1:] ** 3).sum()


def toy_inputs():
    return pt.matrix("x", dtype="float64"), pt.vector("m0", dtype="float64"), \
        pt.vector("h0", dtype="float64")


def scans_in(variables):
    return [v.owner for v in pytensor.graph.traversal.ancestors(variables)
            if v.owner is not None and isinstance(v.owner.op, Scan)]


def test_values_and_gradients_equal_pytensors_scan():
    x, m0, h0 = toy_inputs()
    reference = pytensor.scan(toy_step, sequences=[x], outputs_info=[m0, h0, None],
                              return_updates=False)
    ours = recurrence(toy_step, [x], [m0, h0], num_extra=1)
    values = [np.linspace(-1, 1, 15).reshape(5, 3), np.full(3, 0.2), np.full(3, 0.1)]
    results = []
    for outputs in (reference, ours):
        cost = cost_of(outputs)
        wrt = [W, V, x, m0, h0]
        function = pytensor.function([x, m0, h0], list(outputs) + pytensor.grad(cost, wrt),
                                     mode="FAST_COMPILE")
        results.append(function(*values))
    assert len(results[1]) == 3 + 5
    for expected, got in zip(*results):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_gradients_match_finite_differences():
    def cost(x, m0, h0):
        return cost_of(recurrence(toy_step, [x], [m0, h0], num_extra=1))

    verify_grad(cost, [RNG.normal(size=(4, 3)), RNG.normal(size=3), RNG.normal(size=3)],
                rng=np.random.RandomState(1), mode="FAST_COMPILE")


def test_one_backward_scan_of_the_forward_steps_size():
    x, m0, h0 = toy_inputs()
    outputs = recurrence(toy_step, [x], [m0, h0], num_extra=1, name="toy")
    grads = pytensor.grad(cost_of(outputs), [W, V, m0])
    function = pytensor.function([x, m0, h0], grads, mode="FAST_COMPILE")
    scans = {node.op.name: node.op for node in function.maker.fgraph.apply_nodes
             if isinstance(node.op, Scan)}
    assert sorted(scans) == ["toy", "toy_grad"]
    forward, backward = (len(scans[name].fgraph.apply_nodes) for name in ("toy", "toy_grad"))
    assert backward < 10 * forward


def test_a_function_without_gradient_compiles_to_the_forward_scan_only():
    x, m0, h0 = toy_inputs()
    outputs = recurrence(toy_step, [x], [m0, h0], num_extra=1)
    function = pytensor.function([x, m0, h0], outputs[1], mode="FAST_COMPILE")
    assert sum(isinstance(n.op, Scan) for n in function.maker.fgraph.apply_nodes) == 1


def test_a_step_with_the_wrong_number_of_outputs_is_refused():
    x, m0, h0 = toy_inputs()
    with pytest.raises(ValueError, match="expected 2 states and 2 others"):
        recurrence(toy_step, [x], [m0, h0], num_extra=2)


@pytest.mark.parametrize("only_final", [False, True])
def test_the_ntm_gradient_equals_pytensors_scan_gradient(monkeypatch, only_final):
    """Every parameter's gradient of the NTM through ntm.recurrence, against the same NTM
    differentiated by PyTensor's own scan gradient, float64."""
    def pytensor_scan(step, sequences, initial, num_extra=0, name=None, mode=None):
        return scan_hoisting_parameters(step, sequences, list(initial) + [None] * num_extra,
                                        return_updates=False)

    x = binary_sequences(shape=(2, 5, 3)).astype("float64")
    results = []
    for build in (pytensor_scan, recurrence):
        monkeypatch.setattr(ntm.layers, "recurrence", build)
        with pytensor.config.change_flags(floatX="float64"):
            l_input, l_ntm = small_ntm()
            output = layers.get_output(l_ntm)
            cost = (output[:, -1] if only_final else output).sum() + (output ** 2).sum()
            params = layers.get_all_params(l_ntm, trainable=True)
            function = pytensor.function([l_input.input_var], [cost] + pytensor.grad(cost, params))
        results.append(function(x))
    for expected, got in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert any(np.abs(g).max() > 1e-3 for g in results[1][1:])
