"""Pooling layers: values against NumPy windows, shapes, errors, and gradients."""
import itertools

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from ntm.lasagne.layers import (FeaturePoolLayer, FeatureWTALayer, GlobalPoolLayer, InputLayer,
                                MaxPool1DLayer, MaxPool2DLayer, MaxPool3DLayer, Pool1DLayer,
                                Pool2DLayer, Pool3DLayer, SpatialPyramidPoolingLayer,
                                Upscale1DLayer, Upscale2DLayer, Upscale3DLayer, get_output,
                                pool_2d)
from ntm.lasagne.layers.pool import pool_nd, pool_output_length

RNG = np.random.RandomState(3)


def np_pool(x, size, stride, pad, ignore_border, mode):
    """Each output entry from an explicit window of the input (clipped to the padded input)."""
    n = len(size)
    lead = x.ndim - n
    lengths = x.shape[lead:]
    out = [pool_output_length(lengths[a], size[a], stride[a], pad[a], ignore_border)
           for a in range(n)]
    y = np.zeros(x.shape[:lead] + tuple(out))
    for o in itertools.product(*map(range, out)):
        # window in padded coordinates, then clipped to the real input
        lo = [o[a] * stride[a] - pad[a] for a in range(n)]
        hi = [min(lo[a] + size[a], lengths[a] + pad[a]) for a in range(n)]
        real = tuple(slice(max(lo[a], 0), min(hi[a], lengths[a])) for a in range(n))
        window = x[(Ellipsis,) + real]
        axes = tuple(range(lead, x.ndim))
        if mode == "max":
            value = window.max(axis=axes)
        elif mode == "average_exc_pad":
            value = window.mean(axis=axes)
        else:
            area = np.prod([hi[a] - lo[a] for a in range(n)])
            value = window.sum(axis=axes) / area
        y[(Ellipsis,) + o] = value
    return y


CASES = [(2, None, 0, True, "max"), (3, 1, 0, False, "max"), (2, 3, 0, False, "max"),
         (3, 2, 1, True, "max"), (3, 1, 1, True, "average_inc_pad"),
         (3, 2, 1, True, "average_exc_pad"), (2, 1, 0, False, "average_exc_pad")]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("size, stride, pad, ignore_border, mode", CASES)
def test_pool_layers_match_numpy(n, size, stride, pad, ignore_border, mode):
    layer_class = {1: Pool1DLayer, 2: Pool2DLayer, 3: Pool3DLayer}[n]
    spatial = (7, 6, 5)[:n]
    x = RNG.randn(2, 3, *spatial)
    for shape in [(2, 3) + spatial, (None, 3) + (None,) * n]:
        l_in = InputLayer(shape)
        layer = layer_class(l_in, size, stride=stride, pad=pad, ignore_border=ignore_border,
                            mode=mode)
        expected = np_pool(x, (size,) * n, (stride or size,) * n, (pad,) * n, ignore_border,
                           mode)
        actual = get_output(layer).eval({l_in.input_var: x})
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-8)
        if shape[0] is not None:
            assert layer.output_shape == expected.shape


def test_max_pool_layers_are_max_mode():
    for cls, shape in [(MaxPool1DLayer, (1, 2, 8)), (MaxPool2DLayer, (1, 2, 8, 8)),
                       (MaxPool3DLayer, (1, 2, 8, 8, 8))]:
        layer = cls(InputLayer(shape), 2)
        assert layer.mode == "max"
        assert layer.output_shape == shape[:2] + (4,) * (len(shape) - 2)
    layer = MaxPool2DLayer(InputLayer((None, 64, 24, 24)), (2, 2))
    assert layer.get_output_shape_for((32, 64, 24, 24)) == (32, 64, 12, 12)


def test_pool_errors():
    with pytest.raises(ValueError, match="Expected 4 input dimensions"):
        Pool2DLayer(InputLayer((1, 2, 3)), 2)
    with pytest.raises(ValueError, match="mode"):
        Pool2DLayer(InputLayer((1, 2, 3, 4)), 2, mode="median")
    with pytest.raises(NotImplementedError, match="ignore_border"):
        pool_nd(pt.tensor4(), (2, 2), pad=1, ignore_border=False)


def test_pool_2d_theano_arguments():
    x = RNG.randn(2, 3, 7, 6)
    actual = pool_2d(pt.as_tensor(x), ws=(3, 2), stride=(2, 2), ignore_border=True,
                     mode="average_exc_pad").eval()
    np.testing.assert_allclose(actual, np_pool(x, (3, 2), (2, 2), (0, 0), True,
                                               "average_exc_pad"), rtol=1e-6)
    np.testing.assert_allclose(pool_2d(pt.as_tensor(x), ds=(2, 2)).eval(),
                               np_pool(x, (2, 2), (2, 2), (0, 0), False, "max"), rtol=1e-6)


def test_max_pool_gradient_goes_to_the_maxima():
    x = RNG.randn(1, 1, 4, 4)
    X = pt.tensor4()
    grad = pt.grad(pool_nd(X, (2, 2)).sum(), X).eval({X: x})
    for i, j in itertools.product(range(2), range(2)):
        block = x[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        expected = (block == block.max()).astype(float)
        np.testing.assert_array_equal(grad[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2], expected)


@pytest.mark.parametrize("mode", ["max", "average_inc_pad", "average_exc_pad"])
def test_pool_gradients_by_finite_differences(mode):
    x = RNG.randn(2, 2, 5, 4)
    verify_grad(lambda a: pool_nd(a, (3, 2), (2, 1), (1, 0), True, mode), [x],
                rng=np.random.RandomState(0))


@pytest.mark.parametrize("mode", ["repeat", "dilate"])
def test_upscale_layers(mode):
    x = RNG.randn(2, 3, 4, 5)
    l_in = InputLayer((None, 3, 4, 5))
    layer = Upscale2DLayer(l_in, (2, 3), mode=mode)
    assert layer.output_shape == (None, 3, 8, 15)
    actual = get_output(layer).eval({l_in.input_var: x})
    if mode == "repeat":
        expected = np.repeat(np.repeat(x, 2, axis=2), 3, axis=3)
    else:
        expected = np.zeros((2, 3, 8, 15))
        expected[:, :, ::2, ::3] = x
    np.testing.assert_array_equal(actual, expected)
    x1 = RNG.randn(2, 3, 4)
    l1 = InputLayer((None, 3, 4))
    np.testing.assert_array_equal(get_output(Upscale1DLayer(l1, 2)).eval({l1.input_var: x1}),
                                  np.repeat(x1, 2, axis=2))
    assert Upscale3DLayer(InputLayer((1, 2, 3, 4, 5)), 2).output_shape == (1, 2, 6, 8, 10)
    with pytest.raises(ValueError, match="Scale factor"):
        Upscale2DLayer(l_in, 0)
    with pytest.raises(ValueError, match="mode"):
        Upscale2DLayer(l_in, 2, mode="bilinear")


def test_feature_pool_and_wta():
    x = RNG.randn(2, 6, 3)
    l_in = InputLayer((None, 6, 3))
    maxout = FeaturePoolLayer(l_in, 3)
    assert maxout.output_shape == (None, 2, 3)
    np.testing.assert_allclose(get_output(maxout).eval({l_in.input_var: x}),
                               x.reshape(2, 2, 3, 3).max(axis=2))
    mean = FeaturePoolLayer(l_in, 2, axis=1, pool_function=pt.mean)
    np.testing.assert_allclose(get_output(mean).eval({l_in.input_var: x}),
                               x.reshape(2, 3, 2, 3).mean(axis=2))
    wta = FeatureWTALayer(l_in, 3)
    assert wta.output_shape == (None, 6, 3)
    grouped = x.reshape(2, 2, 3, 3)
    expected = (grouped * (grouped == grouped.max(axis=2, keepdims=True))).reshape(2, 6, 3)
    np.testing.assert_allclose(get_output(wta).eval({l_in.input_var: x}), expected)
    for cls in (FeaturePoolLayer, FeatureWTALayer):
        with pytest.raises(ValueError, match="not a multiple"):
            cls(l_in, 4)


def test_global_pool():
    x = RNG.randn(2, 3, 4, 5)
    l_in = InputLayer((None, 3, 4, 5))
    layer = GlobalPoolLayer(l_in)
    assert layer.output_shape == (None, 3)
    np.testing.assert_allclose(get_output(layer).eval({l_in.input_var: x}), x.mean(axis=(2, 3)))
    layer = GlobalPoolLayer(l_in, pt.max)
    np.testing.assert_allclose(get_output(layer).eval({l_in.input_var: x}), x.max(axis=(2, 3)))


@pytest.mark.parametrize("implementation", ["fast", "kaiming"])
def test_spatial_pyramid_pooling(implementation):
    x = RNG.randn(2, 3, 8, 8)
    l_in = InputLayer((None, 3, None, None))
    layer = SpatialPyramidPoolingLayer(l_in, [4, 2, 1], implementation=implementation)
    assert layer.output_shape == (None, 3, 21)
    actual = get_output(layer).eval({l_in.input_var: x})
    expected = np.concatenate([np_pool(x, (8 // d,) * 2, (8 // d,) * 2, (0, 0), True,
                                       "max").reshape(2, 3, -1) for d in (4, 2, 1)], axis=2)
    np.testing.assert_allclose(actual, expected)
    # any input size gives the same number of features
    y = RNG.randn(1, 3, 11, 7)
    assert get_output(layer).eval({l_in.input_var: y}).shape == (1, 3, 21)
    with pytest.raises(ValueError, match="Expected 4 input dimensions"):
        SpatialPyramidPoolingLayer(InputLayer((1, 2, 3)))


@pytest.mark.parametrize("mode, reduce", [("max", np.max), ("average_exc_pad", np.mean)])
def test_spatial_pyramid_pooling_kaiming_bins(mode, reduce):
    # sizes not divisible by the grid: bin i spans floor(i n / d) .. ceil((i + 1) n / d) - 1
    x = RNG.randn(2, 3, 17, 13)
    layer = SpatialPyramidPoolingLayer(InputLayer((None, 3, None, None)), [3, 2],
                                       mode=mode, implementation="kaiming")
    expected = []
    for d in (3, 2):
        for i in range(d):
            for j in range(d):
                rows = slice(i * 17 // d, -(-(i + 1) * 17 // d))
                cols = slice(j * 13 // d, -(-(j + 1) * 13 // d))
                expected.append(reduce(x[:, :, rows, cols], axis=(2, 3)))
    np.testing.assert_allclose(layer.get_output_for(pt.as_tensor_variable(x)).eval(),
                               np.stack(expected, axis=2))
    with pytest.raises(ValueError, match="Mode must be either 'max'"):
        SpatialPyramidPoolingLayer(InputLayer((None, 3, 4, 4)), mode="other")
