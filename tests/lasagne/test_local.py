"""LocallyConnected2DLayer against a NumPy loop with a filter per output position."""
import itertools

import numpy as np
import pytest
from pytensor.gradient import verify_grad

from ntm.lasagne.layers import InputLayer, LocallyConnected2DLayer, get_output

RNG = np.random.RandomState(11)


def np_local(x, W, flip, channelwise):
    batch, channels, rows, cols = x.shape
    fr, fc = W.shape[-4:-2]
    padded = np.pad(x, [(0, 0), (0, 0), (fr // 2, fr // 2), (fc // 2, fc // 2)])
    out = np.zeros((batch, W.shape[0], rows, cols))
    for i, j in itertools.product(range(rows), range(cols)):
        patch = padded[:, :, i:i + fr, j:j + fc]
        w = W[..., i, j]
        if flip:
            w = w[..., ::-1, ::-1]
        if channelwise:
            out[:, :, i, j] = np.einsum("bfxy,fxy->bf", patch, w)
        else:
            out[:, :, i, j] = np.einsum("bcxy,fcxy->bf", patch, w)
    return out


@pytest.mark.parametrize("flip, channelwise, filter_size", [
    (True, False, (3, 3)), (False, False, (3, 5)), (True, True, (3, 3)), (False, True, (5, 3))])
def test_locally_connected_matches_numpy(flip, channelwise, filter_size):
    x = RNG.randn(2, 3, 5, 4)
    l_in = InputLayer((None, 3, 5, 4))
    layer = LocallyConnected2DLayer(l_in, 3, filter_size, flip_filters=flip,
                                    channelwise=channelwise, nonlinearity=None, b=None)
    expected_shape = ((3,) if channelwise else (3, 3)) + filter_size + (5, 4)
    assert layer.W.get_value().shape == expected_shape
    assert layer.output_shape == (None, 3, 5, 4)
    expected = np_local(x, layer.W.get_value(), flip, channelwise)
    np.testing.assert_allclose(get_output(layer).eval({l_in.input_var: x}), expected,
                               rtol=1e-6, atol=1e-8)


def test_locally_connected_gradient_and_errors():
    l_in = InputLayer((None, 2, 4, 4))
    layer = LocallyConnected2DLayer(l_in, 2, 3, nonlinearity=None)
    verify_grad(lambda a: layer.get_output_for(a), [RNG.randn(2, 2, 4, 4)],
                rng=np.random.RandomState(0))
    for pad in ("valid", "full", 1):
        with pytest.raises(NotImplementedError, match="requires pad='same'"):
            LocallyConnected2DLayer(l_in, 2, 3, pad=pad)
    with pytest.raises(NotImplementedError, match=r"requires stride=1 / \(1, 1\)"):
        LocallyConnected2DLayer(l_in, 2, 3, stride=2)
    with pytest.raises(ValueError, match="num_filters and the number of input channels"):
        LocallyConnected2DLayer(l_in, 4, 3, channelwise=True)
    with pytest.raises(ValueError, match="requires a fixed input shape"):
        LocallyConnected2DLayer(InputLayer((10, None, 4, 4)), 4, 3, channelwise=True)
