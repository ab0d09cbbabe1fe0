"""Layer, MergeLayer and InputLayer: shapes, parameters and their tags."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne import init
from ntm.lasagne.layers import InputLayer, Layer, MergeLayer


class Doubling(Layer):
    """Doubles the last axis (to test output_shape)."""

    def get_output_shape_for(self, input_shape):
        return input_shape[:-1] + (2 * input_shape[-1],)


def test_layer_from_shape_and_from_layer():
    layer = Layer((None, 3, 4))
    assert layer.input_shape == (None, 3, 4)
    assert layer.input_layer is None
    assert layer.output_shape == (None, 3, 4)  # identity by default
    doubled = Doubling(layer, name="d")
    assert doubled.input_layer is layer
    assert doubled.input_shape == (None, 3, 4)
    assert doubled.output_shape == (None, 3, 8)
    assert doubled.name == "d"
    assert Doubling(doubled).input_shape == (None, 3, 8)


def test_layer_rejects_non_positive_shapes():
    with pytest.raises(ValueError, match="positive"):
        Layer((None, 0))
    with pytest.raises(ValueError, match="positive"):
        Layer((3, -2))


def test_layer_get_output_for_is_abstract():
    with pytest.raises(NotImplementedError):
        Layer((2, 3)).get_output_for(pt.matrix())


def test_symbolic_output_shape_is_an_error():
    class Symbolic(Layer):
        def get_output_shape_for(self, input_shape):
            return (pt.iscalar(),)

    with pytest.raises(ValueError, match="symbolic output shape"):
        Symbolic((3,)).output_shape


def test_add_param_default_and_custom_tags():
    layer = Layer((None, 3))
    W = layer.add_param(init.Constant(1.0), (3, 2), name="W")
    b = layer.add_param(np.zeros(2), (2,), name="b", regularizable=False)
    c = layer.add_param(init.Normal(), (4,), name="c", trainable=False, special=True)
    assert list(layer.params) == [W, b, c]
    assert layer.params[W] == {"trainable", "regularizable"}
    assert layer.params[b] == {"trainable"}
    assert layer.params[c] == {"regularizable", "special"}
    np.testing.assert_array_equal(W.get_value(), np.ones((3, 2)))
    assert b.get_value().shape == (2,)


def test_add_param_checks_shape():
    layer = Layer((None, 3))
    with pytest.raises(ValueError, match="shape"):
        layer.add_param(np.zeros((2, 3)), (3, 2), name="W")


def test_get_params_filters_by_tags():
    layer = Layer((None, 3))
    W = layer.add_param(init.Constant(1.0), (3, 2), name="W")
    b = layer.add_param(init.Constant(0.0), (2,), name="b", regularizable=False)
    c = layer.add_param(init.Constant(0.0), (4,), name="c", trainable=False)
    assert layer.get_params() == [W, b, c]
    assert layer.get_params(trainable=True) == [W, b]
    assert layer.get_params(trainable=False) == [c]
    assert layer.get_params(regularizable=True) == [W, c]
    assert layer.get_params(regularizable=False) == [b]
    assert layer.get_params(trainable=True, regularizable=True) == [W]
    assert layer.get_params(trainable=True, regularizable=False) == [b]
    assert layer.get_params(unknown_tag=True) == []
    assert layer.get_params(unknown_tag=False) == [W, b, c]


def test_param_names_are_prefixed_with_the_layer_name():
    named = Layer((None, 3), name="hidden")
    assert named.add_param(init.Constant(0.0), (3,), name="W").name == "hidden.W"
    unnamed = Layer((None, 3))
    assert unnamed.add_param(init.Constant(0.0), (3,), name="W").name == "W"
    assert named.add_param(init.Constant(0.0), (3,)).name is None


def test_unwrap_shared_with_an_expression_parameter():
    layer = Layer((None, 3))
    a = pytensor.shared(np.ones((3, 2)), name="a")
    s = pytensor.shared(np.float64(2.0), name="s")
    expr = a * s
    param = layer.add_param(expr, (3, 2), name="W")
    b = layer.add_param(init.Constant(0.0), (2,), name="b", regularizable=False)
    assert param is expr
    assert layer.get_params(unwrap_shared=False) == [expr, b]
    assert layer.get_params() == [a, s, b]
    assert layer.get_params(regularizable=True) == [a, s]
    assert layer.get_params(regularizable=True, unwrap_shared=False) == [expr]
    assert layer.get_params(trainable=False) == []


def test_merge_layer_inputs():
    l_in = InputLayer((None, 4))
    merge = MergeLayer([l_in, (None, 5)], name="m")
    assert merge.input_shapes == [(None, 4), (None, 5)]
    assert merge.input_layers == [l_in, None]
    assert merge.name == "m"
    assert merge.get_params() == []
    with pytest.raises(NotImplementedError):
        merge.output_shape


def test_input_layer():
    l_in = InputLayer((None, 3, 5), name="x")
    assert l_in.output_shape == (None, 3, 5)
    assert l_in.shape == (None, 3, 5)
    assert l_in.input_var.ndim == 3
    assert l_in.input_var.dtype == pytensor.config.floatX
    assert l_in.input_var.name == "x.input"
    assert not hasattr(l_in, "input_layer")  # as in Lasagne: nothing feeds it
    assert l_in.get_params() == []
    assert InputLayer((2,)).input_var.name == "input"


def test_input_layer_with_given_variable():
    var = pt.tensor3("seq")
    assert InputLayer((None, None, 2), input_var=var).input_var is var
    with pytest.raises(ValueError, match="dimensions"):
        InputLayer((None, 2), input_var=var)


def test_input_layer_shape_checks():
    with pytest.raises(ValueError, match="positive"):
        InputLayer((None, 0))
    assert InputLayer((None, np.int64(7))).output_shape == (None, 7)


def test_input_layer_size_one_axes_are_broadcastable():
    l_in = InputLayer((None, 1))
    assert l_in.input_var.type.shape == (None, 1)
    f = pytensor.function([l_in.input_var], l_in.input_var + np.arange(3.0))
    np.testing.assert_allclose(f(np.array([[1.0], [2.0]])), [[1, 2, 3], [2, 3, 4]])


def test_collect_shared_vars_left_to_right():
    from ntm.lasagne.layers import collect_shared_vars
    a, t, s = (pytensor.shared(np.ones((2, 2)), name=n) for n in "ats")
    assert collect_shared_vars((a + t) * s) == [a, t, s]
    assert collect_shared_vars([s * 2, t + a]) == [s, t, a]
    assert collect_shared_vars(a + a * t) == [a, t]
    assert collect_shared_vars(pt.matrix() * 2) == []


def test_layer_rejects_an_incoming_layer_with_non_positive_sizes():
    from unittest.mock import Mock
    from ntm.lasagne.layers import Layer
    incoming = Mock(output_shape=(None, -1, -1))
    with pytest.raises(ValueError, match="non-positive input_shape"):
        Layer(incoming)
