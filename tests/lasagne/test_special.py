"""Special layers: bias, scale, standardize, inverse, PReLU, RReLU, spatial transformer."""
import numpy as np
import pytensor
import pytest
from pytensor.gradient import verify_grad

from ntm.lasagne import nonlinearities
from ntm.lasagne.layers import (BiasLayer, Conv2DLayer, DenseLayer, InputLayer, InverseLayer,
                                MaxPool2DLayer, NonlinearityLayer, ParametricRectifierLayer,
                                RandomizedRectifierLayer, ScaleLayer, TransformerLayer,
                                get_output, prelu, rrelu, standardize)
from ntm.lasagne.layers import special

RNG = np.random.RandomState(9)


def run(layer, x):
    return get_output(layer).eval({layer.input_layer.input_var: x})


def test_nonlinearity_layer_is_importable_from_special():
    assert special.NonlinearityLayer is NonlinearityLayer


def test_bias_and_scale_layers():
    x = RNG.randn(2, 3, 4)
    l_in = InputLayer((None, 3, 4))
    bias = BiasLayer(l_in, b=RNG.randn(3))
    assert bias.b.get_value().shape == (3,) and bias.get_params(regularizable=True) == []
    np.testing.assert_allclose(run(bias, x), x + bias.b.get_value()[None, :, None])
    bias = BiasLayer(l_in, b=RNG.randn(3, 4), shared_axes=0)
    np.testing.assert_allclose(run(bias, x), x + bias.b.get_value()[None])
    assert BiasLayer(l_in, b=None).get_params() == []
    scale = ScaleLayer(l_in, scales=RNG.randn(4), shared_axes=(0, 1))
    np.testing.assert_allclose(run(scale, x), x * scale.scales.get_value()[None, None])
    with pytest.raises(ValueError, match="specified input sizes"):
        BiasLayer(InputLayer((None, None)))


def test_standardize():
    x = RNG.randn(5, 3)
    offset, scale = x.mean(0), x.std(0)
    layer = standardize(InputLayer((None, 3)), offset, scale)
    np.testing.assert_allclose(get_output(layer).eval(
        {layer.input_layer.input_layer.input_var: x}), (x - offset) / scale, rtol=1e-6)
    assert layer.get_params(trainable=True) == []
    assert layer.input_layer.get_params(trainable=True) == []


def test_inverse_layer_of_dense_conv_and_pool():
    l_in = InputLayer((2, 5))
    dense = DenseLayer(l_in, 3, nonlinearity=None, b=None)
    inverse = InverseLayer(dense, dense)
    assert inverse.output_shape == (2, 5)
    x = RNG.randn(2, 5)
    np.testing.assert_allclose(get_output(inverse).eval({l_in.input_var: x}),
                               (x @ dense.W.get_value()) @ dense.W.get_value().T, rtol=1e-6)
    l_img = InputLayer((1, 1, 4, 4))
    pool = MaxPool2DLayer(l_img, 2)
    unpool = InverseLayer(pool, pool)
    img = RNG.randn(1, 1, 4, 4)
    out = get_output(unpool).eval({l_img.input_var: img})
    blocks = img.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    assert (out != 0).sum() == 4
    np.testing.assert_allclose(np.sort(out[out != 0]), np.sort(blocks.max(1) ** 1))
    conv = Conv2DLayer(l_img, 2, 3, nonlinearity=None)
    assert InverseLayer(conv, conv).output_shape == (1, 1, 4, 4)


def test_parametric_rectifier():
    x = RNG.randn(2, 3, 4)
    l_in = InputLayer((None, 3, 4))
    layer = ParametricRectifierLayer(l_in, alpha=RNG.rand(3))
    alpha = layer.alpha.get_value()[None, :, None]
    np.testing.assert_allclose(run(layer, x), np.where(x > 0, x, alpha * x))
    assert ParametricRectifierLayer(l_in, shared_axes="all").alpha.get_value().shape == ()
    assert layer.get_params(regularizable=True) == []
    verify_grad(lambda a: layer.get_output_for(a), [x], rng=np.random.RandomState(0))
    dense = DenseLayer(InputLayer((None, 4)), 3, name="fc")
    out = prelu(dense)
    assert dense.nonlinearity is nonlinearities.identity
    assert isinstance(out, ParametricRectifierLayer) and out.name == "fc_prelu"


def test_randomized_rectifier():
    l_in = InputLayer((None, 50, 40))
    layer = RandomizedRectifierLayer(l_in, lower=0.2, upper=0.6)
    x = -np.ones((2, 50, 40))
    f = pytensor.function([l_in.input_var], get_output(layer))
    slopes = -f(x)
    assert slopes.min() >= 0.2 and slopes.max() <= 0.6 and slopes.std() > 0.05
    # one slope per channel, shared over the other axes (shared_axes 'auto' = (0, 2))
    assert (np.ptp(slopes, axis=(0, 2)) == 0).all()
    np.testing.assert_allclose(f(-x), -x)
    det = get_output(layer, deterministic=True).eval({l_in.input_var: x})
    np.testing.assert_allclose(det, -0.4 * np.ones_like(x))
    with pytest.raises(ValueError):
        RandomizedRectifierLayer(l_in, lower=0.7, upper=0.3)
    assert isinstance(rrelu(DenseLayer(InputLayer((None, 4)), 3)), RandomizedRectifierLayer)


def test_transformer_identity_shift_and_downsample():
    img = RNG.randn(2, 3, 5, 6)
    l_img = InputLayer((None, 3, 5, 6))
    l_loc = InputLayer((None, 6))
    layer = TransformerLayer(l_img, l_loc)
    assert layer.output_shape == (None, 3, 5, 6)
    identity = np.tile([1, 0, 0, 0, 1, 0], (2, 1)).astype(float)
    f = pytensor.function([l_img.input_var, l_loc.input_var], get_output(layer))
    np.testing.assert_allclose(f(img, identity), img, atol=1e-10)
    # x_s = x_t + 2 / (width - 1) moves the sampling point one pixel right
    shift = identity.copy()
    shift[:, 2] = 2 / 5
    shifted = f(img, shift)
    np.testing.assert_allclose(shifted[..., :-1], img[..., 1:], atol=1e-10)
    np.testing.assert_allclose(shifted[..., -1], img[..., -1], atol=1e-10)  # nearest border
    half = TransformerLayer(l_img, l_loc, downsample_factor=2)
    assert half.output_shape == (None, 3, 2, 3)
    with pytest.raises(ValueError, match="localization network"):
        TransformerLayer(l_img, InputLayer((None, 4)))
    theta = identity + RNG.randn(2, 6) * 0.1
    verify_grad(lambda a, t: layer.get_output_for([a, t]), [img, theta],
                rng=np.random.RandomState(0))
