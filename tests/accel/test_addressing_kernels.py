"""ntm.accel.addressing_kernels: a head's addressing as one op, in every backend, against NumPy
loops, PyTensor's gradient of the same equations and finite differences."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from ntm.accel.addressing_kernels import Addressing, AddressingGrad
from ntm.heads import SHARPEN_EPSILON, interpolate, sharpen, shift

BACKENDS = ["FAST_COMPILE", "CVM", "NUMBA"]  # NumPy perform, C code, Numba


def numpy_row(K, beta, gate, s, previous, circular):
    """One (batch, head) row of the paper's equations: the content weighting and the shifted
    weighting plus epsilon, ``u``."""
    N, S = K.shape[0], s.shape[0]
    z = np.exp(beta * K - np.max(beta * K))
    content = z / z.sum()
    gated = gate * content + (1 - gate) * previous
    shifted = np.zeros(N)
    for i in range(N):
        for k in range(S):
            j = i - k + S // 2
            if circular:
                shifted[i] += s[k] * gated[j % N]
            elif 0 <= j < N:
                shifted[i] += s[k] * gated[j]
    return content, shifted + SHARPEN_EPSILON


def numpy_addressing(K, beta, gate, s, gamma, previous, circular):
    """The paper's equations, one (batch, head) at a time."""
    B, H, N = K.shape
    out = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            _, u = numpy_row(K[b, h], beta[b, h], gate[b, h], s[b, h], previous[b, h], circular)
            powered = u ** gamma[b, h]
            out[b, h] = powered / powered.sum()
    return out


def random_inputs(rng, B=2, H=2, N=7, S=3):
    return [rng.uniform(-1, 1, (B, H, N)),               # cosine similarities
            rng.uniform(0.5, 4, (B, H)),                 # beta
            rng.uniform(0.1, 0.9, (B, H)),               # gate
            rng.dirichlet(np.ones(S), (B, H)),           # shift weighting
            rng.uniform(1, 3, (B, H)),                   # gamma
            rng.dirichlet(np.ones(N), (B, H))]           # previous weighting


def symbolic_inputs(dtype="float64"):
    return [pt.tensor(name, dtype=dtype, shape=(None,) * ndim) for name, ndim in
            zip(("K", "beta", "gate", "shift", "gamma", "previous"), (3, 2, 2, 3, 2, 3))]


def plain_addressing(K, beta, gate, s, gamma, previous, mode):
    content = pt.special.softmax(beta[:, :, None] * K, axis=-1)
    return sharpen(shift(interpolate(content, previous, gate), s, 7, mode, 3), gamma)


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("shift_mode", ["circular", "zero_pad"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_addressing_matches_numpy(mode, shift_mode, dtype):
    values = random_inputs(np.random.RandomState(0), N=7, S=5)
    inputs = symbolic_inputs(dtype)
    function = pytensor.function(inputs, Addressing(shift_mode, SHARPEN_EPSILON)(*inputs),
                                 mode=mode)
    assert any(isinstance(n.op, Addressing) for n in function.maker.fgraph.apply_nodes)
    result = function(*[v.astype(dtype) for v in values])
    assert result.shape == (2, 2, 7) and result.dtype == dtype
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    expected = numpy_addressing(*values, circular=shift_mode == "circular")
    np.testing.assert_allclose(result, expected, rtol=tolerance, atol=tolerance)


def test_one_step_shift_moves_a_focused_weighting_one_place_forward():
    inputs = symbolic_inputs()
    function = pytensor.function(inputs, Addressing("circular", SHARPEN_EPSILON)(*inputs),
                                 mode="CVM")
    N = 7
    previous = np.zeros((1, 1, N))
    previous[0, 0, N - 1] = 1
    result = function(np.zeros((1, 1, N)), np.ones((1, 1)), np.zeros((1, 1)),  # gate 0
                      np.array([[[0.0, 0.0, 1.0]]]), np.full((1, 1), 50.0), previous)
    assert result[0, 0].argmax() == 0 and result[0, 0, 0] > 0.999  # wrapped around


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
@pytest.mark.parametrize("shift_mode", ["circular", "zero_pad"])
def test_addressing_gradient_by_finite_differences(mode, shift_mode):
    rng = np.random.RandomState(1)
    verify_grad(Addressing(shift_mode, SHARPEN_EPSILON), random_inputs(rng), rng=rng, mode=mode,
                eps=1e-7, abs_tol=1e-6, rel_tol=1e-6)


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("shift_mode", ["circular", "zero_pad"])
def test_gradients_equal_those_of_the_plain_expressions(mode, shift_mode):
    rng = np.random.RandomState(2)
    values = random_inputs(rng)
    coefficients = rng.normal(0, 1, (2, 2, 7))
    inputs = symbolic_inputs()
    fused_cost = pt.sum(Addressing(shift_mode, SHARPEN_EPSILON)(*inputs) * coefficients)
    fused = pytensor.function(inputs, pytensor.grad(fused_cost, inputs), mode=mode)
    assert any(isinstance(n.op, AddressingGrad) for n in fused.maker.fgraph.apply_nodes)
    plain_cost = pt.sum(plain_addressing(*inputs, shift_mode) * coefficients)
    plain = pytensor.function(inputs, pytensor.grad(plain_cost, inputs), mode="FAST_COMPILE")
    for got, expected in zip(fused(*values), plain(*values)):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("mode", BACKENDS)
def test_mismatched_shapes_fail_with_a_message(mode):
    inputs = symbolic_inputs()
    function = pytensor.function(inputs, Addressing()(*inputs), mode=mode)
    values = random_inputs(np.random.RandomState(3))
    values[5] = values[5][:, :, :-1]  # previous weighting one location short
    with pytest.raises(ValueError, match="do not match"):
        function(*values)


def test_bad_arguments_are_refused_when_building():
    with pytest.raises(ValueError, match="shift_mode"):
        Addressing("reflect")
    inputs = symbolic_inputs()
    inputs[1] = pt.tensor3("beta")
    with pytest.raises(ValueError, match="beta must have 2 dimensions"):
        Addressing()(*inputs)


def numpy_saved(K, beta, gate, s, gamma, previous, circular):
    """What Addressing(save_intermediates=True) keeps per row: the content weighting, the
    powers v = (u / max u)^gamma and their sum."""
    B, H, N = K.shape
    saved = np.zeros((B, H, 2 * N + 1))
    for b in range(B):
        for h in range(H):
            content, u = numpy_row(K[b, h], beta[b, h], gate[b, h], s[b, h], previous[b, h],
                                   circular)
            powered = (u / u.max()) ** gamma[b, h]
            saved[b, h] = np.concatenate([content, powered, [powered.sum()]])
    return saved


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("shift_mode", ["circular", "zero_pad"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_saved_intermediates_match_numpy_and_leave_the_weightings_unchanged(mode, shift_mode,
                                                                          dtype):
    values = [v.astype(dtype) for v in random_inputs(np.random.RandomState(4), N=7, S=5)]
    inputs = symbolic_inputs(dtype)
    weights, saved = Addressing(shift_mode, SHARPEN_EPSILON, save_intermediates=True)(*inputs)
    assert saved.type.ndim == 3
    function = pytensor.function(inputs, [weights, saved], mode=mode)
    plain = pytensor.function(inputs, Addressing(shift_mode, SHARPEN_EPSILON)(*inputs),
                              mode=mode)
    got_weights, got_saved = function(*values)
    assert got_saved.shape == (2, 2, 15) and got_saved.dtype == dtype
    np.testing.assert_array_equal(got_weights, plain(*values))  # the same code, bit for bit
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    expected = numpy_saved(*[v.astype("float64") for v in values],
                           circular=shift_mode == "circular")
    np.testing.assert_allclose(got_saved, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("shift_mode", ["circular", "zero_pad"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradient_from_saved_intermediates_equals_the_one_that_recomputes(mode, shift_mode,
                                                                        dtype):
    rng = np.random.RandomState(5)
    values = [v.astype(dtype) for v in random_inputs(rng, N=9)]
    coefficients = rng.normal(0, 1, (2, 2, 9)).astype(dtype)
    inputs = symbolic_inputs(dtype)
    weights, _ = Addressing(shift_mode, SHARPEN_EPSILON, save_intermediates=True)(*inputs)
    saving = pytensor.function(inputs, pytensor.grad(pt.sum(weights * coefficients), inputs),
                               mode=mode)
    grads = [n.op for n in saving.maker.fgraph.apply_nodes if isinstance(n.op, AddressingGrad)]
    assert len(grads) == 1 and grads[0].from_saved
    recomputing = pytensor.function(inputs, pytensor.grad(pt.sum(
        Addressing(shift_mode, SHARPEN_EPSILON)(*inputs) * coefficients), inputs), mode=mode)
    for got, expected in zip(saving(*values), recomputing(*values)):
        assert got.shape == expected.shape and got.dtype == dtype
        if mode == "CVM":  # the values the recomputation would give, so the same bits
            np.testing.assert_array_equal(got, expected)
        else:  # NumPy sums in another order; Numba compiles with fast-math
            np.testing.assert_allclose(got, expected, rtol=1e-12 if dtype == "float64" else 1e-5,
                                       atol=1e-12 if dtype == "float64" else 1e-6)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
def test_gradient_with_saved_intermediates_by_finite_differences(mode):
    rng = np.random.RandomState(6)

    def weights(*inputs):
        return Addressing("circular", SHARPEN_EPSILON, save_intermediates=True)(*inputs)[0]

    verify_grad(weights, random_inputs(rng), rng=rng, mode=mode, eps=1e-7, abs_tol=1e-6,
                rel_tol=1e-6)


@pytest.mark.parametrize("mode", BACKENDS)
def test_saved_intermediates_of_the_wrong_shape_fail_with_a_message(mode):
    inputs = symbolic_inputs()
    saved, G = pt.tensor3("saved"), pt.tensor3("G")
    function = pytensor.function(inputs + [saved, G], AddressingGrad(
        "circular", SHARPEN_EPSILON, from_saved=True)(*inputs, saved, G), mode=mode)
    values = random_inputs(np.random.RandomState(7))
    with pytest.raises(ValueError, match="saved intermediates"):
        function(*values, np.zeros((2, 2, 14)), np.ones((2, 2, 7)))
