"""Dense, shape, merge and expression layers: output shapes and values against NumPy."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne import init, nonlinearities
from ntm.lasagne.layers import (ConcatLayer, DenseLayer, DimshuffleLayer, ElemwiseMergeLayer,
                                ElemwiseSumLayer, ExpressionLayer, FlattenLayer, InputLayer,
                                NonlinearityLayer, ReshapeLayer, SliceLayer, get_output,
                                get_output_shape)

RNG = np.random.RandomState(0)


def run(layer, *values):
    """Compile ``layer``'s output as a function of its network's input variables."""
    from ntm.lasagne.layers import get_all_layers
    inputs = [l.input_var for l in get_all_layers(layer) if isinstance(l, InputLayer)]
    return pytensor.function(inputs, get_output(layer))(*values)


# DenseLayer --------------------------------------------------------------------------------

def test_dense_2d_values_and_params():
    l_in = InputLayer((None, 5))
    layer = DenseLayer(l_in, 4, W=init.Normal(1.0), b=init.Normal(1.0), name="fc")
    assert layer.output_shape == (None, 4)
    assert layer.W.get_value().shape == (5, 4) and layer.b.get_value().shape == (4,)
    assert layer.get_params() == [layer.W, layer.b]
    assert layer.get_params(regularizable=True) == [layer.W]
    assert (layer.W.name, layer.b.name) == ("fc.W", "fc.b")
    x = RNG.randn(6, 5)
    expected = np.maximum(x @ layer.W.get_value() + layer.b.get_value(), 0)  # rectify default
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6)


def test_dense_flattens_trailing_axes():
    l_in = InputLayer((None, 3, 4, 5))
    layer = DenseLayer(l_in, 7, W=init.Normal(1.0), nonlinearity=None)
    assert layer.W.get_value().shape == (60, 7)
    assert layer.output_shape == (None, 7)
    x = RNG.randn(2, 3, 4, 5)
    np.testing.assert_allclose(run(layer, x), x.reshape(2, 60) @ layer.W.get_value(), rtol=1e-6)


def test_dense_two_leading_axes():
    l_in = InputLayer((None, 3, 4, 5))
    layer = DenseLayer(l_in, 7, W=init.Normal(1.0), b=init.Normal(1.0),
                       nonlinearity=nonlinearities.tanh, num_leading_axes=2)
    assert layer.W.get_value().shape == (20, 7)
    assert layer.output_shape == (None, 3, 7)
    x = RNG.randn(2, 3, 4, 5)
    expected = np.tanh(x.reshape(2, 3, 20) @ layer.W.get_value() + layer.b.get_value())
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6)


def test_dense_negative_leading_axes():
    l_in = InputLayer((None, None, 5))
    layer = DenseLayer(l_in, 3, W=init.Normal(1.0), nonlinearity=None, num_leading_axes=-1)
    assert layer.num_leading_axes == -1
    assert layer.W.get_value().shape == (5, 3)
    assert layer.output_shape == (None, None, 3)
    x = RNG.randn(2, 4, 5)
    np.testing.assert_allclose(run(layer, x), x @ layer.W.get_value() + layer.b.get_value(),
                               rtol=1e-6)
    # -1 means "only the last axis", whatever the number of input dimensions
    assert get_output_shape(layer, {l_in: (2, 3, 4, 5)}) == (2, 3, 4, 3)
    x4 = RNG.randn(2, 3, 4, 5)
    out = get_output(layer, {l_in: x4}).eval()
    np.testing.assert_allclose(out, x4 @ layer.W.get_value(), rtol=1e-6)


def test_dense_without_bias_and_linear():
    l_in = InputLayer((None, 4))
    layer = DenseLayer(l_in, 2, W=init.Normal(1.0), b=None, nonlinearity=None)
    assert layer.b is None
    assert layer.get_params() == [layer.W]
    x = RNG.randn(5, 4)
    out = run(layer, x)
    assert (out < 0).any()  # no rectification
    np.testing.assert_allclose(out, x @ layer.W.get_value(), rtol=1e-6)


def test_dense_accepts_given_arrays_and_shared_weights():
    W = np.arange(6.0).reshape(3, 2)
    layer = DenseLayer((None, 3), 2, W=W, b=np.array([1.0, -1.0]), nonlinearity=None)
    np.testing.assert_array_equal(layer.W.get_value(), W)
    shared = pytensor.shared(W)
    assert DenseLayer((None, 3), 2, W=shared).W is shared
    with pytest.raises(ValueError, match="shape"):
        DenseLayer((None, 3), 2, W=np.zeros((2, 3)))


def test_dense_errors():
    with pytest.raises(ValueError, match="num_leading_axes"):
        DenseLayer((None, 4), 2, num_leading_axes=2)
    with pytest.raises(ValueError, match="num_leading_axes"):
        DenseLayer((None, 4), 2, num_leading_axes=-3)
    with pytest.raises(ValueError, match="requires a fixed input shape"):
        DenseLayer((None, None), 2)
    with pytest.raises(ValueError, match="leaving no trailing axes"):
        DenseLayer((None, 4), 2, num_leading_axes=1 + 1)
    with pytest.raises(ValueError, match="num_units"):
        DenseLayer((None, 4), 0)


def test_nonlinearity_layer():
    l_in = InputLayer((None, 3))
    x = RNG.randn(4, 3)
    np.testing.assert_allclose(run(NonlinearityLayer(l_in), x), np.maximum(x, 0))
    np.testing.assert_allclose(run(NonlinearityLayer(l_in, nonlinearities.sigmoid), x),
                               1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(run(NonlinearityLayer(l_in, None), x), x)
    assert NonlinearityLayer(l_in).output_shape == (None, 3)


# ReshapeLayer ------------------------------------------------------------------------------

def test_reshape_with_references():
    l_in = InputLayer((None, 12))
    layer = ReshapeLayer(l_in, ([0], 3, 4))
    assert layer.output_shape == (None, 3, 4)
    x = RNG.randn(2, 12)
    np.testing.assert_array_equal(run(layer, x), x.reshape(2, 3, 4))


def test_reshape_infers_minus_one():
    l_in = InputLayer((None, 3, 4))
    assert ReshapeLayer(l_in, ([0], -1)).output_shape == (None, 12)
    assert ReshapeLayer(l_in, ([0], [2], -1)).output_shape == (None, 4, 3)
    assert ReshapeLayer(l_in, (-1, 6)).output_shape == (None, 6)  # batch unknown
    assert ReshapeLayer(InputLayer((2, 3, 4)), (-1, 6)).output_shape == (4, 6)
    assert ReshapeLayer(InputLayer((2, 3, 4)), (4, [1], -1)).output_shape == (4, 3, 2)
    layer = ReshapeLayer(l_in, (-1, 2))
    x = RNG.randn(5, 3, 4)
    np.testing.assert_array_equal(run(layer, x), x.reshape(-1, 2))


def test_reshape_same_unknown_axis_twice_stays_unknown():
    layer = ReshapeLayer(InputLayer((None, 3)), ([0], [0], -1))
    assert layer.output_shape == (None, None, None)
    assert ReshapeLayer(InputLayer((4, 4)), ([0], [0], -1)).output_shape == (4, 4, 1)


def test_reshape_with_a_symbolic_size():
    n = pt.iscalar("n")
    l_in = InputLayer((None, 12))
    layer = ReshapeLayer(l_in, ([0], n, -1))
    assert layer.output_shape == (None, None, None)
    x = RNG.randn(2, 12)
    f = pytensor.function([l_in.input_var, n], get_output(layer))
    np.testing.assert_array_equal(f(x, 3), x.reshape(2, 3, 4))
    np.testing.assert_array_equal(f(x, 6), x.reshape(2, 6, 2))


@pytest.mark.parametrize("input_shape, shape, message", [
    ((None, 12), (-1, -1), "at most one -1"),
    ((None, 12), (0, 12), "positive"),
    ((None, 12), (-2, 6), "positive"),
    ((None, 12), ("a", 12), "ints"),
    ((None, 12), ([0, 1], 12), r"\[i\]"),
    ((None, 12), ([-1], 12), r"\[i\]"),
    ((None, 12), ([5], 12), "out of range"),
    ((None, 12), (pt.ivector(), 12), "scalar"),
    ((2, 12), (5, 5), "element counts do not match"),
    ((None, 12), ([0], 5), "element counts do not match"),
    ((None, 12), ([0], 5, -1), "cannot match .*not a multiple"),
])
def test_reshape_errors(input_shape, shape, message):
    with pytest.raises(ValueError, match=message):
        ReshapeLayer(InputLayer(input_shape), shape)


def test_reshape_output_shape_for_a_symbolic_input_shape():
    # sizes taken from an expression's shape are unknown when the graph is built: None
    x = pt.tensor3("x")
    layer = ReshapeLayer(InputLayer((None, None, None)), (x.shape[0] * x.shape[1], [2]))
    assert layer.get_output_shape_for(tuple(x.shape)) == (None, None)
    assert layer.get_output_shape_for((3, x.shape[1], 6)) == (None, 6)
    values = RNG.randn(3, 5, 6)
    np.testing.assert_array_equal(get_output(layer, x).eval({x: values}),
                                  values.reshape(15, 6))


# FlattenLayer ------------------------------------------------------------------------------

def test_flatten():
    l_in = InputLayer((None, 3, 4, 5))
    assert FlattenLayer(l_in).output_shape == (None, 60)
    assert FlattenLayer(l_in, outdim=3).output_shape == (None, 3, 20)
    assert FlattenLayer(l_in, outdim=1).output_shape == (None,)
    assert FlattenLayer(InputLayer((None, None, 4))).output_shape == (None, None)
    x = RNG.randn(2, 3, 4, 5)
    np.testing.assert_array_equal(run(FlattenLayer(l_in), x), x.reshape(2, 60))
    np.testing.assert_array_equal(run(FlattenLayer(l_in, 3), x), x.reshape(2, 3, 20))
    with pytest.raises(ValueError, match="outdim"):
        FlattenLayer(l_in, outdim=0)


# DimshuffleLayer ---------------------------------------------------------------------------

def test_dimshuffle_permutes_and_broadcasts():
    l_in = InputLayer((None, 3, 4))
    layer = DimshuffleLayer(l_in, (0, 2, 1))
    assert layer.output_shape == (None, 4, 3)
    x = RNG.randn(2, 3, 4)
    np.testing.assert_array_equal(run(layer, x), x.transpose(0, 2, 1))
    layer = DimshuffleLayer(l_in, (2, "x", 0, 1))
    assert layer.output_shape == (4, 1, None, 3)
    np.testing.assert_array_equal(run(layer, x), x.transpose(2, 0, 1)[:, None])
    # the new axis broadcasts
    out = get_output(layer) + pt.zeros((1, 5, 1, 1))
    assert pytensor.function([l_in.input_var], out)(x).shape == (4, 5, 2, 3)


def test_dimshuffle_drops_size_one_axes():
    layer = DimshuffleLayer(InputLayer((None, 1, 4)), (0, 2))
    assert layer.output_shape == (None, 4)
    x = RNG.randn(3, 1, 4)
    np.testing.assert_array_equal(run(layer, x), x[:, 0])
    # an axis of unknown size may be dropped too (it must be 1 at run time)
    layer = DimshuffleLayer(InputLayer((None, None, 4)), (0, 2))
    assert layer.output_shape == (None, 4)
    np.testing.assert_array_equal(run(layer, x), x[:, 0])


@pytest.mark.parametrize("pattern, message", [
    ((0, 2), "drops input axis 1"),
    ((0, 1, 1), "twice"),
    ((0, 1, 3), "refers to axis 3"),
    ((0, "y", 1), "'x'"),
])
def test_dimshuffle_errors(pattern, message):
    with pytest.raises(ValueError, match=message):
        DimshuffleLayer(InputLayer((None, 3, 4)), pattern)


# SliceLayer --------------------------------------------------------------------------------

def test_slice_with_int_and_slice():
    l_in = InputLayer((None, 6, 5))
    x = RNG.randn(2, 6, 5)
    layer = SliceLayer(l_in, 2, axis=1)
    assert layer.output_shape == (None, 5)
    np.testing.assert_array_equal(run(layer, x), x[:, 2])
    layer = SliceLayer(l_in, slice(1, None, 2))  # default axis -1
    assert layer.output_shape == (None, 6, 2)
    np.testing.assert_array_equal(run(layer, x), x[:, :, 1::2])
    layer = SliceLayer(l_in, -1, axis=-2)
    assert layer.output_shape == (None, 5)
    np.testing.assert_array_equal(run(layer, x), x[:, -1])
    layer = SliceLayer(l_in, slice(-3, None), axis=1)
    assert layer.output_shape == (None, 3, 5)
    np.testing.assert_array_equal(run(layer, x), x[:, -3:])
    layer = SliceLayer(l_in, slice(0, 1), axis=0)
    assert layer.output_shape == (None, 6, 5)  # unknown axis stays unknown
    np.testing.assert_array_equal(run(layer, x), x[:1])
    with pytest.raises(TypeError, match="indices"):
        SliceLayer(l_in, [1, 2])


# ConcatLayer -------------------------------------------------------------------------------

def test_concat_shapes():
    l_a, l_b = InputLayer((None, 3)), InputLayer((None, 4))
    assert ConcatLayer([l_a, l_b]).output_shape == (None, 7)
    assert ConcatLayer([l_a, l_b], axis=-1).output_shape == (None, 7)
    assert ConcatLayer([InputLayer((2, 3)), InputLayer((None, 3))], axis=0).output_shape \
        == (None, 3)
    assert ConcatLayer([InputLayer((2, 3)), InputLayer((5, 3))], axis=0).output_shape == (7, 3)
    assert ConcatLayer([InputLayer((None, 3)), InputLayer((4, 2))]).output_shape == (4, 5)
    with pytest.raises(ValueError, match="disagree"):
        ConcatLayer([InputLayer((2, 3)), InputLayer((5, 3))], axis=1).output_shape
    with pytest.raises(ValueError, match="dimensions"):
        ConcatLayer([InputLayer((2, 3)), InputLayer((2, 3, 1))]).output_shape


def test_concat_values():
    l_a, l_b = InputLayer((None, 3)), InputLayer((None, 2))
    a, b = RNG.randn(4, 3), RNG.randn(4, 2)
    np.testing.assert_array_equal(run(ConcatLayer([l_a, l_b]), a, b), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(run(ConcatLayer([l_a, l_a], axis=0), a),
                                  np.concatenate([a, a], 0))


# Elemwise merges ---------------------------------------------------------------------------

def test_elemwise_sum_with_coeffs():
    l_a, l_b, l_c = (InputLayer((None, 3)) for _ in range(3))
    a, b, c = RNG.randn(2, 3), RNG.randn(2, 3), RNG.randn(2, 3)
    np.testing.assert_allclose(run(ElemwiseSumLayer([l_a, l_b, l_c]), a, b, c), a + b + c)
    layer = ElemwiseSumLayer([l_a, l_b, l_c], coeffs=[1, -2, 0.5])
    np.testing.assert_allclose(run(layer, a, b, c), a - 2 * b + 0.5 * c)
    layer = ElemwiseSumLayer([l_a, l_b], coeffs=3)
    np.testing.assert_allclose(run(layer, a, b), 3 * (a + b))
    scale = pytensor.shared(np.float64(0.25))  # a symbolic coefficient
    layer = ElemwiseSumLayer([l_a, l_b], coeffs=[scale, 1])
    np.testing.assert_allclose(run(layer, a, b), 0.25 * a + b)
    with pytest.raises(ValueError, match="coeffs"):
        ElemwiseSumLayer([l_a, l_b], coeffs=[1, 2, 3])


def test_elemwise_shapes():
    layer = ElemwiseSumLayer([InputLayer((None, 3)), InputLayer((5, None))])
    assert layer.output_shape == (5, 3)
    with pytest.raises(ValueError, match="disagree"):
        ElemwiseSumLayer([InputLayer((None, 3)), InputLayer((None, 4))]).output_shape
    with pytest.raises(ValueError, match="dimensions"):
        ElemwiseSumLayer([InputLayer((None, 3)), InputLayer((None, 3, 1))]).output_shape


def test_elemwise_merge():
    l_a, l_b, l_c = (InputLayer((None, 4)) for _ in range(3))
    a, b, c = RNG.randn(3, 4), RNG.randn(3, 4), RNG.randn(3, 4)
    np.testing.assert_allclose(run(ElemwiseMergeLayer([l_a, l_b], pt.mul), a, b), a * b)
    np.testing.assert_allclose(run(ElemwiseMergeLayer([l_a, l_b, l_c], pt.maximum), a, b, c),
                               np.maximum(np.maximum(a, b), c))
    assert ElemwiseMergeLayer([l_a, l_b], pt.mul).output_shape == (None, 4)


# ExpressionLayer ---------------------------------------------------------------------------

def test_expression_layer_output_shapes_and_values():
    l_in = InputLayer((None, 6))
    x = RNG.randn(3, 6)
    same = ExpressionLayer(l_in, lambda v: v ** 2)
    assert same.output_shape == (None, 6)
    np.testing.assert_allclose(run(same, x), x ** 2)
    fixed = ExpressionLayer(l_in, lambda v: v[:, :2], output_shape=(None, 2))
    assert fixed.output_shape == (None, 2)
    np.testing.assert_allclose(run(fixed, x), x[:, :2])
    computed = ExpressionLayer(l_in, lambda v: v.reshape((v.shape[0], 2, 3)),
                               output_shape=lambda s: (s[0], 2, s[1] // 2))
    assert computed.output_shape == (None, 2, 3)
    assert get_output_shape(computed, (4, 6)) == (4, 2, 3)
    np.testing.assert_allclose(run(computed, x), x.reshape(3, 2, 3))


def test_expression_layer_auto_shape():
    l_in = InputLayer((None, 6))
    assert ExpressionLayer(l_in, lambda v: v[:, ::2], "auto").output_shape == (None, 3)
    assert ExpressionLayer(l_in, lambda v: v.sum(axis=1), "auto").output_shape == (None,)
    assert ExpressionLayer(l_in, lambda v: v.reshape((-1,)), "auto").output_shape == (None,)
    assert ExpressionLayer(l_in, lambda v: v.T, "auto").output_shape == (6, None)
    assert ExpressionLayer(InputLayer((2, 6)), lambda v: v.T, "auto").output_shape == (6, 2)


# NINLayer, PadLayer, cropping --------------------------------------------------------------

def test_nin_layer():
    from ntm.lasagne.layers import NINLayer
    x = RNG.randn(2, 3, 4, 5)
    l_in = InputLayer((None, 3, 4, 5))
    layer = NINLayer(l_in, 6, b=init.Normal(1.0), nonlinearity=None)
    assert layer.output_shape == (None, 6, 4, 5)
    assert layer.W.get_value().shape == (3, 6) and layer.b.get_value().shape == (6,)
    expected = (np.einsum("bcxy,cu->buxy", x, layer.W.get_value())
                + layer.b.get_value()[None, :, None, None])
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6)
    untied = NINLayer(l_in, 2, untie_biases=True, b=init.Normal(1.0))
    assert untied.b.get_value().shape == (2, 4, 5)
    expected = np.maximum(np.einsum("bcxy,cu->buxy", x, untied.W.get_value())
                          + untied.b.get_value()[None], 0)
    np.testing.assert_allclose(run(untied, x), expected, rtol=1e-6)


def test_pad_layer():
    from ntm.lasagne.layers import PadLayer, pad
    from ntm.lasagne.theano_extensions.padding import pad as pad_tensor
    x = RNG.randn(2, 3, 4, 5)
    l_in = InputLayer((None, 3, 4, 5))
    layer = PadLayer(l_in, width=[(1, 2), 3], val=7)
    assert layer.output_shape == (None, 3, 7, 11)
    expected = np.pad(x, [(0, 0), (0, 0), (1, 2), (3, 3)], constant_values=7)
    np.testing.assert_array_equal(run(layer, x), expected)
    assert pad is PadLayer
    assert PadLayer(l_in, 1, batch_ndim=1).output_shape == (None, 5, 6, 7)
    np.testing.assert_array_equal(pad_tensor(pt.as_tensor(x), 1, batch_ndim=3).eval(),
                                  np.pad(x, [(0, 0)] * 3 + [(1, 1)]))


def test_autocrop_and_merge_cropping():
    from ntm.lasagne.layers import autocrop, autocrop_array_shapes
    a, b = RNG.randn(1, 2, 5, 6), RNG.randn(1, 3, 3, 9)
    lower, upper = autocrop([pt.as_tensor(a), pt.as_tensor(b)], [None, None, "lower", "upper"])
    np.testing.assert_array_equal(lower.eval(), a[:, :, :3, :])
    np.testing.assert_array_equal(upper.eval(), b[:, :, :, 3:])
    ca, cb = autocrop([pt.as_tensor(a), pt.as_tensor(b)], [None, None, "center", "center"])
    np.testing.assert_array_equal(ca.eval(), a[:, :, 1:4, :])
    np.testing.assert_array_equal(cb.eval(), b[:, :, :, 1:7])
    assert autocrop_array_shapes([(1, 2, 5, 6), (1, 3, None, 9)], [None, None, "lower"]) == \
        [(1, 2, None, 6), (1, 3, None, 9)]
    with pytest.raises(ValueError, match="Unknown crop mode"):
        autocrop_array_shapes([(1, 2), (1, 3)], ["middle"])
    with pytest.raises(ValueError, match="same dimensionality"):
        autocrop([pt.matrix(), pt.tensor3()], [None])
    l_a, l_b = InputLayer((1, 2, 5, 6)), InputLayer((1, 3, 3, 9))
    cat = ConcatLayer([l_a, l_b], axis=1, cropping=[None, None, "center", "center"])
    assert cat.output_shape == (1, 5, 3, 6)
    out = get_output(cat).eval({l_a.input_var: a, l_b.input_var: b})
    np.testing.assert_array_equal(out, np.concatenate([a[:, :, 1:4], b[:, :, :, 1:7]], axis=1))
    # the concatenation axis is never cropped, whatever cropping says for it
    l_d = InputLayer((4, 3))
    l_e = InputLayer((5, 2))
    for axis, expected in ((0, (9, 2)), (1, (4, 5)), (-1, (4, 5))):
        cat = ConcatLayer([l_d, l_e], axis=axis, cropping=["lower", "lower"])
        assert cat.output_shape == expected
        d, e = RNG.randn(4, 3), RNG.randn(5, 2)
        out = get_output(cat).eval({l_d.input_var: d, l_e.input_var: e})
        np.testing.assert_array_equal(out, np.concatenate(
            [d[:, :2], e] if axis == 0 else [d, e[:4]], axis=axis))
    l_c = InputLayer((1, 2, 3, 9))
    summed = ElemwiseSumLayer([l_a, l_c], cropping=[None, None, "lower", "lower"])
    assert summed.output_shape == (1, 2, 3, 6)
