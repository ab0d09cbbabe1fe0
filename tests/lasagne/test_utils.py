"""ntm.lasagne.utils: dtype casting, parameter creation and small helpers."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.sharedvalue import SharedVariable

from ntm.lasagne import utils


# floatX ------------------------------------------------------------------------------------

@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_floatX_casts_to_configured_dtype(floatx):
    with pytensor.config.change_flags(floatX=floatx):
        for data in ([1, 2, 3], np.arange(3), np.ones(3, dtype="float16"), 2.5):
            arr = utils.floatX(data)
            assert isinstance(arr, np.ndarray)
            assert arr.dtype == np.dtype(floatx)
        np.testing.assert_array_equal(utils.floatX([1, 2, 3]), [1.0, 2.0, 3.0])


def test_shared_empty():
    var = utils.shared_empty(3)
    assert var.ndim == 3
    assert var.get_value().size == 0
    assert var.dtype == pytensor.config.floatX
    assert utils.shared_empty(2, dtype="int32").dtype == "int32"


def test_as_pytensor_expression():
    x = pt.matrix()
    assert utils.as_pytensor_expression(x) is x
    const = utils.as_pytensor_expression(np.arange(4).reshape(2, 2))
    np.testing.assert_array_equal(const.eval(), [[0, 1], [2, 3]])
    with pytest.raises(TypeError, match="not a PyTensor expression"):
        utils.as_pytensor_expression(object())


# create_param ------------------------------------------------------------------------------

def test_create_param_from_array():
    arr = np.arange(6, dtype="float64").reshape(2, 3)
    param = utils.create_param(arr, (2, 3), name="W")
    assert isinstance(param, SharedVariable)
    assert param.name == "W"
    assert param.dtype == "float64"
    np.testing.assert_array_equal(param.get_value(), arr)
    # a new variable, not a view of the caller's array
    arr[0, 0] = 100
    assert param.get_value()[0, 0] == 0


@pytest.mark.parametrize("dtype", ["float64", "float32", "int16"])
def test_create_param_keeps_the_array_dtype(dtype):
    # as Lasagne: an array keeps its dtype (initializers give floatX arrays themselves) ...
    with pytensor.config.change_flags(floatX="float32"):
        param = utils.create_param(np.arange(4).reshape(2, 2).astype(dtype), (2, 2))
        assert param.dtype == dtype
        np.testing.assert_array_equal(param.get_value(), [[0, 1], [2, 3]])
        # ... while a Python number becomes floatX
        assert utils.create_param(0.5, ()).dtype == "float32"
        assert utils.create_param(init_glorot, (3, 2)).dtype == "float32"


def init_glorot(shape):
    from ntm.lasagne import init
    return init.GlorotUniform()(shape)


def test_create_param_from_scalar():
    param = utils.create_param(2.5, ())
    assert param.ndim == 0
    assert float(param.get_value()) == 2.5


def test_create_param_array_of_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(3, 2\), should be \(2, 3\)"):
        utils.create_param(np.zeros((3, 2)), (2, 3), name="W")


@pytest.mark.parametrize("shape", [(3, 0), (-1, 2), (0,)])
def test_create_param_non_positive_shape(shape):
    with pytest.raises(ValueError, match="non-positive shape"):
        utils.create_param(np.zeros(3), shape)


def test_create_param_from_shared_is_used_as_is():
    var = pytensor.shared(np.ones((2, 3)))
    assert utils.create_param(var, (2, 3), name="W") is var
    assert var.name == "W"  # an unnamed variable gets the name
    named = pytensor.shared(np.ones((2, 3)), name="mine")
    assert utils.create_param(named, [2, 3], name="W").name == "mine"  # a name is kept


def test_create_param_shared_of_wrong_dimensions_or_shape():
    with pytest.raises(ValueError, match="2 dimensions, should be 3"):
        utils.create_param(pytensor.shared(np.ones((2, 3))), (2, 3, 1))
    with pytest.raises(ValueError, match=r"shape \(2, 3\), should be \(3, 2\)"):
        utils.create_param(pytensor.shared(np.ones((2, 3))), (3, 2))


def test_create_param_from_expression():
    base = pytensor.shared(np.full((2, 3), 2.0))
    expr = pt.exp(base) * 3
    assert utils.create_param(expr, (2, 3)) is expr
    with pytest.raises(ValueError, match="dimensions"):
        utils.create_param(expr, (6,))


def test_create_param_from_callable():
    shapes = []

    def init(shape):
        shapes.append(shape)
        return np.full(shape, 7.0)

    param = utils.create_param(init, [4, 5], name="b")
    assert shapes == [(4, 5)]
    assert isinstance(param, SharedVariable) and param.name == "b"
    np.testing.assert_array_equal(param.get_value(), np.full((4, 5), 7.0))


def test_create_param_callable_returning_wrong_shape():
    with pytest.raises(ValueError, match=r"callable has shape \(5, 4\), should be \(4, 5\)"):
        utils.create_param(lambda shape: np.zeros(shape[::-1]), (4, 5))


def test_create_param_callable_returning_expression():
    var = pytensor.shared(np.ones((2, 2)))
    assert utils.create_param(lambda shape: var, (2, 2)) is var


def test_create_param_rejects_other_specs():
    with pytest.raises(TypeError, match="cannot initialize"):
        utils.create_param("glorot", (2, 2))
    with pytest.raises(TypeError, match="cannot initialize"):
        utils.create_param(lambda shape: "nonsense", (2, 2))


def test_create_param_size_one_axes_broadcast():
    # a (1, 3) parameter must broadcast against a batch at run time, as in Lasagne
    param = utils.create_param(np.array([[1.0, 2.0, 3.0]]), (1, 3))
    x = pt.matrix()
    f = pytensor.function([x], x + param)
    np.testing.assert_allclose(f(np.zeros((4, 3))), np.tile([[1.0, 2.0, 3.0]], (4, 1)))


# unique, as_tuple, one_hot, compute_norms --------------------------------------------------

def test_unique_keeps_first_occurrences_in_order():
    assert utils.unique([3, 1, 3, 2, 1, 3]) == [3, 1, 2]
    a, b = pytensor.shared(1.0), pytensor.shared(2.0)
    assert utils.unique([b, a, b]) == [b, a]
    assert utils.unique(iter("abca")) == ["a", "b", "c"]


def test_as_tuple():
    assert utils.as_tuple(3, 2) == (3, 3)
    assert utils.as_tuple([1, 2, 3], 3) == (1, 2, 3)
    assert utils.as_tuple((1, 2), 2, int) == (1, 2)
    with pytest.raises(ValueError, match="length 3"):
        utils.as_tuple((1, 2), 3)
    with pytest.raises(TypeError, match="int"):
        utils.as_tuple((1, 2.5), 2, int)
    with pytest.raises(TypeError):
        utils.as_tuple("ab", 2, int)


def test_one_hot_values():
    x = np.array([2, 0, 1, 2], dtype="int32")
    np.testing.assert_array_equal(utils.one_hot(x).eval(), np.eye(3)[x])
    np.testing.assert_array_equal(utils.one_hot(x, 5).eval(), np.eye(5)[x])
    xs = pt.ivector()
    out = utils.one_hot(xs, 4)
    assert out.dtype == pytensor.config.floatX
    np.testing.assert_array_equal(out.eval({xs: x}), np.eye(4)[x])


def test_one_hot_of_a_matrix_adds_an_axis():
    x = np.array([[0, 1], [1, 1]], dtype="int64")
    np.testing.assert_array_equal(utils.one_hot(x, 2).eval(), np.eye(2)[x])


def test_compute_norms():
    rng = np.random.RandomState(0)
    w = rng.randn(5, 4)
    np.testing.assert_allclose(utils.compute_norms(w), np.sqrt((w ** 2).sum(axis=0)))
    np.testing.assert_allclose(utils.compute_norms(w, norm_axes=(1,)),
                               np.sqrt((w ** 2).sum(axis=1)))
    b = rng.randn(6)
    np.testing.assert_allclose(utils.compute_norms(b), np.abs(b))
    c = rng.randn(3, 2, 4, 4)
    np.testing.assert_allclose(utils.compute_norms(c), np.sqrt((c ** 2).sum(axis=(1, 2, 3))))
    sym = pt.matrix()
    np.testing.assert_allclose(utils.compute_norms(sym).eval({sym: w}),
                               np.sqrt((w ** 2).sum(axis=0)))
    with pytest.raises(ValueError, match="Unsupported tensor dimensionality"):
        utils.compute_norms(np.zeros((1,) * 6))
    with pytest.raises(RuntimeError, match="Unsupported type"):
        utils.compute_norms([[1.0, 2.0]])


# int_types, inspect_kwargs, collect_shared_vars, unroll_scan --------------------------------

def test_int_types_and_inspect_kwargs():
    assert isinstance(3, utils.int_types) and isinstance(np.int32(3), utils.int_types)
    assert not isinstance(3.0, utils.int_types)

    def f(a, b, c=1, *args, d=2, **kwargs):
        pass
    assert utils.inspect_kwargs(f) == ["c", "d"]


def test_collect_shared_vars_order():
    a, b = pytensor.shared(1.0, name="a"), pytensor.shared(2.0, name="b")
    x = pt.scalar()
    assert utils.collect_shared_vars([b * x + a, a]) == [b, a]
    assert utils.collect_shared_vars(x) == []


def test_unroll_scan_matches_scan():
    seq = pt.matrix()
    h0 = pt.vector()
    w = pt.matrix()

    def step(x_t, h, w):
        return pt.tanh(x_t + pt.dot(h, w))
    values = {seq: np.random.RandomState(0).randn(4, 3), h0: np.zeros(3),
              w: np.random.RandomState(1).randn(3, 3)}
    for go_backwards in (False, True):
        unrolled = utils.unroll_scan(step, [seq], [h0], [w], 4, go_backwards)[0]
        scanned = pytensor.scan(step, sequences=[seq], outputs_info=[h0], non_sequences=[w],
                                go_backwards=go_backwards, return_updates=False)
        np.testing.assert_allclose(unrolled.eval(values), scanned.eval(values), rtol=1e-10)


def test_unroll_scan_takes_single_items_as_lists():
    # a tensor as sequences and a number as outputs_info, as Lasagne's callers pass them
    a = pt.scalar("a")
    powers, = utils.unroll_scan(lambda step, prior, a: prior * a, sequences=pt.arange(3),
                                outputs_info=[1.0], non_sequences=[a], n_steps=3)
    np.testing.assert_allclose(powers.eval({a: 2.0}), [2.0, 4.0, 8.0])
    steps, = utils.unroll_scan(lambda s, prior: prior + s, sequences=pt.arange(4),
                               outputs_info=0, non_sequences=None, n_steps=4,
                               go_backwards=True)
    np.testing.assert_allclose(steps.eval(), [3, 5, 6, 6])  # 3, 3+2, 3+2+1, 3+2+1+0
