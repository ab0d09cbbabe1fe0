"""ntm.accel.memory_kernels.SumInOrder and the rewrite that puts it in place of an ``Add`` in
the accelerated C mode (ntm.accel.mode): the same values as PyTensor's ``Add`` bit for bit,
checked shapes, only where it applies."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.tensor.elemwise import Elemwise

import ntm.accel
from ntm.accel.memory_kernels import SumInOrder


def arrays(count, shape=(3, 5, 4), dtype="float32", seed=0):
    """Values over many magnitudes, so that the order of the additions shows in the bits."""
    rng = np.random.RandomState(seed)
    return [(rng.normal(size=shape) * 10.0 ** rng.randint(-6, 7, size=shape)).astype(dtype)
            for _ in range(count)]


def ops_of(function):
    return [node.op for node in function.maker.fgraph.apply_nodes]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])  # NumPy perform, C code
def test_sum_in_order_adds_left_to_right_as_numpy(count, dtype, mode):
    xs = [pt.tensor3(f"x{i}", dtype=dtype) for i in range(count)]
    function = pytensor.function(xs, SumInOrder()(*xs), mode=mode)
    values = arrays(count, dtype=dtype)
    expected = values[0] + values[1]
    for value in values[2:]:
        expected = expected + value
    got = function(*values)
    assert got.dtype == dtype and got.shape == (3, 5, 4)
    np.testing.assert_array_equal(got, expected)
    if count > 2:  # another order gives other bits for these values: the test can tell
        assert not np.array_equal(got, sum(values[::-1]))


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
def test_sum_in_order_of_views_and_of_an_empty_batch(mode):
    a, b = pt.tensor3("a"), pt.tensor3("b")
    function = pytensor.function([a, b], SumInOrder()(a.transpose(0, 2, 1), b[:, ::2]),
                                 mode=mode)
    x, y = arrays(2, shape=(3, 5, 4), dtype=pytensor.config.floatX)
    y = np.concatenate([y, y], axis=1)[:, :8]  # (3, 8, 4): every other row is (3, 4, 4)
    x = x[:, :4]  # (3, 4, 4)
    np.testing.assert_array_equal(function(x, y), x.transpose(0, 2, 1) + y[:, ::2])
    empty = np.zeros((0, 4, 4), dtype=pytensor.config.floatX)
    assert function(empty, np.zeros((0, 8, 4), dtype=empty.dtype)).shape == (0, 4, 4)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
def test_sum_in_order_fails_on_different_shapes_naming_itself(mode):
    a, b = pt.tensor3("a"), pt.tensor3("b")
    function = pytensor.function([a, b], SumInOrder()(a, b), mode=mode)
    x, y = arrays(2, dtype=pytensor.config.floatX)
    with pytest.raises(ValueError, match="SumInOrder: the arrays' shapes"):
        function(x, y[:, :4])


def test_sum_in_order_rejects_bad_inputs_when_built():
    with pytest.raises(TypeError, match="two or more"):
        SumInOrder()(pt.tensor3("a"))
    with pytest.raises(TypeError, match="array 1 is"):
        SumInOrder()(pt.tensor3("a"), pt.matrix("b"))
    with pytest.raises(TypeError, match="float32 or float64"):
        SumInOrder()(pt.tensor3("a", dtype="int32"), pt.tensor3("b", dtype="int32"))


def test_sum_in_order_gradient_is_the_output_gradient_for_each_input():
    xs = [pt.tensor3(f"x{i}", dtype="float64") for i in range(3)]
    weights = np.arange(60, dtype="float64").reshape(3, 5, 4)
    cost = pt.sum(SumInOrder()(*xs) * weights)
    function = pytensor.function(xs, pytensor.grad(cost, xs), mode="FAST_COMPILE")
    for gradient in function(*arrays(3, dtype="float64")):
        np.testing.assert_array_equal(gradient, weights)


def test_the_rewrite_replaces_an_add_of_memory_sized_arrays_in_the_c_backend_only():
    xs = [pt.tensor3(f"x{i}") for i in range(4)]
    total = pt.add(*xs)
    values = arrays(4, dtype=pytensor.config.floatX)
    cvm = pytensor.function(xs, total, mode=ntm.accel.mode("CVM"))
    # PyTensor's own C mode has none of the accelerated mode's rewrites
    without = pytensor.function(xs, total, mode=get_mode("CVM"))
    numba = pytensor.function(xs, total, mode=ntm.accel.mode("NUMBA"))
    assert any(isinstance(op, SumInOrder) for op in ops_of(cvm))
    for function in (without, numba):
        assert not any(isinstance(op, SumInOrder) for op in ops_of(function))
        assert any(isinstance(op, Elemwise) for op in ops_of(function))
    np.testing.assert_array_equal(cvm(*values), without(*values))
    np.testing.assert_array_equal(cvm(*values), numba(*values))


@pytest.mark.parametrize("build", [
    lambda a, b: a + b.max(axis=1, keepdims=True),  # broadcasts
    lambda a, b: pt.add(a[0], b[0]),  # two axes
    lambda a, b: a + 2 * b,  # fused with the product into one elementwise op
])
def test_the_rewrite_leaves_other_additions_alone(build):
    a, b = pt.tensor3("a"), pt.tensor3("b")
    function = pytensor.function([a, b], build(a, b), mode=ntm.accel.mode("CVM"))
    assert not any(isinstance(op, SumInOrder) for op in ops_of(function))


@pytest.mark.parametrize("inplace", [0, 1])
def test_sum_in_order_written_over_an_input_gives_the_same_sum(inplace):
    """NumPy's implementation (PyTensor does not compile a graph built with an inplace op; the
    C code's is checked through the rewrite below)."""
    op = SumInOrder(inplace=inplace)
    assert op.destroy_map == {0: [inplace]}
    xs = [pt.tensor3(f"x{i}", dtype="float32") for i in range(3)]
    node = op.make_node(*xs)
    values = arrays(3)
    expected = (values[0] + values[1]) + values[2]
    output = [None]
    op.perform(node, values, [output])
    np.testing.assert_array_equal(output[0], expected)
    assert output[0] is values[inplace]


def test_sum_in_order_writes_only_over_one_of_the_first_two_inputs():
    with pytest.raises(ValueError, match="inplace=2"):
        SumInOrder(inplace=2)(*[pt.tensor3(f"x{i}") for i in range(3)])


def test_the_c_backend_sums_intermediate_arrays_in_place_with_the_same_values():
    xs = [pt.tensor3(f"x{i}") for i in range(4)]
    total = pt.add(xs[0], *[pt.cumsum(x, axis=1) for x in xs[1:]])  # not fused: not elementwise
    function = pytensor.function(xs, total, mode=ntm.accel.mode("CVM"))
    (op,) = [op for op in ops_of(function) if isinstance(op, SumInOrder)]
    assert op.inplace in (0, 1)
    values = np.random.RandomState(5).normal(size=(4, 3, 5, 4))
    values = list(values.astype(pytensor.config.floatX))
    expected = values[0] + np.cumsum(values[1], axis=1)
    for value in values[2:]:
        expected = expected + np.cumsum(value, axis=1)
    np.testing.assert_allclose(function(*values), expected, rtol=1e-5, atol=1e-5)
    without = pytensor.function(xs, total, mode=get_mode("CVM"))
    assert not any(isinstance(op, SumInOrder) for op in ops_of(without))
    np.testing.assert_array_equal(function(*values), without(*values))
