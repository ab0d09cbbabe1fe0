"""ntm.accel.memory_kernels: the fused cosine similarity, memory write and memory read, and their
gradients, in every backend, against NumPy loops, finite differences and the plain graph."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from ntm.accel.addressing_kernels import Addressing, AddressingGrad
from ntm.accel.fused import FusedImplementation
from ntm.accel.memory_kernels import (CosineSimilarity, CosineSimilarityGrad, MemoryRead,
                                      MemoryReadGrad, MemoryWrite, MemoryWriteGrad)
from ntm.implementation import PLAIN, using
from ntm.similarities import cosine_similarity

BACKENDS = ["FAST_COMPILE", "CVM", "NUMBA"]  # NumPy perform, C code, Numba


def numpy_cosine(keys, memory, eps):
    B, H, _ = keys.shape
    N = memory.shape[1]
    out = np.zeros((B, H, N))
    for b in range(B):
        for h in range(H):
            for n in range(N):
                k, row = keys[b, h], memory[b, n]
                out[b, h, n] = k @ row / (np.sqrt(k @ k) * np.sqrt(row @ row) + eps)
    return out


def numpy_write(memory, weights, erase, add):
    out = memory.copy()
    for h in range(weights.shape[1]):  # every erasure first, then every addition
        out = out * (1 - weights[:, h, :, None] * erase[:, h, None, :])
    for h in range(weights.shape[1]):
        out = out + weights[:, h, :, None] * add[:, h, None, :]
    return out


def numpy_read(weights, memory):
    B, H, N = weights.shape
    out = np.zeros((B, H, memory.shape[2]))
    for b in range(B):
        for h in range(H):
            for n in range(N):
                out[b, h] += weights[b, h, n] * memory[b, n]
    return out


def tensors3(*names, dtype="float64"):
    return [pt.tensor3(name, dtype=dtype) for name in names]


def write_inputs(rng, B, N, W, H):
    memory = rng.normal(0, 1, (B, N, W))
    weights = rng.dirichlet(np.ones(N), (B, H))
    erase = rng.uniform(0, 1, (B, H, W))
    add = rng.normal(0, 1, (B, H, W))
    return memory, weights, erase, add


def uses(function, op_class):
    nodes = function.maker.fgraph.apply_nodes
    found = [n for n in nodes if isinstance(n.op, op_class)]
    return len(found) > 0


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cosine_similarity_matches_numpy(mode, dtype):
    rng = np.random.RandomState(0)
    keys_value = rng.normal(0, 1, (3, 2, 5))
    memory_value = rng.normal(0, 1, (3, 7, 5))
    memory_value[1, 4] = 0  # a zero row: similarity 0, not NaN
    keys, memory = tensors3("keys", "memory", dtype=dtype)
    function = pytensor.function([keys, memory], CosineSimilarity(1e-6)(keys, memory),
                                 mode=mode)
    assert uses(function, CosineSimilarity)
    result = function(keys_value.astype(dtype), memory_value.astype(dtype))
    assert result.shape == (3, 2, 7) and result.dtype == dtype
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(result, numpy_cosine(keys_value, memory_value, 1e-6),
                               rtol=tolerance, atol=tolerance)
    assert result[1, :, 4].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("num_heads", [1, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_memory_write_matches_numpy(mode, num_heads, dtype):
    values = write_inputs(np.random.RandomState(1), 2, 6, 4, num_heads)
    inputs = tensors3("memory", "weights", "erase", "add", dtype=dtype)
    function = pytensor.function(inputs, MemoryWrite()(*inputs), mode=mode)
    assert uses(function, MemoryWrite)
    result = function(*[v.astype(dtype) for v in values])
    assert result.shape == (2, 6, 4) and result.dtype == dtype
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(result, numpy_write(*values), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("num_heads", [1, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_memory_read_matches_numpy(mode, num_heads, dtype):
    rng = np.random.RandomState(6)
    weights_value = rng.dirichlet(np.ones(6), (2, num_heads))
    memory_value = rng.normal(0, 1, (2, 6, 4))
    weights, memory = tensors3("weights", "memory", dtype=dtype)
    function = pytensor.function([weights, memory], MemoryRead()(weights, memory), mode=mode)
    assert uses(function, MemoryRead)
    result = function(weights_value.astype(dtype), memory_value.astype(dtype))
    assert result.shape == (2, num_heads, 4) and result.dtype == dtype
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(result, numpy_read(weights_value, memory_value), rtol=tolerance,
                               atol=tolerance)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
@pytest.mark.parametrize("num_heads", [1, 2])
def test_memory_read_gradient_by_finite_differences(mode, num_heads):
    rng = np.random.RandomState(7)
    verify_grad(MemoryRead(), [rng.dirichlet(np.ones(5), (2, num_heads)),
                               rng.normal(0, 1, (2, 5, 3))],
                rng=rng, mode=mode, eps=1e-7, abs_tol=1e-6, rel_tol=1e-6)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
def test_cosine_similarity_gradient_by_finite_differences(mode):
    rng = np.random.RandomState(2)
    verify_grad(CosineSimilarity(1e-6), [rng.normal(0, 1, (2, 3, 4)), rng.normal(0, 1, (2, 5, 4))],
                rng=rng, mode=mode, eps=1e-7, abs_tol=1e-6, rel_tol=1e-6)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "CVM"])
@pytest.mark.parametrize("num_heads", [1, 2, 3])
def test_memory_write_gradient_by_finite_differences(mode, num_heads):
    rng = np.random.RandomState(3)
    verify_grad(MemoryWrite(), list(write_inputs(rng, 2, 5, 4, num_heads)), rng=rng, mode=mode,
                eps=1e-7, abs_tol=1e-6, rel_tol=1e-6)


def plain_cosine_similarity(keys, memory, eps):
    return cosine_similarity(keys, memory, eps, implementation=PLAIN)


def plain_write(memory, weights, erase, add):
    keep = pt.prod(1.0 - weights[:, :, :, None] * erase[:, :, None, :], axis=1)
    return memory * keep + pt.matmul(weights.transpose(0, 2, 1), add)


@pytest.mark.parametrize("mode", BACKENDS)
def test_gradients_equal_those_of_the_plain_expressions(mode):
    """Each backend's gradient ops against PyTensor's own gradient of the same equations."""
    rng = np.random.RandomState(4)
    B, N, W, H = 3, 8, 5, 2
    keys, memory, weights, erase, add = tensors3("keys", "memory", "weights", "erase", "add")
    values = [rng.normal(0, 1, (B, H, W)), *write_inputs(rng, B, N, W, H)]
    coefficients = rng.normal(0, 1, (B, H, N)), rng.normal(0, 1, (B, N, W))
    inputs = [keys, memory, weights, erase, add]

    def cost(cosine, write, read):
        written = write(memory, weights, erase, add)
        return (pt.sum(cosine(keys, written, 1e-6) * coefficients[0])
                + pt.sum(written * coefficients[1])
                + pt.sum(read(cosine(keys, written, 1e-6), written) ** 2))

    fused = pytensor.function(inputs, pytensor.grad(
        cost(lambda k, m, e: CosineSimilarity(e)(k, m), lambda *a: MemoryWrite()(*a),
             lambda w, m: MemoryRead()(w, m)), inputs), mode=mode)
    assert all(uses(fused, op) for op in (CosineSimilarityGrad, MemoryWriteGrad, MemoryReadGrad))
    plain_cost = cost(plain_cosine_similarity, plain_write, pt.matmul)
    plain = pytensor.function(inputs, pytensor.grad(plain_cost, inputs), mode="FAST_COMPILE")
    for got, expected in zip(fused(*values), plain(*values)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", BACKENDS)
def test_zero_vectors_have_finite_gradients(mode):
    keys, memory = tensors3("keys", "memory")
    d_keys, d_memory = pytensor.grad(pt.sum(CosineSimilarity(1e-6)(keys, memory)),
                                     [keys, memory])
    function = pytensor.function([keys, memory], [d_keys, d_memory], mode=mode)
    keys_value = np.zeros((1, 1, 3))
    memory_value = np.random.RandomState(5).normal(0, 1, (1, 4, 3))
    memory_value[0, 2] = 0
    got_keys, got_memory = function(keys_value, memory_value)
    assert np.isfinite(got_keys).all() and np.isfinite(got_memory).all()
    # d/dk of k.M_n / (|k||M_n| + eps) at k = 0 is sum_n M_n / eps
    np.testing.assert_allclose(got_keys[0, 0], memory_value[0].sum(axis=0) / 1e-6)


@pytest.mark.parametrize("mode", BACKENDS)
def test_mismatched_shapes_fail_with_a_message(mode):
    keys, memory = tensors3("keys", "memory")
    function = pytensor.function([keys, memory], CosineSimilarity()(keys, memory), mode=mode)
    with pytest.raises(ValueError, match="do not match"):
        function(np.zeros((2, 1, 3)), np.zeros((3, 4, 3)))
    inputs = tensors3("memory", "weights", "erase", "add")
    write = pytensor.function(inputs, MemoryWrite()(*inputs), mode=mode)
    with pytest.raises(ValueError, match="do not match"):
        write(np.zeros((2, 4, 3)), np.zeros((2, 1, 5)), np.zeros((2, 1, 3)), np.zeros((2, 1, 3)))
    weights, memory = tensors3("weights", "memory")
    read = pytensor.function([weights, memory], MemoryRead()(weights, memory), mode=mode)
    with pytest.raises(ValueError, match="do not match"):
        read(np.zeros((2, 1, 5)), np.zeros((2, 4, 3)))


def test_wrong_number_of_dimensions_is_refused_when_building():
    with pytest.raises(ValueError, match="memory must have 3 dimensions"):
        CosineSimilarity()(pt.tensor3("keys"), pt.matrix("memory"))
    with pytest.raises(ValueError, match="erase must have 3 dimensions"):
        MemoryWrite()(pt.tensor3(), pt.tensor3(), pt.matrix(), pt.tensor3())


def inner_ops_of(fgraph):
    """The op types of every inner graph (scans, OpFromGraphs) under ``fgraph``, at any
    depth."""
    found = set()
    for node in fgraph.apply_nodes:
        inner = getattr(node.op, "fgraph", None)
        if inner is not None:
            found |= {type(n.op) for n in inner.apply_nodes} | inner_ops_of(inner)
    return found


def test_the_similarity_function_builds_the_op_of_the_implementation_in_force():
    keys, memory = tensors3("keys", "memory")
    assert isinstance(cosine_similarity(keys, memory).owner.op, pt.elemwise.Elemwise)
    with using(FusedImplementation()):
        fused = cosine_similarity(keys, memory, 1e-3)
        plain = cosine_similarity(keys, memory, implementation=PLAIN)
    assert isinstance(fused.owner.op, CosineSimilarity) and fused.owner.op.eps == 1e-3
    assert not isinstance(plain.owner.op, CosineSimilarity)
    rng = np.random.RandomState(6)
    values = rng.normal(0, 1, (2, 3, 4)), rng.normal(0, 1, (2, 5, 4))
    expected = numpy_cosine(*values, 1e-3)
    np.testing.assert_allclose(pytensor.function([keys, memory], fused)(*values), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("num_writes", [1, 2])
def test_the_ntm_computes_the_same_with_and_without_the_fused_ops(num_writes):
    """Outputs and every parameter's gradient of an NTM, fused ops against plain tensor ops."""
    from ntm.controllers import DenseController
    from ntm.heads import ReadHead, WriteHead
    from ntm.lasagne import layers
    from ntm.lasagne.random import set_rng
    from ntm.layers import NTMLayer
    from ntm.memory import Memory

    set_rng(np.random.RandomState(7))
    # A memory shape of its own: on PyTensor 3.0 a scan equal to one still alive from another
    # test, but for the mode it names, would be taken for it (tests/accel/test_saved_outputs).
    shape = (8, 3)
    l_input = layers.InputLayer((None, None, 3))
    controller = DenseController(l_input, shape, 10, num_reads=1)
    heads = [WriteHead(controller, 3, shape) for _ in range(num_writes)]
    heads.append(ReadHead(controller, 3, shape))
    l_ntm = NTMLayer(l_input, Memory(shape), controller, heads)
    params = layers.get_all_params(l_ntm, trainable=True)
    x = np.random.RandomState(8).randint(0, 2, (2, 6, 3)).astype(pytensor.config.floatX)

    def evaluate():
        details = layers.get_output(l_ntm, get_details=True)
        cost = pt.sum(pt.sqr(details[1])) + pt.sum(details[0][:, -1] ** 2)
        function = pytensor.function([l_input.input_var],
                                     details + pytensor.grad(cost, params))
        return function(x), inner_ops_of(function.maker.fgraph)

    with using(FusedImplementation()):
        fused_values, fused_ops = evaluate()
    plain_values, plain_ops = evaluate()  # the same network, built again outside
    assert {CosineSimilarity, MemoryWrite, MemoryRead, Addressing, CosineSimilarityGrad,
            MemoryWriteGrad, MemoryReadGrad, AddressingGrad} <= fused_ops
    assert not {CosineSimilarity, MemoryWrite, MemoryRead, Addressing, CosineSimilarityGrad,
                MemoryWriteGrad, MemoryReadGrad, AddressingGrad} & plain_ops
    assert len(fused_values) == len(plain_values)
    for fused, plain in zip(fused_values, plain_values):
        assert fused.shape == plain.shape
        np.testing.assert_allclose(fused, plain, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("num_heads", [1, 2])
@pytest.mark.parametrize("width", [5, 20])
def test_rows_of_a_width_known_when_compiling(dtype, num_heads, width):
    """Memory rows whose width the graph knows (the kernels compiled for that width): values
    and gradients of the C ops against the plain expressions."""
    from ntm.accel.memory_kernels import _row_width

    rng = np.random.RandomState(5)
    B, N, W, H = 3, 9, width, num_heads
    keys, memory, erase, add = (pt.tensor(name, dtype=dtype, shape=(None, None, W))
                                for name in ("keys", "memory", "erase", "add"))
    weights = pt.tensor("weights", dtype=dtype, shape=(None, None, N))
    values = [np.asarray(v, dtype=dtype) for v in
              (rng.normal(0, 1, (B, H, W)), *write_inputs(rng, B, N, W, H))]
    coefficients = rng.normal(0, 1, (B, H, N)), rng.normal(0, 1, (B, N, W))
    inputs = [keys, memory, weights, erase, add]

    def outputs(cosine, write, read):
        written = write(memory, weights, erase, add)
        similarity = cosine(keys, written, 1e-6)
        read_vectors = read(weights, written)
        cost = (pt.sum(similarity * coefficients[0]) + pt.sum(written * coefficients[1])
                + pt.sum(read_vectors ** 2) + pt.sum(read(pt.abs(similarity), written)))
        return [similarity, written, read_vectors] + pytensor.grad(cost, inputs)

    fused = pytensor.function(inputs, outputs(
        lambda k, m, e: CosineSimilarity(e)(k, m), lambda *a: MemoryWrite()(*a),
        lambda w, m: MemoryRead()(w, m)), mode="CVM")
    kernels = [node for node in fused.maker.fgraph.apply_nodes
               if isinstance(node.op, (CosineSimilarity, CosineSimilarityGrad, MemoryWrite,
                                       MemoryWriteGrad, MemoryRead, MemoryReadGrad))]
    assert len(kernels) == 7 and all(
        _row_width(node.inputs[0 if isinstance(node.op, (MemoryWrite, MemoryWriteGrad)) else 1])
        == W for node in kernels)
    plain = pytensor.function(inputs, outputs(plain_cosine_similarity, plain_write,
                                              lambda w, m: pt.matmul(w, m)),
                              mode="FAST_COMPILE")
    tolerance = 1e-10 if dtype == "float64" else 2e-4
    for got, expected in zip(fused(*values), plain(*values)):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def without_avx2(op_class):
    """``op_class`` compiled as for a processor without AVX2 (``NTM_NO_ROWS_AT_ONCE``; PyTensor
    spells out the processor's features after an op's own flags, so ``-mno-avx2`` would not
    stay): its C code must then not contain the kernels' eight-rows path, or it fails to
    compile."""

    class Plain(op_class):
        def c_compile_args(self, **kwargs):
            return super().c_compile_args(**kwargs) + ["-DNTM_NO_ROWS_AT_ONCE"]

        def c_support_code(self, **kwargs):
            return super().c_support_code(**kwargs) + [
                '#ifdef NTM_ROWS_AT_ONCE\n#error "the AVX2 path is compiled"\n#endif\n']

    # a class of this module, by name, so that PyTensor can pickle the op for its cache key
    Plain.__name__ = Plain.__qualname__ = f"{op_class.__name__}WithoutAVX2"
    Plain.__module__ = __name__
    globals()[Plain.__name__] = Plain
    return Plain


WITHOUT_AVX2 = {op_class: without_avx2(op_class)
                for op_class in (CosineSimilarity, CosineSimilarityGrad, MemoryWrite,
                                 MemoryWriteGrad, MemoryRead, MemoryReadGrad)}


@pytest.mark.parametrize("num_heads", [1, 2])
@pytest.mark.parametrize("width", [5, 16, 20])  # a partial last vector, none, one
def test_single_precision_kernels_without_avx2_compute_what_they_compute_with_it(num_heads,
                                                                                  width):
    """Where the compiler does not target AVX2 the kernels' loops are left to it: the same
    values as the eight-rows path (which the other tests check against NumPy)."""
    rng = np.random.RandomState(6)
    B, N, W, H = 3, 11, width, num_heads
    shapes = {"keys": (B, H, W), "memory": (B, N, W), "weights": (B, H, N),
              "erase": (B, H, W), "add": (B, H, W), "similarity_grad": (B, H, N),
              "memory_grad": (B, N, W), "read_grad": (B, H, W)}
    variables = {name: pt.tensor(name, dtype="float32", shape=(None, None, shape[2]))
                 for name, shape in shapes.items()}
    values = {name: rng.normal(0, 1, shape).astype("float32") for name, shape in shapes.items()}
    values["weights"] = rng.dirichlet(np.ones(N), (B, H)).astype("float32")
    values["erase"] = rng.uniform(0, 1, (B, H, W)).astype("float32")
    calls = [(CosineSimilarity, (1e-6,), ("keys", "memory")),
             (CosineSimilarityGrad, (1e-6,), ("keys", "memory", "similarity_grad")),
             (MemoryWrite, (), ("memory", "weights", "erase", "add")),
             (MemoryWriteGrad, (), ("memory", "weights", "erase", "add", "memory_grad")),
             (MemoryRead, (), ("weights", "memory")),
             (MemoryReadGrad, (), ("weights", "memory", "read_grad"))]
    for op_class, arguments, names in calls:
        inputs = [variables[name] for name in names]

        def outputs(cls):
            result = cls(*arguments)(*inputs)
            return result if isinstance(result, list) else [result]

        with_avx2 = pytensor.function(inputs, outputs(op_class), mode="CVM")
        without = pytensor.function(inputs, outputs(WITHOUT_AVX2[op_class]), mode="CVM")
        given = [values[name] for name in names]
        for got, expected in zip(without(*given), with_avx2(*given), strict=True):
            assert got.shape == expected.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5,
                                       err_msg=op_class.__name__)


def test_every_kernel_and_gradient_compiles_into_one_module_with_the_whole_graph_c_linker():
    """PyTensor's ``c`` linker puts a whole graph in one C module: the kernels' shared C code
    must then be included once (each op gives it as parts of a list, which the linker
    includes once each), and the module computes what the op-by-op C linker computes."""
    rng = np.random.RandomState(3)
    B, H, N, W, S = 3, 2, 7, 5, 3
    memory, weights, erase, add = write_inputs(rng, B, N, W, H)
    keys, beta, gate, gamma = (rng.normal(0, 1, (B, H, W)), rng.uniform(0.5, 3, (B, H)),
                               rng.uniform(0, 1, (B, H)), rng.uniform(1, 3, (B, H)))
    shift = rng.dirichlet(np.ones(S), (B, H))
    M, K, w, e, a, s = tensors3("M", "K", "w", "e", "a", "s")
    b, g, y = pt.matrix("beta"), pt.matrix("gate"), pt.matrix("gamma")
    addressed = Addressing()(CosineSimilarity()(K, M), b, g, s, y, w)
    written = MemoryWrite()(M, addressed, e, a)
    read = MemoryRead()(addressed, written)
    cost = (read ** 2).sum() + (written * M).sum()
    outputs = [read, written] + pytensor.grad(cost, [M, K, w, e, a, s, b, g, y])
    inputs = [M, K, w, e, a, s, b, g, y]
    whole = pytensor.function(inputs, outputs, mode=pytensor.compile.mode.Mode(linker="c"))
    by_op = pytensor.function(inputs, outputs, mode="CVM")
    assert uses(whole, MemoryReadGrad) and uses(whole, AddressingGrad)
    values = [memory, keys, weights, erase, add, shift, beta, gate, gamma]
    for got, expected in zip(whole(*values), by_op(*values)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
