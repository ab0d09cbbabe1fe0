"""Penalties and their application to layers and networks."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne.regularization import (apply_penalty, l1, l2, regularize_layer_params,
                                        regularize_layer_params_weighted,
                                        regularize_network_params)

A = np.array([[1.0, -2.0], [0.5, 3.0]])
B = np.array([-1.5, 4.0, 0.25])


def _value(expr):
    return pytensor.function([], expr)()


def test_l1_and_l2():
    a = pytensor.shared(A)
    np.testing.assert_allclose(_value(l1(a)), np.abs(A).sum())
    np.testing.assert_allclose(_value(l2(a)), (A ** 2).sum())  # no 1/2, no square root


def test_apply_penalty_to_tensor_and_list():
    a, b = pytensor.shared(A), pytensor.shared(B)
    # a shared vector is iterable over its elements; it must still count as one tensor
    np.testing.assert_allclose(_value(apply_penalty(b, l1)), np.abs(B).sum())
    np.testing.assert_allclose(_value(apply_penalty([a, b], l2)),
                               (A ** 2).sum() + (B ** 2).sum())
    assert apply_penalty([], l2) == 0


def test_apply_penalty_passes_kwargs():
    def scaled_l2(x, scale):
        return scale * pt.sum(x ** 2)

    b = pytensor.shared(B)
    np.testing.assert_allclose(_value(apply_penalty([b], scaled_l2, scale=3.0)),
                               3.0 * (B ** 2).sum())
    with pytest.raises(TypeError, match="penalty must be callable"):
        apply_penalty([b], "l2")


try:
    from ntm.lasagne import layers
    HAVE_LAYERS = hasattr(layers, "DenseLayer") and hasattr(layers, "InputLayer")
except ImportError:
    HAVE_LAYERS = False
needs_layers = pytest.mark.skipif(not HAVE_LAYERS, reason="ntm.lasagne.layers unavailable")


def _network():
    l_in = layers.InputLayer((None, 3))
    l_hid = layers.DenseLayer(l_in, 4, b=np.full(4, 2.0, dtype=pytensor.config.floatX))
    l_out = layers.DenseLayer(l_hid, 2, b=np.full(2, -1.0, dtype=pytensor.config.floatX))
    return l_in, l_hid, l_out


@needs_layers
def test_regularize_network_params_l2_covers_weights_only():
    _, l_hid, l_out = _network()
    W1, W2 = l_hid.W.get_value(), l_out.W.get_value()
    expected = (W1 ** 2).sum() + (W2 ** 2).sum()
    np.testing.assert_allclose(_value(regularize_network_params(l_out, l2)), expected)
    # biases (nonzero here) only count when the tag filter is lifted
    everything = regularize_network_params(l_out, l2, tags={})
    np.testing.assert_allclose(_value(everything), expected + 4 * 4.0 + 2 * 1.0)


@needs_layers
def test_regularize_layer_params_single_and_list():
    _, l_hid, l_out = _network()
    W1, W2 = l_hid.W.get_value(), l_out.W.get_value()
    np.testing.assert_allclose(_value(regularize_layer_params(l_out, l1)), np.abs(W2).sum())
    np.testing.assert_allclose(_value(regularize_layer_params([l_hid, l_out], l1)),
                               np.abs(W1).sum() + np.abs(W2).sum())
    with pytest.raises(TypeError, match="layer must be a Layer"):
        regularize_layer_params([l_hid, "dense"], l1)


@needs_layers
def test_regularize_layer_params_weighted():
    _, l_hid, l_out = _network()
    W1, W2 = l_hid.W.get_value(), l_out.W.get_value()
    penalty = regularize_layer_params_weighted({l_hid: 0.1, l_out: 0.5}, l2)
    np.testing.assert_allclose(_value(penalty), 0.1 * (W1 ** 2).sum() + 0.5 * (W2 ** 2).sum())
    with pytest.raises(TypeError, match="layers must be a dict"):
        regularize_layer_params_weighted([l_hid, l_out], l2)


@needs_layers
def test_penalty_gradient_is_weight_decay():
    _, l_hid, l_out = _network()
    penalty = regularize_network_params(l_out, l2)
    grad = pytensor.function([], pytensor.grad(penalty, l_out.W))()
    np.testing.assert_allclose(grad, 2 * l_out.W.get_value())
