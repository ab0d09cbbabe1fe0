"""Dropout and Gaussian noise: masks, rescaling, shared axes, determinism and reproducibility."""
import numpy as np
import pytensor
import pytest

from ntm.lasagne import random
from ntm.lasagne.layers import (DropoutLayer, GaussianNoiseLayer, InputLayer, dropout,
                                dropout_channels, dropout_locations, get_output,
                                spatial_dropout)


def compiled(layer, **kwargs):
    return pytensor.function([layer.input_layer.input_var], get_output(layer, **kwargs))


def test_dropout_zeroes_and_rescales():
    layer = DropoutLayer(InputLayer((None, 100, 100)), p=0.3)
    f = compiled(layer)
    x = np.ones((2, 100, 100))
    out = f(x)
    assert set(np.unique(out)) == {0.0, 1 / 0.7}
    assert abs((out == 0).mean() - 0.3) < 0.02
    assert abs(out.mean() - 1) < 0.03
    # a new mask on every call
    assert (f(x) != out).any()


def test_dropout_without_rescale_and_deterministic():
    l_in = InputLayer((None, 50, 50))
    x = np.random.RandomState(0).rand(2, 50, 50) + 1
    out = compiled(DropoutLayer(l_in, p=0.5, rescale=False))(x)
    kept = out != 0
    np.testing.assert_array_equal(out[kept], x[kept])
    np.testing.assert_array_equal(compiled(DropoutLayer(l_in, p=0.5), deterministic=True)(x), x)
    np.testing.assert_array_equal(compiled(DropoutLayer(l_in, p=0))(x), x)


def test_dropout_shared_axes_helpers():
    x = np.ones((4, 8, 5, 6))
    l_in = InputLayer((None, 8, 5, 6))
    for make in (dropout_channels, spatial_dropout):
        layer = make(l_in, p=0.5)
        assert layer.shared_axes == (2, 3)
        out = compiled(layer)(x)
        # each channel is kept or dropped whole
        assert (out.std(axis=(2, 3)) == 0).all()
        assert 0 < (out[:, :, 0, 0] == 0).mean() < 1
    layer = dropout_locations(l_in, p=0.5)
    assert layer.shared_axes == (1,)
    out = compiled(layer)(x)
    assert (out.std(axis=1) == 0).all()
    assert dropout is DropoutLayer


def test_dropout_is_reproducible_with_set_rng():
    def draw():
        random.set_rng(np.random.RandomState(123))
        return compiled(DropoutLayer(InputLayer((None, 30)), p=0.5))(np.ones((3, 30)))
    try:
        np.testing.assert_array_equal(draw(), draw())
    finally:
        random.set_rng(np.random)


def test_gaussian_noise():
    l_in = InputLayer((None, 200, 200))
    layer = GaussianNoiseLayer(l_in, sigma=0.5)
    x = np.full((2, 200, 200), 3.0)
    out = compiled(layer)(x)
    noise = out - x
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.5) < 0.01
    np.testing.assert_array_equal(compiled(layer, deterministic=True)(x), x)
    np.testing.assert_array_equal(compiled(GaussianNoiseLayer(l_in, sigma=0))(x), x)


@pytest.mark.parametrize("cls", [DropoutLayer, GaussianNoiseLayer])
def test_noise_layers_keep_shape(cls):
    layer = cls(InputLayer((None, 3, 4)))
    assert layer.output_shape == (None, 3, 4)
    assert layer.get_params() == []
