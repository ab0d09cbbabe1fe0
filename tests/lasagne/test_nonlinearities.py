"""ntm.lasagne.nonlinearities against NumPy."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm.lasagne import nonlinearities as nl

X = np.linspace(-6, 6, 48).reshape(4, 12)

SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _elu(x):
    return np.where(x > 0, x, np.expm1(x))


CASES = {
    "sigmoid": (nl.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "softmax": (nl.softmax, _softmax),
    "tanh": (nl.tanh, np.tanh),
    "ScaledTanH": (nl.ScaledTanH(2 / 3, 1.7159), lambda x: 1.7159 * np.tanh(2 / 3 * x)),
    "ScaledTanh": (nl.ScaledTanh(scale_in=0.5, scale_out=3.0), lambda x: 3 * np.tanh(x / 2)),
    "rectify": (nl.rectify, lambda x: np.maximum(x, 0)),
    "LeakyRectify": (nl.LeakyRectify(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "leaky_rectify": (nl.leaky_rectify, lambda x: np.where(x > 0, x, 0.01 * x)),
    "very_leaky_rectify": (nl.very_leaky_rectify, lambda x: np.where(x > 0, x, x / 3)),
    "elu": (nl.elu, _elu),
    "SELU_default": (nl.SELU(), _elu),  # Lasagne's SELU() defaults to scale = scale_neg = 1
    "SELU": (nl.SELU(scale=2.0, scale_neg=0.5),
             lambda x: 2 * np.where(x > 0, x, 0.5 * np.expm1(x))),
    "selu": (nl.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))),
    "softplus": (nl.softplus, lambda x: np.log1p(np.exp(x))),
    "linear": (nl.linear, lambda x: x),
    "identity": (nl.identity, lambda x: x),
    "hard_sigmoid": (nl.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_numpy(name):
    fn, reference = CASES[name]
    x = pt.matrix()
    out = pytensor.function([x], fn(x))(X)
    np.testing.assert_allclose(out, reference(X), rtol=1e-6, atol=1e-7)


def test_softmax_rows_sum_to_one_and_are_stable():
    x = pt.matrix()
    f = pytensor.function([x], nl.softmax(x))
    big = X * 100 + 1000  # exp would overflow without the max shift
    out = f(big)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out, _softmax(big), rtol=1e-6, atol=1e-12)


def test_leaky_rectify_instances_have_their_leakiness():
    assert nl.leaky_rectify.leakiness == 0.01
    assert nl.very_leaky_rectify.leakiness == pytest.approx(1 / 3)
    assert nl.LeakyRectify().leakiness == 0.01


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "rectify", "leaky_rectify", "elu",
                                  "selu", "softplus", "hard_sigmoid", "ScaledTanH"])
def test_float32_stays_float32(name):
    with pytensor.config.change_flags(floatX="float32"):
        x = pt.fmatrix()
        assert CASES[name][0](x).dtype == "float32"


def test_rectify_of_a_numpy_array_is_an_array():
    from ntm.lasagne.nonlinearities import rectify
    out = rectify(np.array([-1.0, 0.0, 2.0]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 0.0, 2.0])


def test_leaky_rectify_of_a_numpy_array_is_a_numpy_array():
    x = np.array([[-2.0, 0.5], [3.0, -0.1]])
    result = nl.LeakyRectify(0.1)(x)
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, np.where(x > 0, x, 0.1 * x))
