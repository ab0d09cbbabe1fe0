"""ntm.lasagne.init: shapes, sample statistics and reproducibility of the initializers."""
import numpy as np
import pytensor
import pytest

from ntm.lasagne import init, layers, random


@pytest.fixture(autouse=True)
def seeded_rng():
    old = random.get_rng()
    random.set_rng(np.random.RandomState(1234))
    yield
    random.set_rng(old)


ALL = [init.Normal(), init.Uniform(), init.GlorotNormal(), init.GlorotUniform(),
       init.HeNormal(), init.HeUniform(), init.Constant(0.5), init.Sparse(), init.Orthogonal()]


@pytest.mark.parametrize("initializer", ALL, ids=lambda i: type(i).__name__)
def test_shape_and_dtype(initializer):
    for shape in ((7, 5), (5, 7)):
        w = initializer(shape)
        assert w.shape == shape
        assert w.dtype == pytensor.config.floatX
    np.testing.assert_array_equal(initializer.sample((4, 3)).shape, (4, 3))


@pytest.mark.parametrize("initializer", [init.Normal(), init.Uniform(), init.GlorotUniform(),
                                         init.HeNormal(), init.Orthogonal(), init.Constant()],
                         ids=lambda i: type(i).__name__)
def test_shape_4d(initializer):
    assert initializer((6, 3, 2, 2)).shape == (6, 3, 2, 2)


def test_normal_statistics():
    w = init.Normal(std=0.5, mean=2.0)((400, 500))
    assert abs(w.mean() - 2.0) < 0.005
    assert abs(w.std() - 0.5) < 0.005
    w = init.Normal()((400, 500))  # defaults std=0.01, mean=0
    assert abs(w.mean()) < 1e-4
    assert abs(w.std() - 0.01) < 1e-4


def test_uniform_range_and_bounds():
    w = init.Uniform(0.3)((400, 500))
    assert w.min() >= -0.3 and w.max() <= 0.3
    assert w.min() < -0.299 and w.max() > 0.299
    assert abs(w.mean()) < 0.003
    w = init.Uniform((1.0, 3.0))((400, 500))
    assert w.min() >= 1.0 and w.max() <= 3.0
    assert abs(w.mean() - 2.0) < 0.01


def test_uniform_with_std():
    w = init.Uniform(std=2.0, mean=1.0)((400, 500))
    half_width = np.sqrt(3) * 2.0
    assert w.min() >= 1.0 - half_width and w.max() <= 1.0 + half_width
    assert w.min() < 1.0 - 0.99 * half_width
    assert abs(w.std() - 2.0) < 0.02
    assert abs(w.mean() - 1.0) < 0.02


def _check_uniform_bound(w, bound):
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # the whole interval is used
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound


def test_glorot_uniform_bound():
    shape = (300, 500)
    _check_uniform_bound(init.GlorotUniform()(shape), np.sqrt(6.0 / (300 + 500)))
    _check_uniform_bound(init.GlorotUniform(gain=2.0)(shape), 2.0 * np.sqrt(6.0 / 800))
    _check_uniform_bound(init.GlorotUniform(gain="relu")(shape), np.sqrt(2) * np.sqrt(6.0 / 800))


def test_glorot_uniform_receptive_field():
    # (num_out, num_in, rows, cols): both fans are multiplied by rows * cols
    shape = (40, 30, 3, 5)
    _check_uniform_bound(init.GlorotUniform()(shape), np.sqrt(6.0 / ((40 + 30) * 15)))


def test_glorot_uniform_c01b():
    shape = (32, 3, 3, 64)  # (channels, rows, cols, filters)
    _check_uniform_bound(init.GlorotUniform(c01b=True)(shape), np.sqrt(6.0 / ((32 + 64) * 9)))
    for bad in ((3, 4, 5), (3, 4, 5, 6, 7)):
        # Lasagne raises RuntimeError here
        with pytest.raises(RuntimeError, match="c01b"):
            init.GlorotUniform(c01b=True)(bad)
        with pytest.raises(RuntimeError, match="c01b"):
            init.HeUniform(c01b=True)(bad)


def test_glorot_normal_std():
    w = init.GlorotNormal()((300, 500))
    assert abs(w.std() - np.sqrt(2.0 / 800)) < 0.01 * np.sqrt(2.0 / 800)
    assert abs(w.mean()) < 0.001
    w = init.GlorotNormal(gain="relu")((40, 30, 3, 5))
    expected = np.sqrt(2) * np.sqrt(2.0 / ((40 + 30) * 15))
    assert abs(w.std() - expected) < 0.02 * expected


def test_glorot_needs_two_dimensions():
    with pytest.raises(RuntimeError, match="at least 2"):  # Lasagne's exception type
        init.GlorotUniform()((10,))


def test_he_normal_std():
    w = init.HeNormal()((400, 300))
    expected = np.sqrt(1.0 / 400)  # fan_in is shape[0] for a matrix
    assert abs(w.std() - expected) < 0.01 * expected
    w = init.HeNormal(gain="relu")((400, 300))
    assert abs(w.std() - np.sqrt(2.0 / 400)) < 0.01 * np.sqrt(2.0 / 400)


def test_he_uniform_fans():
    # 4D: fan_in is prod(shape[1:])
    _check_uniform_bound(init.HeUniform()((64, 16, 3, 3)), np.sqrt(3) * np.sqrt(1.0 / 144))
    # c01b: fan_in is prod(shape[:3])
    _check_uniform_bound(init.HeUniform(c01b=True)((16, 3, 3, 64)), np.sqrt(3.0 / 144))
    _check_uniform_bound(init.HeUniform(gain=3.0)((400, 300)), 3.0 * np.sqrt(3.0 / 400))
    with pytest.raises(RuntimeError):
        init.HeNormal()((10,))


def test_constant():
    np.testing.assert_array_equal(init.Constant(3.5)((2, 3)), np.full((2, 3), 3.5))
    np.testing.assert_array_equal(init.Constant()((4,)), np.zeros(4))


def test_sparse():
    w = init.Sparse(sparsity=0.2, std=1.0)((50, 30))
    assert ((w != 0).sum(axis=0) == 10).all()  # int(0.2 * 50) non-zero entries per column
    assert abs(w[w != 0].std() - 1.0) < 0.15
    with pytest.raises(RuntimeError, match="2D"):
        init.Sparse()((3, 4, 5))


@pytest.mark.parametrize("shape", [(50, 80), (80, 50), (30, 30)])
def test_orthogonal(shape):
    w = init.Orthogonal()(shape).astype("float64")
    if shape[0] <= shape[1]:
        np.testing.assert_allclose(w @ w.T, np.eye(shape[0]), atol=1e-5)
    if shape[0] >= shape[1]:
        np.testing.assert_allclose(w.T @ w, np.eye(shape[1]), atol=1e-5)


def test_orthogonal_gain_and_higher_dimensions():
    w = init.Orthogonal(gain=2.0)((20, 30)).astype("float64")
    np.testing.assert_allclose(w @ w.T, 4.0 * np.eye(20), atol=1e-5)
    w = init.Orthogonal(gain="relu")((10, 4, 5)).astype("float64").reshape(10, 20)
    np.testing.assert_allclose(w @ w.T, 2.0 * np.eye(10), atol=1e-5)
    with pytest.raises(RuntimeError):
        init.Orthogonal()((10,))


def test_reproducible_with_set_rng():
    random.set_rng(np.random.RandomState(42))
    a = init.GlorotUniform()((20, 30))
    b = init.Normal()((5,))
    random.set_rng(np.random.RandomState(42))
    np.testing.assert_array_equal(init.GlorotUniform()((20, 30)), a)
    np.testing.assert_array_equal(init.Normal()((5,)), b)
    random.set_rng(np.random.RandomState(43))
    assert not np.array_equal(init.GlorotUniform()((20, 30)), a)


def test_network_initialization_is_reproducible():
    def build():
        l_in = layers.InputLayer((None, 6))
        return layers.DenseLayer(layers.DenseLayer(l_in, 5), 3)

    random.set_rng(7)  # an int seed is accepted too
    first = layers.get_all_param_values(build())
    random.set_rng(np.random.RandomState(7))
    second = layers.get_all_param_values(build())
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_numpy_global_seed_controls_the_default_rng():
    # Lasagne draws from numpy.random until set_rng is called
    random.set_rng(np.random)
    assert random.get_rng() is np.random
    np.random.seed(5)
    a = init.Uniform()((3, 4))
    np.random.seed(5)
    np.testing.assert_array_equal(init.Uniform()((3, 4)), a)


def test_set_rng_rejects_other_objects():
    with pytest.raises(TypeError, match="RandomState"):
        random.set_rng("seed")
