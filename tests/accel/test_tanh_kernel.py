"""ntm.accel.tanh_kernel.Tanh and the rewrite that puts it in place of PyTensor's tanh of float32
arrays in the accelerated C mode: values within 2 ulp of the exact tangent over the whole
float range, NaN and infinities, its gradient from the output, only where it applies."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad
from pytensor.graph.traversal import ancestors
from pytensor.scalar import Tanh as ScalarTanh
from pytensor.tensor.elemwise import Elemwise

import ntm.accel
from ntm.accel.tanh_kernel import Tanh


def ulps(got, exact):
    """|got - exact| in units of the float32 spacing at the exact value."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


def tanh_nodes(function):
    nodes = function.maker.fgraph.apply_nodes
    return ([n for n in nodes if isinstance(n.op, Tanh)],
            [n for n in nodes if isinstance(n.op, Elemwise)
             and isinstance(n.op.scalar_op, ScalarTanh)])


def test_single_precision_values_within_two_ulp_of_the_exact_tangent():
    x = pt.vector("x", dtype="float32")
    function = pytensor.function([x], Tanh()(x), mode="CVM")
    values = np.concatenate([
        np.linspace(-12, 12, 1_000_001), np.logspace(-30, 1.2, 100_001),
        -np.logspace(-30, 1.2, 100_001), [0.0, 0.4, -0.4, 9.0, 50.0, -50.0, 3e38]]
    ).astype(np.float32)
    got = function(values)
    assert got.dtype == np.float32 and got.shape == values.shape
    exact = np.tanh(values.astype(np.float64))
    error = ulps(got, exact)
    assert error.max() <= 2.0, (error.max(), values[error.argmax()])
    # either side of the switch from the series to the exponential form, and the odd symmetry
    np.testing.assert_array_equal(function(-values), -got)
    special = function(np.array([np.nan, np.inf, -np.inf, 0.0], dtype=np.float32))
    assert np.isnan(special[0]) and special[1:].tolist() == [1.0, -1.0, 0.0]


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])  # NumPy perform, C code
def test_double_precision_and_any_shape(mode):
    x = pt.tensor3("x", dtype="float64")
    function = pytensor.function([x], Tanh()(x), mode=mode)
    values = np.random.RandomState(0).normal(0, 3, (2, 3, 5))
    got = function(values)
    assert got.shape == (2, 3, 5) and got.dtype == np.float64
    np.testing.assert_allclose(got, np.tanh(values), rtol=1e-15, atol=0)
    # a non-contiguous input (a transposed view)
    transposed = pytensor.function([x], Tanh()(x.transpose(2, 0, 1)), mode=mode)
    np.testing.assert_allclose(transposed(values), np.tanh(values.transpose(2, 0, 1)),
                               rtol=1e-15, atol=0)


def test_gradient_by_finite_differences_and_from_the_output():
    rng = np.random.RandomState(1)
    verify_grad(Tanh(), [rng.normal(0, 1.5, (4, 3))], rng=rng, mode="CVM")
    x = pt.matrix("x", dtype="float64")
    y = Tanh()(x)
    (grad,) = pytensor.grad(pt.sum(y * 2.0), [x])
    # built from the output: the forward tangent is the only one in the gradient's graph
    tangents = [v for v in ancestors([grad]) if v.owner is not None
                and isinstance(v.owner.op, (Tanh, Elemwise)) and "tanh" in str(v.owner.op).lower()]
    assert tangents == [y]
    values = rng.normal(0, 1.5, (4, 3))
    np.testing.assert_allclose(pytensor.function([x], grad, mode="CVM")(values),
                               2.0 / np.cosh(values) ** 2, rtol=1e-12)


def test_the_accelerated_c_mode_computes_float32_tangents_with_the_kernel_only():
    x32 = pt.matrix("x32", dtype="float32")
    x64 = pt.matrix("x64", dtype="float64")
    outputs = [pt.tanh(x32), pt.tanh(x64)]
    values = [np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4),
              np.linspace(-3, 3, 12).reshape(3, 4)]
    accelerated = pytensor.function([x32, x64], outputs, mode=ntm.accel.mode("CVM"))
    kernels, elemwise = tanh_nodes(accelerated)
    assert [n.inputs[0].type.dtype for n in kernels] == ["float32"]
    assert [n.inputs[0].type.dtype for n in elemwise] == ["float64"]
    plain = pytensor.function([x32, x64], outputs, mode="CVM")
    assert tanh_nodes(plain)[0] == []
    got, expected = accelerated(*values), plain(*values)
    assert np.max(ulps(got[0], np.tanh(values[0].astype(np.float64)))) <= 2.0
    np.testing.assert_array_equal(got[1], expected[1])
