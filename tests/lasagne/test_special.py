"""Special layers: bias, scale, standardize, inverse, PReLU, RReLU, spatial transformers."""
import numpy as np
import pytensor
import pytest
from pytensor.gradient import verify_grad

from ntm.lasagne import nonlinearities
from ntm.lasagne.layers import (BiasLayer, Conv2DLayer, DenseLayer, InputLayer, InverseLayer,
                                MaxPool2DLayer, NonlinearityLayer, ParametricRectifierLayer,
                                RandomizedRectifierLayer, ScaleLayer, TPSTransformerLayer,
                                TransformerLayer, get_output, prelu, rrelu, standardize)
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


# thin-plate-spline transformer ---------------------------------------------------------------

def _numpy_bilinear_nearest(image, x, y):
    """Sample ``image`` (channels, height, width) at normalized points, clamping indices."""
    channels, height, width = image.shape
    px, py = (x + 1) / 2 * (width - 1), (y + 1) / 2 * (height - 1)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    out = np.zeros((channels, len(px)))
    for dx in (0, 1):
        for dy in (0, 1):
            weight = (1 - np.abs(px - (x0 + dx))) * (1 - np.abs(py - (y0 + dy)))
            xi, yi = np.clip(x0 + dx, 0, width - 1), np.clip(y0 + dy, 0, height - 1)
            out += weight * image[:, yi, xi]
    return out


def _numpy_tps(images, offsets, control_points, out_height, out_width):
    """The thin-plate spline through the moved control points, solved per example with
    ``numpy.linalg.solve`` and evaluated point by point."""
    side = int(np.sqrt(control_points))
    grid = np.linspace(-1, 1, side)
    centres = np.array([(x, y) for y in grid for x in grid])  # x varies fastest

    def radial(p, q):
        r2 = float(np.sum((np.asarray(p) - np.asarray(q)) ** 2))
        return 0.0 if r2 == 0 else r2 * np.log(r2)

    n = control_points
    system = np.zeros((n + 3, n + 3))
    for i in range(n):
        for j in range(n):
            system[i, j] = radial(centres[i], centres[j])
        system[i, n:] = system[n:, i] = [1, centres[i][0], centres[i][1]]
    out_points = [(x, y) for y in np.linspace(-1, 1, out_height)
                  for x in np.linspace(-1, 1, out_width)]
    outputs = []
    for image, offset in zip(images, offsets):
        destinations = centres + np.stack([offset[:n], offset[n:]], axis=1)
        coefficients = np.linalg.solve(system, np.vstack([destinations, np.zeros((3, 2))]))
        mapped = np.array([[radial(p, c) for c in centres] + [1, p[0], p[1]]
                           for p in out_points]) @ coefficients
        sampled = _numpy_bilinear_nearest(image, mapped[:, 0], mapped[:, 1])
        outputs.append(sampled.reshape(image.shape[0], out_height, out_width))
    return np.array(outputs)


@pytest.mark.parametrize("control_points, downsample, precompute", [
    (9, 1, "auto"), (16, 1, False), (16, 2, True), (4, (1, 2), "auto")])
def test_tps_transformer_against_numpy(control_points, downsample, precompute):
    images = RNG.rand(2, 2, 7, 9)
    offsets = RNG.uniform(-0.3, 0.3, (2, 2 * control_points))
    l_img = InputLayer((None, 2, 7, 9))
    l_loc = InputLayer((None, 2 * control_points))
    layer = TPSTransformerLayer(l_img, l_loc, downsample_factor=downsample,
                                control_points=control_points, precompute_grid=precompute)
    factors = downsample if isinstance(downsample, tuple) else (downsample,) * 2
    out_shape = (7 // factors[0], 9 // factors[1])
    assert layer.output_shape == (None, 2) + out_shape
    assert layer.precompute_grid == (precompute is not False)
    out = get_output(layer).eval({l_img.input_var: images, l_loc.input_var: offsets})
    assert out.shape == (2, 2) + out_shape
    np.testing.assert_allclose(out, _numpy_tps(images, offsets, control_points, *out_shape),
                               atol=1e-10)


def test_tps_transformer_identity_and_moved_control_point():
    images = RNG.rand(1, 1, 9, 9)
    l_img = InputLayer((None, 1, None, None))  # sizes unknown: the grid is built in the graph
    l_loc = InputLayer((None, 18))
    layer = TPSTransformerLayer(l_img, l_loc, control_points=9)
    assert not layer.precompute_grid and layer.output_shape == (None, 1, None, None)
    f = pytensor.function([l_img.input_var, l_loc.input_var], get_output(layer))
    np.testing.assert_allclose(f(images, np.zeros((1, 18))), images, atol=1e-12)
    # on a linear ramp, bilinear sampling is exact: the output at the centre control point
    # (output pixel (4, 4)) is the ramp at its destination, moved by one pixel (0.25) in x
    ramp = np.tile(np.arange(9.0), (9, 1))[None, None]
    offsets = np.zeros((1, 18))
    offsets[0, 4] = 0.25
    np.testing.assert_allclose(f(ramp, offsets)[0, 0, 4, 4], 5.0, atol=1e-12)
    # the other control points (e.g. the top-left corner and the middle of the top row) stay
    np.testing.assert_allclose(f(ramp, offsets)[0, 0, [0, 0], [0, 4]], [0.0, 4.0], atol=1e-12)


def test_tps_transformer_rejects_bad_arguments():
    l_img = InputLayer((None, 3, 8, 8))
    with pytest.raises(ValueError, match="perfect square"):
        TPSTransformerLayer(l_img, InputLayer((None, 20)), control_points=10)
    with pytest.raises(ValueError, match="localization network"):
        TPSTransformerLayer(l_img, InputLayer((None, 30)), control_points=16)
    with pytest.raises(ValueError, match="4-dimensional"):
        TPSTransformerLayer(InputLayer((None, 8, 8)), InputLayer((None, 32)))
    with pytest.raises(ValueError, match="precompute_grid=True"):
        TPSTransformerLayer(InputLayer((None, 3, None, 8)), InputLayer((None, 32)),
                            precompute_grid=True)


def test_tps_transformer_gradient():
    images = RNG.rand(2, 2, 6, 7)
    offsets = RNG.uniform(-0.2, 0.2, (2, 8))
    layer = TPSTransformerLayer(InputLayer((None, 2, 6, 7)), InputLayer((None, 8)),
                                control_points=4)
    verify_grad(lambda a, o: layer.get_output_for([a, o]), [images, offsets],
                rng=np.random.RandomState(0))


def test_randomized_rectifier_mean_slope_of_a_numpy_array():
    # deterministic (or lower == upper): the mean slope; NumPy in, NumPy out as in Lasagne
    x = np.array([[-1.0, 2.0], [-4.0, 0.0]])
    for layer, kwargs in ((RandomizedRectifierLayer((2, 2), lower=0.2, upper=0.6),
                           {"deterministic": True}),
                          (RandomizedRectifierLayer((2, 2), lower=0.5, upper=0.5), {})):
        out = layer.get_output_for(x, **kwargs)
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, np.where(x > 0, x, 0.4 * x if kwargs else 0.5 * x))
