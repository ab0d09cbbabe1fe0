"""ntm.hoisting: parameter-only expressions enter the NTM's scan as non-sequences, so that the
backward step accumulates their gradient whole: the same values, gradients equal to rounding
and to finite differences."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.scan.op import Scan
from pytensor.tensor.basic import Join, Split

from ntm.hoisting import parameter_expressions, scan_hoisting_parameters
from ntm.lasagne import layers
from tests.small_ntm import small_ntm


def shared(name, shape, seed):
    value = np.random.RandomState(seed).normal(0, 0.5, shape)
    return pytensor.shared(value.astype(pytensor.config.floatX), name=name)


def scans(fgraph):
    return [node for node in fgraph.apply_nodes if isinstance(node.op, Scan)]


def count(fgraph, op_class):
    return sum(isinstance(node.op, op_class) for node in fgraph.apply_nodes)


def test_parameter_expressions_are_the_largest_float_ones_of_shared_variables():
    x = pt.matrix("x")
    w1, w2, b = shared("w1", (3, 2), 0), shared("w2", (3, 4), 1), shared("b", (6,), 2)
    joined = pt.concatenate([w1, w2], axis=1)
    scaled_bias = (b * 2.0).dimshuffle("x", 0)
    # w1 alone, a constant-only expression and an integer shape are not listed.
    output = (pt.dot(x, joined) + scaled_bias + pt.dot(x, w1).sum() + pt.constant(3.0) * 2
              + w1.shape[0])
    found = parameter_expressions([output])
    assert found == [joined, scaled_bias] or found == [scaled_bias, joined]
    # An output that is itself parameter-only is listed; a larger expression hides its parts.
    exponent = pt.exp(joined)
    assert parameter_expressions([exponent, pt.dot(x, exponent)]) == [exponent]


def plain_and_hoisted_scan(hoist):
    """A recurrence h_t = tanh(x_t W_x + h_{t-1} [W_a, W_b] + 2 b) in float64, its values and
    the gradient of a cost with respect to the three parameters."""
    with pytensor.config.change_flags(floatX="float64"):
        x = pt.tensor3("x")  # (time, batch, 3)
        w_x = shared("w_x", (3, 5), 3)
        w_a, w_b = shared("w_a", (5, 2), 4), shared("w_b", (5, 3), 5)
        b = shared("b", (5,), 6)
        joined = pt.concatenate([w_a, w_b], axis=1)

        def step(x_t, h):
            return [pt.tanh(pt.dot(x_t, w_x) + pt.dot(h, joined) + 2 * b)]

        h0 = pt.zeros((x.shape[1], 5))
        run = scan_hoisting_parameters if hoist else (
            lambda f, s, o, **k: pytensor.scan(f, sequences=s, outputs_info=o, **k))
        hidden = run(step, [x], [h0], return_updates=False)
        cost = pt.sum(hidden ** 2 * np.arange(1, 6))
        params = [w_x, w_a, w_b, b]
        function = pytensor.function([x], [hidden] + pytensor.grad(cost, params), mode="CVM")
        cost_function = pytensor.function([x], cost, mode="CVM")
    return function, cost_function, w_b


def test_a_hoisting_scan_gives_the_same_values_and_gradients():
    x = np.random.RandomState(7).normal(0, 1, (6, 4, 3))
    plain, _, _ = plain_and_hoisted_scan(hoist=False)
    hoisted, cost, w_b = plain_and_hoisted_scan(hoist=True)
    expected = plain(x)
    got = hoisted(x)
    for value, want in zip(got, expected):
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-14)
    # the gradient of a piece of the joined matrix against central differences
    value, step = w_b.get_value(), 1e-6
    numeric = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        for sign in (1, -1):
            shifted = value.copy()
            shifted[index] += sign * step
            w_b.set_value(shifted)
            numeric[index] += sign * cost(x) / (2 * step)
    w_b.set_value(value)
    np.testing.assert_allclose(got[3], numeric, rtol=1e-5, atol=1e-6)


def test_a_hoisting_scans_gradient_has_no_split_inside_the_backward_step():
    plain = plain_and_hoisted_scan(hoist=False)[0]
    hoisted = plain_and_hoisted_scan(hoist=True)[0]
    # The backward scan is the one with the larger step; the plain one cuts the joined
    # matrix's gradient at every step, the hoisting one after the loop.
    def backward_step(function):
        return max((node.op.fgraph for node in scans(function.maker.fgraph)),
                   key=lambda fgraph: len(fgraph.apply_nodes))
    assert count(backward_step(plain), Split) >= 1
    assert count(backward_step(hoisted), Split) == 0
    assert count(hoisted.maker.fgraph, Split) >= 1  # once, outside


def test_scan_hoisting_parameters_refuses_non_sequences():
    x = pt.matrix("x")
    with pytest.raises(TypeError, match="non_sequences"):
        scan_hoisting_parameters(lambda x_t, h: [h + x_t], [x], [pt.zeros(3)],
                                 non_sequences=[x])


def test_the_ntm_scan_takes_the_heads_joined_weights_as_inputs():
    from pytensor.compile.builders import OpFromGraph

    l_input, l_ntm = small_ntm()
    output = layers.get_output(l_ntm)
    # the NTM's recurrence (ntm.recurrence): an OpFromGraph around the scan
    (recurrence,) = [v.owner for v in pytensor.graph.traversal.ancestors([output])
                     if v.owner is not None and isinstance(v.owner.op, OpFromGraph)]
    stacked = {id(collection.W_stacked) for collection in
               (l_ntm.read_heads, l_ntm.write_heads)}
    assert stacked <= {id(v) for v in recurrence.inputs}
    (scan,) = [node.op for node in recurrence.op.fgraph.apply_nodes
               if isinstance(node.op, Scan)]
    # and no Join of parameters is left in the step: the step's Joins (the shift's) put
    # together pieces computed inside it, none joins the step's inputs
    step_joins = [node for node in scan.fgraph.apply_nodes if isinstance(node.op, Join)]
    assert all(any(x.owner is not None for x in node.inputs[1:]) for node in step_joins)
