"""Normalization layers against NumPy: LRN, batch norm (training, inference, running
averages), standardization, instance and layer norm."""
import numpy as np
import pytensor
import pytest
from pytensor.gradient import verify_grad

from ntm.lasagne import nonlinearities
from ntm.lasagne.layers import (BatchNormLayer, BiasLayer, Conv2DLayer, DenseLayer, InputLayer,
                                LocalResponseNormalization2DLayer, NonlinearityLayer,
                                ScaleLayer, StandardizationLayer, batch_norm, get_all_layers,
                                get_all_params, get_output, instance_norm, layer_norm)

RNG = np.random.RandomState(5)


def test_local_response_normalization():
    x = RNG.randn(2, 7, 3, 4)
    l_in = InputLayer((None, 7, 3, 4))
    layer = LocalResponseNormalization2DLayer(l_in, alpha=1.5, k=2, beta=0.75, n=5)
    assert layer.get_params() == [] and layer.output_shape == (None, 7, 3, 4)
    expected = np.empty_like(x)
    for c in range(7):
        window = x[:, max(0, c - 2):c + 3]
        expected[:, c] = x[:, c] / (2 + 1.5 * (window ** 2).sum(axis=1)) ** 0.75
    np.testing.assert_allclose(get_output(layer).eval({l_in.input_var: x}), expected, rtol=1e-6)
    with pytest.raises(NotImplementedError, match="odd"):
        LocalResponseNormalization2DLayer(l_in, n=4)


def test_batch_norm_training_inference_and_averages():
    x = RNG.randn(16, 3, 4, 5) * 2 + 1
    l_in = InputLayer((None, 3, 4, 5))
    layer = BatchNormLayer(l_in, alpha=0.1, beta=RNG.randn(3), gamma=RNG.rand(3) + 0.5)
    assert layer.axes == (0, 2, 3)
    assert set(layer.get_params(trainable=True)) == {layer.beta, layer.gamma}
    assert layer.get_params(regularizable=True) == [layer.gamma]
    beta, gamma = layer.beta.get_value(), layer.gamma.get_value()
    mean = x.mean(axis=(0, 2, 3))
    inv_std = 1 / np.sqrt(x.var(axis=(0, 2, 3)) + 1e-4)
    train = pytensor.function([l_in.input_var], get_output(layer))
    expected = ((x - mean[None, :, None, None]) * (gamma * inv_std)[None, :, None, None]
                + beta[None, :, None, None])
    np.testing.assert_allclose(train(x), expected, rtol=1e-6)
    # one training call moved the running averages
    np.testing.assert_allclose(layer.mean.get_value(), 0.1 * mean, rtol=1e-6)
    np.testing.assert_allclose(layer.inv_std.get_value(), 0.9 + 0.1 * inv_std, rtol=1e-6)
    test = pytensor.function([l_in.input_var], get_output(layer, deterministic=True))
    m, s = layer.mean.get_value(), layer.inv_std.get_value()
    expected = ((x - m[None, :, None, None]) * (gamma * s)[None, :, None, None]
                + beta[None, :, None, None])
    np.testing.assert_allclose(test(x), expected, rtol=1e-6)
    np.testing.assert_allclose(layer.mean.get_value(), m)  # inference leaves them
    with pytest.raises(ValueError, match="needs specified input sizes"):
        BatchNormLayer(InputLayer((None, None, 4)))


def test_batch_norm_gradient():
    x = RNG.randn(6, 4)
    layer = BatchNormLayer(InputLayer((None, 4)))
    verify_grad(lambda a: layer.get_output_for(a, batch_norm_update_averages=False), [x],
                rng=np.random.RandomState(0))


def test_batch_norm_macro():
    l_in = InputLayer((None, 3, 6, 6))
    conv = Conv2DLayer(l_in, 4, 3, name="conv")
    out = batch_norm(conv)
    assert conv.b is None and conv.nonlinearity is nonlinearities.identity
    assert [type(l) for l in get_all_layers(out)] == [InputLayer, Conv2DLayer, BatchNormLayer,
                                                     NonlinearityLayer]
    assert out.nonlinearity is nonlinearities.rectify
    assert out.input_layer.name == "conv_bn" and out.name == "conv_bn_nonlin"
    assert len(get_all_params(out)) == 5  # W, beta, gamma, mean, inv_std


def test_standardization_layer():
    x = RNG.randn(3, 2, 4, 5)
    l_in = InputLayer((None, 2, 4, 5))
    spatial = StandardizationLayer(l_in)
    features = StandardizationLayer(l_in, axes="features", epsilon=0)
    for layer, axes in [(spatial, (2, 3)), (features, (1, 2, 3))]:
        eps = layer.epsilon
        expected = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(
            x.var(axis=axes, keepdims=True) + eps)
        np.testing.assert_allclose(get_output(layer).eval({l_in.input_var: x}), expected,
                                   rtol=1e-6)
    assert StandardizationLayer(l_in, axes=1).axes == (1,)


def test_instance_and_layer_norm_macros():
    l_in = InputLayer((None, 3, 5, 5))
    out = instance_norm(Conv2DLayer(l_in, 4, 3, name="c"))
    assert [type(l) for l in get_all_layers(out)] == [
        InputLayer, Conv2DLayer, StandardizationLayer, ScaleLayer, BiasLayer, NonlinearityLayer]
    assert out.input_layer.input_layer.input_layer.axes == (2, 3)
    out = layer_norm(DenseLayer(InputLayer((None, 7)), 6))
    assert [type(l) for l in get_all_layers(out)] == [
        InputLayer, DenseLayer, StandardizationLayer, ScaleLayer, BiasLayer, NonlinearityLayer]
    x = RNG.randn(4, 7)
    dense = get_all_layers(out)[1]
    h = x @ dense.W.get_value()
    expected = np.maximum((h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True)
                                                                    + 1e-4), 0)
    l_in = get_all_layers(out)[0]
    np.testing.assert_allclose(get_output(out).eval({l_in.input_var: x}), expected, rtol=1e-6)
    bare = instance_norm(Conv2DLayer(InputLayer((None, 3, 5, 5)), 4, 3), learn_scale=False,
                         learn_bias=False)
    assert [type(l) for l in get_all_layers(bare)][2:] == [StandardizationLayer,
                                                          NonlinearityLayer]


def test_batch_norm_updates_averages_for_an_input_of_fixed_shape():
    # a constant input has a static shape the running averages' variables do not have
    x = RNG.randn(6, 4, 5) + 2.0
    layer = BatchNormLayer((6, 4, 5), alpha=0.25)
    mean0, inv_std0 = layer.mean.get_value(), layer.inv_std.get_value()
    out = layer.get_output_for(pytensor.tensor.constant(x)).eval()
    batch_mean = x.mean(axis=(0, 2))
    batch_inv_std = 1 / np.sqrt(x.var(axis=(0, 2)) + layer.epsilon)
    np.testing.assert_allclose(layer.mean.get_value(), 0.75 * mean0 + 0.25 * batch_mean)
    np.testing.assert_allclose(layer.inv_std.get_value(),
                               0.75 * inv_std0 + 0.25 * batch_inv_std)
    np.testing.assert_allclose(out, (x - batch_mean[None, :, None])
                               * batch_inv_std[None, :, None], atol=1e-10)
