"""Convolutional layers and ``theano_extensions.conv``: values against a NumPy loop over output
positions, shapes (known and unknown sizes), errors, and finite-difference gradients."""
import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from ntm.lasagne import nonlinearities
from ntm.lasagne.layers import (BaseConvLayer, Conv1DLayer, Conv2DLayer, Conv3DLayer,
                                Deconv2DLayer, DilatedConv2DLayer, InputLayer,
                                TransposedConv2DLayer, TransposedConv3DLayer,
                                conv_input_length, conv_output_length, get_output)
from ntm.lasagne.theano_extensions import conv as conv_ops

RNG = np.random.RandomState(42)


def np_correlate(x, w, stride=1, pad=0, dilation=1):
    """Correlation by a loop over output positions: y[b, f, o] = sum x[b, c, o*s + k*d] w[f, c, k]."""
    n = x.ndim - 2
    stride, pad, dilation = ((v,) * n if np.isscalar(v) else tuple(v)
                             for v in (stride, pad, dilation))
    x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    K = w.shape[2:]
    out = [(x.shape[2 + a] - (K[a] - 1) * dilation[a] - 1) // stride[a] + 1 for a in range(n)]
    y = np.zeros((x.shape[0], w.shape[0]) + tuple(out))
    for o in itertools.product(*map(range, out)):
        window = tuple(slice(o[a] * stride[a], o[a] * stride[a] + (K[a] - 1) * dilation[a] + 1,
                             dilation[a]) for a in range(n))
        patch = x[(slice(None), slice(None)) + window]
        y[(slice(None), slice(None)) + o] = np.tensordot(
            patch, w, axes=(list(range(1, n + 2)), list(range(1, n + 2))))
    return y


def flip(w):
    n = w.ndim - 2
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * n]


def np_pad_amount(pad, k):
    return {"valid": 0, "full": k - 1, "same": k // 2}.get(pad, pad)


def run(layer, x):
    l_in = layer.input_layer
    return get_output(layer).eval({l_in.input_var: x})


CASES = [(n, pad, stride, flip_filters)
         for n in (1, 2, 3)
         for pad, stride, flip_filters in [(0, 1, True), (1, 2, True), ("full", 1, False),
                                           ("same", 2, True), ("valid", 3, False), (2, 1, True)]]


@pytest.mark.parametrize("n, pad, stride, flip_filters", CASES)
def test_conv_layers_match_numpy(n, pad, stride, flip_filters):
    layer_class = {1: Conv1DLayer, 2: Conv2DLayer, 3: Conv3DLayer}[n]
    spatial = (7, 6, 5)[:n]
    x = RNG.randn(2, 3, *spatial)
    w = RNG.randn(4, 3, *((3,) * n))
    b = RNG.randn(4)
    for shape in [(2, 3) + spatial, (None, 3) + (None,) * n]:
        layer = layer_class(InputLayer(shape), 4, 3, stride=stride, pad=pad, W=w, b=b,
                            flip_filters=flip_filters, nonlinearity=None)
        kernel = flip(w) if flip_filters else w
        expected = np_correlate(x, kernel, stride, np_pad_amount(pad, 3))
        expected += b.reshape((1, 4) + (1,) * n)
        actual = run(layer, x)
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-8)
        if shape[0] is not None:
            assert layer.output_shape == expected.shape
        else:
            assert layer.output_shape == (None, 4) + (None,) * n


def test_conv2d_untied_biases_rectangular_filters_and_rectify():
    x = RNG.randn(2, 2, 6, 7)
    layer = Conv2DLayer(InputLayer((None, 2, 6, 7)), 3, (3, 2), untie_biases=True,
                        b=RNG.randn(3, 4, 6))
    assert layer.b.get_value().shape == (3, 4, 6)
    assert layer.W.get_value().shape == (3, 2, 3, 2)
    expected = np_correlate(x, flip(layer.W.get_value())) + layer.b.get_value()[None]
    np.testing.assert_allclose(run(layer, x), np.maximum(expected, 0), rtol=1e-6, atol=1e-8)
    assert layer.get_params(regularizable=False) == [layer.b]


def test_conv_without_bias_and_nonlinearity():
    layer = Conv2DLayer((None, 1, 5, 5), 2, 3, b=None, nonlinearity=None)
    assert layer.b is None and layer.nonlinearity is nonlinearities.identity
    assert layer.get_params() == [layer.W]


def test_conv2d_groups_convolve_channel_groups_separately():
    x = RNG.randn(2, 4, 5, 5)
    layer = Conv2DLayer(InputLayer((None, 4, 5, 5)), 6, 3, num_groups=2, nonlinearity=None,
                        W=RNG.randn(6, 2, 3, 3))
    w = layer.W.get_value()
    expected = np.concatenate([np_correlate(x[:, :2], flip(w[:3])),
                               np_correlate(x[:, 2:], flip(w[3:]))], axis=1)
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="num_groups"):
        Conv2DLayer((None, 4, 5, 5), 6, 3, num_groups=3)


def test_conv_output_and_input_length():
    assert conv_output_length(13, 5, 3, "valid") == 3
    assert conv_output_length(13, 5, 3, 0) == 3
    assert conv_output_length(13, 5, 3, "full") == 6
    assert conv_output_length(13, 5, 3, "same") == 5
    assert conv_output_length(13, 5, 3, 2) == 5
    assert conv_output_length(None, 5, 3, 2) is None
    assert conv_input_length(2, 3, 1, "valid") == 4
    assert conv_input_length(6, 4, 1, 2) == 5
    assert conv_input_length(3, 3, 2, "same") == 5
    assert conv_input_length(3, 3, 2, "full") == 3
    for function in (conv_output_length, conv_input_length):
        with pytest.raises(ValueError, match="Invalid pad: "):
            function(13, 5, 3, "bogus")


def test_conv_layer_errors():
    with pytest.raises(ValueError, match="Expected 4 input dimensions"):
        BaseConvLayer((10, 20, 30), 1, 3, n=2)
    with pytest.raises(TypeError, match="iterable of int"):
        Conv2DLayer((1, 2, 3, 3), 16, 3, pad="bogus")
    with pytest.raises(NotImplementedError, match="requires odd filter size"):
        Conv2DLayer((1, 2, 3, 3), 16, 4, pad="same")
    with pytest.raises(NotImplementedError):
        BaseConvLayer((10, 20, 30), 1, 3).convolve(pt.tensor3())
    assert BaseConvLayer((10, 20, 30, 40, 50), 1, 3).n == 3


def np_transposed(x, w, stride, crop, output_size=None):
    """Scatter: y[b, f, i*s + k] += x[b, c, i] w[c, f, k], then crop both ends."""
    n = x.ndim - 2
    K = w.shape[2:]
    full = [(x.shape[2 + a] - 1) * stride[a] + K[a] for a in range(n)]
    y = np.zeros((x.shape[0], w.shape[1]) + tuple(f + 10 for f in full))
    for i in itertools.product(*(range(s) for s in x.shape[2:])):
        for k in itertools.product(*(range(s) for s in K)):
            pos = tuple(i[a] * stride[a] + k[a] for a in range(n))
            y[(slice(None), slice(None)) + pos] += x[(slice(None), slice(None)) + i] @ \
                w[(slice(None), slice(None)) + k]
    size = output_size or [full[a] - 2 * crop[a] for a in range(n)]
    return y[(slice(None), slice(None)) + tuple(slice(c, c + s) for c, s in zip(crop, size))]


@pytest.mark.parametrize("crop, stride, flip_filters", [
    (0, 1, True), (1, 2, True), ("full", 2, False), ("same", 3, True), ("valid", 1, False)])
def test_transposed_conv2d_matches_scatter(crop, stride, flip_filters):
    x = RNG.randn(2, 3, 4, 5)
    w = RNG.randn(3, 2, 3, 3)
    layer = TransposedConv2DLayer(InputLayer((None, 3, 4, 5)), 2, 3, stride=stride, crop=crop,
                                  W=w, b=None, nonlinearity=None, flip_filters=flip_filters)
    c = np_pad_amount(crop, 3)
    expected = np_transposed(x, w if flip_filters else flip(w), (stride,) * 2, (c, c))
    actual = run(layer, x)
    assert actual.shape == expected.shape == layer.output_shape[:0] + expected.shape
    assert layer.output_shape == (None,) + expected.shape[1:]
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-8)


def test_transposed_conv_is_the_transpose_of_conv():
    """<conv(x), y> == <x, conv^T(y)> for the same filters: the default transposed layer
    (flip_filters=False) is the transpose of the default convolution (flip_filters=True)."""
    x = RNG.randn(2, 3, 9, 8)
    w = RNG.randn(4, 3, 3, 3)
    conv = Conv2DLayer(InputLayer((None, 3, 9, 8)), 4, 3, stride=2, pad=1, W=w, b=None,
                       nonlinearity=None)
    y = RNG.randn(*run(conv, x).shape)
    transposed = TransposedConv2DLayer(InputLayer((None, 4) + y.shape[2:]), 3, 3, stride=2,
                                       crop=1, W=w, b=None, nonlinearity=None,
                                       output_size=(9, 8))
    assert transposed.output_shape == (None, 3, 9, 8)
    np.testing.assert_allclose(np.sum(run(conv, x) * y), np.sum(x * run(transposed, y)),
                               rtol=1e-8)


def test_transposed_conv_output_size_and_alias():
    assert Deconv2DLayer is TransposedConv2DLayer
    x = RNG.randn(2, 3, 4, 5)
    w = RNG.randn(3, 2, 2, 3)
    layer = TransposedConv2DLayer(InputLayer((None, 3, None, None)), 2, (2, 3), stride=(2, 3),
                                  output_size=(9, 16), W=w, b=None, nonlinearity=None,
                                  flip_filters=True)
    assert layer.output_shape == (None, 2, 9, 16)
    expected = np_transposed(x, w, (2, 3), (0, 0), output_size=(9, 16))
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6, atol=1e-8)
    symbolic = TransposedConv2DLayer(InputLayer((None, 3, 4, 5)), 2, (2, 3), stride=(2, 3),
                                     output_size=pytensor.shared(np.array([9, 16])), W=w,
                                     b=None, nonlinearity=None, flip_filters=True)
    assert symbolic.output_shape == (None, 2, None, None)
    np.testing.assert_allclose(run(symbolic, x), expected, rtol=1e-6, atol=1e-8)


def test_transposed_conv3d_shape_and_values():
    x = RNG.randn(1, 2, 3, 2, 3)
    w = RNG.randn(2, 3, 2, 2, 2)
    layer = TransposedConv3DLayer(InputLayer((None, 2, 3, 2, 3)), 3, 2, stride=2, W=w, b=None,
                                  nonlinearity=None, flip_filters=True)
    assert layer.W.get_value().shape == (2, 3, 2, 2, 2)
    expected = np_transposed(x, w, (2, 2, 2), (0, 0, 0))
    assert layer.output_shape == (None, 3, 6, 4, 6) == (None,) + expected.shape[1:]
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dilation", [1, 2, (3, 1)])
def test_dilated_conv2d_matches_numpy(dilation):
    x = RNG.randn(2, 3, 9, 8)
    w = RNG.randn(3, 4, 3, 3)  # (channels, filters, rows, columns)
    layer = DilatedConv2DLayer(InputLayer((None, 3, 9, 8)), 4, 3, dilation=dilation, W=w,
                               b=None, nonlinearity=None)
    expected = np_correlate(x, w.transpose(1, 0, 2, 3), dilation=dilation)
    assert layer.output_shape == (None,) + expected.shape[1:]
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6, atol=1e-8)


def test_dilated_conv2d_unsupported_settings():
    for pad in ("same", "full", 1):
        with pytest.raises(NotImplementedError, match="requires pad=0"):
            DilatedConv2DLayer((10, 20, 30, 40), 2, 3, pad=pad)
    with pytest.raises(NotImplementedError, match="requires flip_filters=False"):
        DilatedConv2DLayer((10, 20, 30, 40), 2, 3, flip_filters=True)


def test_theano_style_convolutions():
    x = RNG.randn(2, 3, 10)
    w = RNG.randn(4, 3, 3)
    expected = np_correlate(x, flip(w), pad=2)
    for function in (conv_ops.conv1d_sc, conv_ops.conv1d_mc0, conv_ops.conv1d_mc1,
                     conv_ops.conv1d_sd, conv_ops.conv1d_md, conv_ops.conv1d_unstrided):
        np.testing.assert_allclose(function(pt.as_tensor(x), pt.as_tensor(w),
                                            border_mode="full").eval(), expected, rtol=1e-6)
    # as Lasagne's, these three need a filter length that is a multiple of the stride
    for function in (conv_ops.conv1d_sd, conv_ops.conv1d_md, conv_ops.conv1d_unstrided):
        with pytest.raises(ValueError, match="multiple of the stride"):
            function(pt.as_tensor(x), pt.as_tensor(w), subsample=(2,))
        w4 = RNG.randn(4, 3, 4)
        np.testing.assert_allclose(
            function(pt.as_tensor(x), pt.as_tensor(w4), subsample=(2,)).eval(),
            np_correlate(x, flip(w4), stride=2), rtol=1e-6)
    x2 = RNG.randn(1, 2, 6, 5)
    w2 = RNG.randn(3, 2, 3, 3)
    np.testing.assert_allclose(
        conv_ops.conv2d(pt.as_tensor(x2), pt.as_tensor(w2), border_mode="half",
                        subsample=(2, 1), filter_flip=False).eval(),
        np_correlate(x2, w2, stride=(2, 1), pad=1), rtol=1e-6)


@pytest.mark.parametrize("stride, border_mode, flip_filters", [
    (1, "valid", True), (2, "valid", False), (1, "full", True), (3, 2, True)])
def test_conv1d_with_a_filter_length_known_only_at_run_time(stride, border_mode, flip_filters):
    # filters of unknown static shape and no filter_shape: PyTensor's convolve1d per channel
    x, w = pt.tensor3("x"), pt.tensor3("w")
    output = conv_ops.conv1d_sc(x, w, None, None, border_mode=border_mode,
                                subsample=(stride,), filter_flip=flip_filters)
    xv, wv = RNG.randn(2, 3, 12), RNG.randn(4, 3, 5)
    pad = {"valid": 0, "full": 4}.get(border_mode, border_mode)
    expected = np_correlate(xv, flip(wv) if flip_filters else wv, stride=stride, pad=pad)
    np.testing.assert_allclose(output.eval({x: xv, w: wv}), expected, rtol=1e-6, atol=1e-10)
    # (slicing up to its own length hides the filters' static length)
    verify_grad(lambda a, b: conv_ops.conv1d_sc(a, b[:, :, :b.shape[2]],
                                                border_mode=border_mode, subsample=(stride,),
                                                filter_flip=flip_filters),
                [xv[:1, :2, :8], wv[:2, :2, :3]], rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="filter length"):
        conv_ops.conv1d_sc(x, w, border_mode="half")


@pytest.mark.parametrize("stride, pad, dilation, groups", [(2, 1, 1, 1), (1, 0, 2, 2)])
def test_conv_gradients_by_finite_differences(stride, pad, dilation, groups):
    x = RNG.randn(2, 4, 6, 5)
    w = RNG.randn(4, 4 // groups, 3, 2)
    verify_grad(lambda a, b: conv_ops.conv_nd(a, b, (3, 2), stride, pad, dilation,
                                              flip_filters=True, num_groups=groups),
                [x, w], rng=np.random.RandomState(0))


def test_transposed_conv_gradient_by_finite_differences():
    x = RNG.randn(1, 2, 3, 4)
    layer = TransposedConv2DLayer(InputLayer((None, 2, 3, 4)), 3, 3, stride=2, crop=1,
                                  nonlinearity=None)

    def output(a, w):
        layer.W = w
        return layer.get_output_for(a)
    verify_grad(output, [x, RNG.randn(2, 3, 3, 3)], rng=np.random.RandomState(0))
