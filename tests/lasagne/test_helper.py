"""Network-wide helpers: layers in order, outputs, shapes, parameters and their values."""
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

from ntm.lasagne import init, nonlinearities
from ntm.lasagne.layers import (ConcatLayer, DenseLayer, ElemwiseSumLayer, InputLayer, Layer,
                                count_params, get_all_layers, get_all_param_values,
                                get_all_params, get_output, get_output_shape,
                                set_all_param_values)


def _dense(incoming, num_units, name):
    return DenseLayer(incoming, num_units, W=init.Normal(0.5), b=init.Normal(0.5),
                      nonlinearity=nonlinearities.tanh, name=name)


@pytest.fixture
def diamond():
    """in -> a ----------> sum -> out
       in -> b -> c ----/"""
    l_in = InputLayer((None, 4), name="in")
    l_a = _dense(l_in, 3, "a")
    l_b = _dense(l_in, 5, "b")
    l_c = _dense(l_b, 3, "c")
    l_sum = ElemwiseSumLayer([l_a, l_c], name="sum")
    l_out = _dense(l_sum, 2, "out")
    return dict(l_in=l_in, l_a=l_a, l_b=l_b, l_c=l_c, l_sum=l_sum, l_out=l_out)


def _numpy_forward(net, x, start="in", start_value=None):
    def dense(layer, v):
        return np.tanh(v @ layer.W.get_value() + layer.b.get_value())

    b = start_value if start == "b" else dense(net["l_b"], x)
    a = dense(net["l_a"], x) if x is not None else None
    c = dense(net["l_c"], b)
    return a, b, c, dense(net["l_out"], a + c) if a is not None else None


# get_all_layers ----------------------------------------------------------------------------

def test_get_all_layers_topological_order(diamond):
    d = diamond
    order = get_all_layers(d["l_out"])
    assert order == [d["l_in"], d["l_a"], d["l_b"], d["l_c"], d["l_sum"], d["l_out"]]
    assert get_all_layers(d["l_in"]) == [d["l_in"]]
    assert get_all_layers([d["l_c"], d["l_a"]]) == [d["l_in"], d["l_b"], d["l_c"], d["l_a"]]
    assert get_all_layers((d["l_a"], d["l_sum"])) == [d["l_in"], d["l_a"], d["l_b"], d["l_c"],
                                                      d["l_sum"]]


def test_get_all_layers_each_layer_after_its_inputs():
    l_in = InputLayer((None, 2))
    l_h = _dense(l_in, 3, "h")
    # the merge takes the input layer directly as well as through l_h
    l_cat = ConcatLayer([l_h, l_in, l_h])
    order = get_all_layers(l_cat)
    assert order == [l_in, l_h, l_cat]


def test_get_all_layers_treat_as_input(diamond):
    d = diamond
    assert get_all_layers(d["l_c"], treat_as_input=[d["l_b"]]) == [d["l_b"], d["l_c"]]
    assert get_all_layers(d["l_out"], treat_as_input=[d["l_sum"]]) == [d["l_sum"], d["l_out"]]


# get_output --------------------------------------------------------------------------------

def test_get_output_default_inputs(diamond):
    d = diamond
    x = np.random.RandomState(0).randn(6, 4)
    out = get_output(d["l_out"])
    result = pytensor.function([d["l_in"].input_var], out)(x)
    np.testing.assert_allclose(result, _numpy_forward(d, x)[3], rtol=1e-6)


def test_get_output_of_several_layers(diamond):
    d = diamond
    x = np.random.RandomState(1).randn(3, 4)
    outs = get_output([d["l_a"], d["l_c"], d["l_out"]])
    assert isinstance(outs, list) and len(outs) == 3
    values = pytensor.function([d["l_in"].input_var], outs)(x)
    a, _, c, out = _numpy_forward(d, x)
    for got, want in zip(values, [a, c, out]):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_get_output_with_an_expression(diamond):
    d = diamond
    y = pt.matrix("y")
    out = get_output(d["l_out"], y * 2)
    assert d["l_in"].input_var not in set(ancestors([out]))
    x = np.random.RandomState(2).randn(5, 4)
    np.testing.assert_allclose(pytensor.function([y], out)(x), _numpy_forward(d, 2 * x)[3],
                               rtol=1e-6)


def test_get_output_with_a_numpy_array(diamond):
    d = diamond
    x = np.random.RandomState(3).randn(2, 4)
    out = get_output(d["l_out"], x)
    np.testing.assert_allclose(out.eval(), _numpy_forward(d, x)[3], rtol=1e-6)


def test_get_output_with_a_dict_for_a_middle_layer(diamond):
    d = diamond
    rng = np.random.RandomState(4)
    b_value = rng.randn(3, 5)
    h = pt.matrix("h")
    out_c = get_output(d["l_c"], {d["l_b"]: h})
    # the layers before l_b are bypassed: no input variable in the graph
    assert d["l_in"].input_var not in set(ancestors([out_c]))
    np.testing.assert_allclose(pytensor.function([h], out_c)(b_value),
                               _numpy_forward(d, None, "b", b_value)[2], rtol=1e-6)
    # mixing: l_b replaced, l_in still from its input variable
    x = rng.randn(3, 4)
    out = get_output(d["l_out"], {d["l_b"]: b_value})
    got = pytensor.function([d["l_in"].input_var], out)(x)
    a = np.tanh(x @ d["l_a"].W.get_value() + d["l_a"].b.get_value())
    c = _numpy_forward(d, None, "b", b_value)[2]
    want = np.tanh((a + c) @ d["l_out"].W.get_value() + d["l_out"].b.get_value())
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_get_output_dict_for_the_input_layer(diamond):
    d = diamond
    x = np.random.RandomState(5).randn(2, 4)
    out = get_output(d["l_out"], {d["l_in"]: x})
    np.testing.assert_allclose(out.eval(), _numpy_forward(d, x)[3], rtol=1e-6)


def test_get_output_ignores_dict_keys_outside_the_network(diamond):
    # as Lasagne: a key that is no layer of the network stands in for nothing
    out = get_output(diamond["l_out"], {"in": np.zeros((1, 4))})
    assert diamond["l_in"].input_var in ancestors([out])


def test_get_output_single_expression_for_several_inputs():
    l_1, l_2 = InputLayer((None, 2)), InputLayer((None, 2))
    l_sum = ElemwiseSumLayer([l_1, l_2])
    with pytest.raises(ValueError, match="dict"):
        get_output(l_sum, pt.matrix())
    out = get_output(l_sum, {l_1: np.ones((1, 2)), l_2: np.full((1, 2), 2.0)})
    np.testing.assert_allclose(out.eval(), [[3.0, 3.0]])


def test_get_output_of_a_free_floating_layer():
    layer = DenseLayer((None, 3), 2)
    with pytest.raises(ValueError, match="dict"):
        get_output(layer)
    # a layer on top of it works once the free-floating layer's output is given
    top = DenseLayer(layer, 1, W=np.ones((2, 1)), b=None, nonlinearity=None)
    out = get_output(top, {layer: np.array([[1.0, 2.0], [3.0, 4.0]])})
    np.testing.assert_allclose(out.eval(), [[3.0], [7.0]])


class Recorder(Layer):
    """Records the keyword arguments its get_output_for receives."""

    def __init__(self, incoming, **kwargs):
        super().__init__(incoming, **kwargs)
        self.calls = []
        self.get_output_kwargs = ["declared"]

    def get_output_for(self, input, foo=None, **kwargs):
        self.calls.append(dict(kwargs, foo=foo))
        return input


def test_get_output_passes_kwargs_to_layers():
    l_in = InputLayer((None, 2))
    first = Recorder(l_in)
    second = Recorder(first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_output(second, foo=3, declared="yes", deterministic=True)
    expected = {"foo": 3, "declared": "yes", "deterministic": True}
    assert first.calls == [expected]
    assert second.calls == [expected]


def test_get_output_warns_about_unknown_kwargs():
    l_in = InputLayer((None, 2))
    layer = Recorder(l_in)
    with pytest.warns(UserWarning, match="bar") as record:
        get_output(layer, foo=1, bar=2)
    assert "foo" not in str(record[0].message)  # only the unknown one is named
    assert layer.calls == [{"foo": 1, "bar": 2}]  # still passed on
    with pytest.warns(UserWarning, match="fooo.*perhaps you meant foo"):
        get_output(layer, fooo=1)


def test_deterministic_never_warns():
    l_out = DenseLayer(InputLayer((None, 2)), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_output(l_out, deterministic=True)


# get_output_shape --------------------------------------------------------------------------

def test_get_output_shape(diamond):
    d = diamond
    assert get_output_shape(d["l_out"]) == (None, 2)
    assert get_output_shape([d["l_b"], d["l_out"]]) == [(None, 5), (None, 2)]
    assert get_output_shape(d["l_out"], (7, 4)) == (7, 2)
    assert get_output_shape([d["l_b"], d["l_sum"]], (7, 4)) == [(7, 5), (7, 3)]
    assert get_output_shape(d["l_c"], {d["l_b"]: (9, 5)}) == (9, 3)
    assert get_output_shape(d["l_out"], {d["l_in"]: (8, 4)}) == (8, 2)
    assert get_output_shape(d["l_out"], {}) == (None, 2)


def test_get_output_shape_single_shape_for_several_inputs():
    l_1, l_2 = InputLayer((None, 2)), InputLayer((None, 3))
    l_cat = ConcatLayer([l_1, l_2])
    with pytest.raises(ValueError, match="dict"):
        get_output_shape(l_cat, (5, 2))
    assert get_output_shape(l_cat, {l_1: (5, 2), l_2: (5, 3)}) == (5, 5)


# parameters --------------------------------------------------------------------------------

def test_get_all_params_topological_order_and_tags(diamond):
    d = diamond
    W = [d[k].W for k in ("l_a", "l_b", "l_c", "l_out")]
    b = [d[k].b for k in ("l_a", "l_b", "l_c", "l_out")]
    assert get_all_params(d["l_out"]) == [W[0], b[0], W[1], b[1], W[2], b[2], W[3], b[3]]
    assert get_all_params(d["l_out"], trainable=True) == get_all_params(d["l_out"])
    assert get_all_params(d["l_out"], regularizable=True) == W
    assert get_all_params(d["l_out"], regularizable=False) == b
    assert get_all_params(d["l_out"], trainable=False) == []
    assert get_all_params(d["l_c"]) == [W[1], b[1], W[2], b[2]]
    assert [p.name for p in get_all_params(d["l_a"])] == ["a.W", "a.b"]


def test_get_all_params_unique_with_shared_weights():
    l_in = InputLayer((None, 3))
    l_1 = DenseLayer(l_in, 3, name="one")
    l_2 = DenseLayer(l_1, 3, W=l_1.W, b=None, name="two")  # tied weights
    l_3 = DenseLayer(l_2, 2, b=None, name="three")
    params = get_all_params(l_3)
    assert params == [l_1.W, l_1.b, l_3.W]
    assert count_params(l_3) == 9 + 3 + 6


def test_get_all_params_unwraps_expressions():
    base = pytensor.shared(np.ones((2, 3)), name="base")
    l_in = InputLayer((None, 2))
    layer = DenseLayer(l_in, 3, W=base * 2, b=None)
    assert get_all_params(layer) == [base]
    assert get_all_params(layer, unwrap_shared=False) == [layer.W]


def test_count_params(diamond):
    d = diamond
    # a: 4*3+3, b: 4*5+5, c: 5*3+3, out: 3*2+2
    assert count_params(d["l_out"]) == 15 + 25 + 18 + 8
    assert count_params(d["l_out"], regularizable=True) == 12 + 20 + 15 + 6
    assert count_params(d["l_out"], regularizable=False) == 3 + 5 + 3 + 2
    assert count_params(d["l_in"]) == 0


def test_param_values_round_trip(diamond):
    d = diamond
    values = get_all_param_values(d["l_out"])
    params = get_all_params(d["l_out"])
    assert [v.shape for v in values] == [p.get_value().shape for p in params]
    rng = np.random.RandomState(6)
    new = [rng.randn(*v.shape) for v in values]
    set_all_param_values(d["l_out"], new)
    for got, want in zip(get_all_param_values(d["l_out"]), new):
        np.testing.assert_allclose(got, want)
    set_all_param_values(d["l_out"], values)
    for got, want in zip(get_all_param_values(d["l_out"]), values):
        np.testing.assert_array_equal(got, want)
    # values are copies: changing them does not change the network
    values[0][...] = 123.0
    assert not (d["l_a"].W.get_value() == 123.0).any()


def test_param_values_by_tag(diamond):
    d = diamond
    biases = get_all_param_values(d["l_out"], regularizable=False)
    assert [v.shape for v in biases] == [(3,), (5,), (3,), (2,)]
    set_all_param_values(d["l_out"], [np.zeros_like(v) for v in biases], regularizable=False)
    assert not d["l_b"].b.get_value().any()
    assert d["l_b"].W.get_value().any()


def test_set_all_param_values_mismatches(diamond):
    d = diamond
    values = get_all_param_values(d["l_out"])
    with pytest.raises(ValueError, match="mismatch: got 7 values to set 8 parameters"):
        set_all_param_values(d["l_out"], values[:-1])
    bad = list(values)
    bad[2] = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"mismatch.*\(4, 5\).*\(5, 4\)"):
        set_all_param_values(d["l_out"], bad)


def test_get_output_of_a_layer_built_from_a_shape_with_a_none_key():
    from ntm.lasagne.layers import DenseLayer, get_output
    layer = DenseLayer((None, 3), 2, nonlinearity=None, b=None)
    x = pt.matrix()
    out = get_output(layer, inputs={None: x})
    value = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(out.eval({x: value}), value @ layer.W.get_value())


def test_get_output_passes_a_non_tensor_variable_through():
    from ntm.lasagne.layers import ExpressionLayer, InputLayer, get_output
    from pytensor.typed_list import TypedListType
    listed = TypedListType(pt.dvector)()
    l_in = InputLayer((None,))
    layer = ExpressionLayer(l_in, lambda v: v)
    assert get_output(layer, listed) is listed
    assert get_output(layer, {l_in: listed}) is listed


def test_input_layer_has_no_input_layer_and_walks_stop_there():
    from unittest.mock import Mock
    from ntm.lasagne.layers import DenseLayer, InputLayer, get_all_layers
    l_in = InputLayer((None, 3))
    assert not hasattr(l_in, "input_layer")
    mock_input = Mock(spec=InputLayer)
    assert get_all_layers(mock_input) == [mock_input]
    dense = DenseLayer(l_in, 2)
    assert get_all_layers(dense) == [l_in, dense]


def test_get_output_dict_keys_and_layers_built_from_shapes():
    # a key that is not a layer of the network is ignored; a layer built from a shape then
    # still has no input
    layer = DenseLayer((None, 3), 2, W=init.Constant(1.0), b=init.Constant(0.0))
    with pytest.raises(ValueError, match="built from a shape"):
        get_output(layer, {object(): np.ones((1, 3))})
    x = pt.matrix("x")
    np.testing.assert_allclose(get_output(layer, {None: x}).eval({x: np.ones((2, 3))}),
                               np.full((2, 2), 3.0))


def test_get_output_shape_uses_input_layer_shape_and_the_none_key():
    l_in = InputLayer((None, 4))
    merged = ConcatLayer([l_in, (None, 3)], axis=1)
    assert get_output_shape(merged) == (None, 7)
    assert get_output_shape(merged, {None: (5, 6), l_in: (5, 4)}) == (5, 10)
    single = DenseLayer((None, 3), 2)
    assert get_output_shape(single, {None: (8, 3)}) == (8, 2)
