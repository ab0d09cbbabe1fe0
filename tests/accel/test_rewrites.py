"""ntm.accel.rewrites, in the modes ntm.accel.mode builds (and in no other): softmax is
compiled as elementwise C code in the C backend and constant splits are slices in Numba, with
the same values; zero taps of a scan's gradient are dropped and its zero states become
sit-sots; a reversed tail of a scan's output is read from a trimmed buffer."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.scan.op import Scan
from pytensor.tensor.basic import Split
from pytensor.tensor.special import LogSoftmax, Softmax, log_softmax, softmax

import ntm.accel
from ntm.accel import rewrites
from ntm.accel.memory_kernels import CosineSimilarity, CosineSimilarityGrad
from ntm.accel.modes import keep_storage
from ntm.lasagne import layers
from tests.small_ntm import binary_sequences, small_ntm


def inner_nodes(fgraph, op_class):
    """Nodes of ``op_class`` in a graph and in the inner graphs of its scans."""
    found = [node for node in fgraph.apply_nodes if isinstance(node.op, op_class)]
    for node in fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            found += inner_nodes(node.op.fgraph, op_class)
    return found


def symbolic_softmax_nodes(fgraph):
    """Softmax/LogSoftmax nodes in a graph and in the inner graphs of its scans."""
    return inner_nodes(fgraph, (Softmax, LogSoftmax))


def numpy_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def rewritten_by(rewriter, node_rewriter):
    """Whether a (rewriter, position) pair's rewriter walks the graph with ``node_rewriter``."""
    return getattr(rewriter, "node_rewriter", None) is node_rewriter


def accelerated_without(base, *left_out):
    """``ntm.accel.mode(base)`` without the rewrites that apply ``left_out`` (node
    rewriters of ntm.accel.rewrites): the same mode, one rewrite less, to compare with."""
    pairs = [(rewriter, position)
             for rewriter, position in rewrites.mode_rewrites(ntm.accel.backend_of(base))
             if not any(rewritten_by(rewriter, node_rewriter) for node_rewriter in left_out)]
    assert len(pairs) == len(rewrites.mode_rewrites(ntm.accel.backend_of(base))) - len(left_out)
    return keep_storage(get_mode(base).register(*pairs))


def test_each_backend_gets_its_rewrites():
    common = {rewrites.scan_zero_gradient_taps, rewrites.scan_zero_gradient_states_as_sit_sot,
              rewrites.scan_reversed_tail_as_slice, rewrites.drop_unread_addressing_saves}

    def node_rewriters(backend):
        pairs = rewrites.mode_rewrites(backend)
        assert all(isinstance(position, float) for _, position in pairs)
        return ({getattr(r, "node_rewriter", None) for r, _ in pairs} - {None},
                [r for r, _ in pairs if getattr(r, "node_rewriter", None) is None])

    c, c_others = node_rewriters("c")
    assert c == common | {rewrites.inline_softmax, rewrites.sum_in_order,
                          rewrites.scan_buffer_per_state, rewrites.merge_similarities,
                          rewrites.merge_similarity_gradients, rewrites.tanh_kernel}
    assert [type(r) for r in c_others] == [rewrites.SumInOrderInplace]
    assert node_rewriters("numba") == (common | {rewrites.split_as_slices}, [])
    assert node_rewriters("jax") == (common, [])
    # the scan rewrites in the order they build on each other
    positions = {getattr(r, "node_rewriter", None): p for r, p in rewrites.mode_rewrites("c")}
    assert (positions[rewrites.scan_zero_gradient_taps]
            < positions[rewrites.scan_zero_gradient_states_as_sit_sot]
            < positions[rewrites.scan_reversed_tail_as_slice])


def described(pairs):
    """(what rewrites, position) of (rewriter, position) pairs: comparable between calls."""
    return [(getattr(rewriter, "node_rewriter", None) or type(rewriter), position)
            for rewriter, position in pairs]


def test_the_accelerated_mode_is_the_base_mode_plus_the_rewrites():
    for base in ("CVM", "NUMBA"):
        plain, fast = get_mode(base), ntm.accel.mode(base)
        assert (described(fast.provided_optimizer.extra_rewrites)
                == described(rewrites.mode_rewrites(ntm.accel.backend_of(base))))
        # PyTensor's own mode is left without them
        assert not getattr(plain.provided_optimizer, "extra_rewrites", ())
        assert type(fast.linker) is type(plain.linker)


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_and_log_softmax_are_inlined_with_the_same_values(axis):
    x = pt.matrix("x", dtype="float64")
    outputs = [softmax(x, axis=axis), log_softmax(x, axis=axis)]
    function = pytensor.function([x], outputs, mode=ntm.accel.mode("CVM"))
    assert symbolic_softmax_nodes(function.maker.fgraph) == []
    value = np.random.RandomState(0).normal(0, 30, (5, 7))  # large: needs the max shift
    expected = numpy_softmax(value, axis)
    probabilities, log_probabilities = function(value)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    np.testing.assert_allclose(log_probabilities, np.log(expected), rtol=1e-10, atol=1e-12)


def test_without_the_rewrite_softmax_is_compiled_as_pytensor_compiles_it():
    """PyTensor 3.0 keeps the symbolic op in its C mode (later releases inline it
    themselves): so does the accelerated mode without the rewrite."""
    x = pt.matrix("x")
    counts = [len(symbolic_softmax_nodes(
        pytensor.function([x], softmax(x, axis=1), mode=mode).maker.fgraph))
        for mode in (get_mode("CVM"), accelerated_without("CVM", rewrites.inline_softmax))]
    assert counts[0] == counts[1]
    if pytensor.__version__.startswith("3.0."):
        assert counts == [1, 1]


def state_counts(function):
    """``(mit-mot, sit-sot, untraced sit-sot)`` states of the compiled function's scans."""
    counts = np.zeros(3, dtype=int)
    for node in function.maker.fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            info = node.op.info
            counts += (info.n_mit_mot, info.n_sit_sot, info.n_untraced_sit_sot)
    return tuple(int(count) for count in counts)


def plain_and_accelerated_ntm(**kwargs):
    """The small NTM's output and parameter gradients (``small_ntm(**kwargs)``), compiled from
    the plain graph in FAST_COMPILE and inside ``ntm.accel.accelerated("CVM")``, and inputs."""
    l_input, l_ntm = small_ntm(**kwargs)
    params = layers.get_all_params(l_ntm, trainable=True)

    def outputs():
        output = layers.get_output(l_ntm)
        return [output] + pytensor.grad(pt.sum(pt.sqr(output)), params)

    reference = pytensor.function([l_input.input_var], outputs(), mode="FAST_COMPILE")
    with ntm.accel.accelerated("CVM") as mode:
        compiled = pytensor.function([l_input.input_var], outputs(), mode=mode)
    return reference, compiled, binary_sequences()


def test_ntm_step_in_the_c_backend_has_no_symbolic_softmax_and_matches():
    reference, compiled, x = plain_and_accelerated_ntm()
    assert symbolic_softmax_nodes(compiled.maker.fgraph) == []
    scans = [node for node in compiled.maker.fgraph.apply_nodes if isinstance(node.op, Scan)]
    assert len(scans) == 2  # forward and backward (ntm.recurrence): no mit-mot state
    assert state_counts(compiled)[0] == 0
    for expected, actual in zip(reference(x), compiled(x), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_similarities_of_one_memory_and_their_gradients_are_merged_with_the_same_values():
    """Two similarities of one memory become one op of both keys, a third of another memory
    stays apart; the gradients' memory parts are one op's, summed in the addition."""
    rng = np.random.RandomState(4)
    B, N, W = 3, 9, 20
    keys = [pt.tensor(f"k{i}", dtype="float32", shape=(None, h, W))
            for i, h in enumerate((1, 2, 1))]
    memory, other = (pt.tensor(name, dtype="float32", shape=(None, N, W))
                     for name in ("memory", "other"))
    weights = [rng.normal(0, 1, (B, h, N)).astype("float32") for h in (1, 2, 1)]
    inputs = keys + [memory, other]
    similarities = [CosineSimilarity(1e-6)(k, m)
                    for k, m in zip(keys, (memory, memory, other))]
    cost = sum(pt.sum(s * w) for s, w in zip(similarities, weights))
    outputs = similarities + pytensor.grad(cost, inputs)
    values = ([rng.normal(0, 1, (B, h, W)).astype("float32") for h in (1, 2, 1)]
              + [rng.normal(0, 1, (B, N, W)).astype("float32") for _ in range(2)])
    merged = pytensor.function(inputs, outputs, mode=ntm.accel.mode("CVM"))
    apart = pytensor.function(inputs, outputs, mode=accelerated_without(
        "CVM", rewrites.merge_similarities, rewrites.merge_similarity_gradients))
    fgraph = merged.maker.fgraph
    assert sorted(n.inputs[0].type.shape[1] for n in inner_nodes(fgraph, CosineSimilarity)) \
        == [1, 3]
    assert sorted(n.inputs[0].type.shape[1]
                  for n in inner_nodes(fgraph, CosineSimilarityGrad)) == [1, 3]
    assert len(inner_nodes(apart.maker.fgraph, CosineSimilarityGrad)) == 3
    for got, expected in zip(merged(*values), apart(*values), strict=True):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


def test_the_ntm_step_computes_its_similarities_in_one_op_each_way():
    """The read and the write head address one memory: the forward scan's step has one
    similarity of both keys, the backward scan's step one gradient of both (the scans compile
    their steps in the mode they name, so the comparison is with the plain graph)."""
    reference, merged, x = plain_and_accelerated_ntm(memory_shape=(9, 20))
    for op_class in (CosineSimilarity, CosineSimilarityGrad):
        assert [n.inputs[0].type.shape[1]
                for n in inner_nodes(merged.maker.fgraph, op_class)] == [2]
    for got, expected in zip(merged(x), reference(x), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [1, -1])
def test_constant_splits_become_slices_in_numba_only(axis):
    x = pt.tensor3("x", dtype="float64")
    pieces = pt.split(x, [2, 3, 1], n_splits=3, axis=axis)
    value = np.random.RandomState(1).rand(2, 6, 6)
    expected = np.split(value, [2, 5], axis=axis)
    for mode, splits in ((ntm.accel.mode("NUMBA"), 0), (ntm.accel.mode("CVM"), 1),
                         (get_mode("NUMBA"), 1)):
        function = pytensor.function([x], pieces, mode=mode)
        found = [node for node in function.maker.fgraph.apply_nodes
                 if isinstance(node.op, Split)]
        assert len(found) == splits, mode
        for actual, wanted in zip(function(value), expected, strict=True):
            np.testing.assert_array_equal(actual, wanted)


# --- zeros in a scan's gradient -------------------------------------------------------------

ZERO_TAPS = rewrites.scan_zero_gradient_taps
ZERO_STATES = rewrites.scan_zero_gradient_states_as_sit_sot
REVERSED_TAIL = rewrites.scan_reversed_tail_as_slice


def shape_only_taps(function):
    """The mit-mot tap inputs of the compiled function's scans that their step does not use or
    uses for the shape only (what the zero-taps rewrite leaves of a tap it replaced)."""
    found = 0
    for node in function.maker.fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            op = node.op
            first = op.info.n_seqs
            taps = op.inner_inputs[first:first + sum(map(len, op.info.mit_mot_in_slices))]
            # (PyTensor 3.3 lists no clients for an input nothing uses)
            found += sum(all(type(client.op).__name__ in ("Shape", "Shape_i")
                             for client, _ in op.fgraph.clients.get(tap, ())) for tap in taps)
    return found


def numpy_three_states(x, w, a):
    """The cost of :func:`three_state_gradient` in NumPy."""
    m = g = h = np.zeros(x.shape[1])
    for x_t in x:
        m = a * m + x_t
        g = 1 / (1 + np.exp(-(a * g + m)))
        h = np.tanh(w @ h + g)
    return np.sum(h ** 2)


def three_state_gradient(mode):
    """A scan (PyTensor's own gradient) with three states of which the cost reads one, at its
    last step: ``m_t = a m_{t-1} + x_t`` and ``g_t = sigmoid(a g_{t-1} + m_t)`` are read only by
    the next step, as an NTM's memory and weightings, and feed ``h_t = tanh(w h_{t-1} + g_t)``.
    The compiled cost and gradients with respect to ``w`` and ``a``."""
    x = pt.matrix("x", dtype="float64")
    w = pt.matrix("w", dtype="float64")
    a = pt.scalar("a", dtype="float64")
    zeros = pt.zeros((x.shape[1],), dtype="float64")

    def step(x_t, m, g, h):
        m_new = a * m + x_t
        g_new = pt.sigmoid(a * g + m_new)
        return m_new, g_new, pt.tanh(pt.dot(w, h) + g_new)

    hidden = pytensor.scan(step, sequences=[x], outputs_info=[zeros, zeros, zeros],
                           return_updates=False)[2]
    cost = pt.sum(hidden[-1] ** 2)
    return pytensor.function([x, w, a], [cost] + pytensor.grad(cost, [w, a]), mode=mode)


def three_state_values(seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(6, 3)), rng.normal(0, 0.5, (3, 3)), 0.7


def test_a_gradient_reads_no_zero_buffer_and_is_unchanged():
    with_rewrite = three_state_gradient(accelerated_without("CVM", ZERO_STATES))
    without = three_state_gradient(accelerated_without("CVM", ZERO_TAPS, ZERO_STATES))
    # the taps of m's and g's gradients; PyTensor's own mode reads them all
    assert shape_only_taps(with_rewrite) == 2
    assert shape_only_taps(without) == 0
    assert shape_only_taps(three_state_gradient(get_mode("CVM"))) == 0
    values = three_state_values()
    got = with_rewrite(*values)
    for actual, expected in zip(got, without(*values), strict=True):
        np.testing.assert_array_equal(actual, expected)
    np.testing.assert_allclose(got[0], numpy_three_states(*values), rtol=1e-12)


def test_taps_of_a_buffer_that_is_not_zeros_are_kept():
    """Here the cost uses the whole state sequence: its gradient buffer holds that gradient,
    not zeros, and every tap must be read."""
    x = pt.matrix("x")
    w = pytensor.shared(np.array([[0.5, -0.3], [0.2, 0.9]]), name="w")
    h0 = pt.zeros((2,), dtype=x.dtype)
    states = pytensor.scan(lambda x_t, h: pt.tanh(pt.dot(w, h) + x_t), sequences=[x],
                           outputs_info=[h0], return_updates=False)
    cost = pt.sum(states ** 2)
    function = pytensor.function([x], pytensor.grad(cost, w), mode=ntm.accel.mode("CVM"))
    assert shape_only_taps(function) == 0
    values = np.random.RandomState(0).normal(size=(5, 2))

    def numpy_cost(w_value):
        h, total = np.zeros(2), 0.0
        for x_t in values:
            h = np.tanh(w_value @ h + x_t)
            total += np.sum(h ** 2)
        return total

    numeric = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            step = np.zeros((2, 2))
            step[i, j] = 1e-6
            numeric[i, j] = (numpy_cost(w.get_value() + step)
                             - numpy_cost(w.get_value() - step)) / 2e-6
    np.testing.assert_allclose(function(values), numeric, rtol=1e-6, atol=1e-9)


def test_zero_states_become_sit_sots_with_the_same_values_and_gradients():
    with_rewrite = three_state_gradient(ntm.accel.mode("CVM"))
    without = three_state_gradient(accelerated_without("CVM", ZERO_STATES))
    # m's and g's gradients: no longer mit-mots over all steps
    mit_mot, sit_sot, untraced = state_counts(with_rewrite)
    mit_mot_before, sit_sot_before, untraced_before = state_counts(without)
    assert mit_mot == mit_mot_before - 2
    assert sit_sot + untraced == sit_sot_before + untraced_before + 2
    assert shape_only_taps(with_rewrite) == 0
    x, w, a = three_state_values()
    got = with_rewrite(x, w, a)
    for actual, expected in zip(got, without(x, w, a), strict=True):
        np.testing.assert_array_equal(actual, expected)
    numeric_w = np.zeros((3, 3))
    for index in np.ndindex(3, 3):
        step = np.zeros((3, 3))
        step[index] = 1e-6
        numeric_w[index] = (numpy_three_states(x, w + step, a)
                            - numpy_three_states(x, w - step, a)) / 2e-6
    numeric_a = (numpy_three_states(x, w, a + 1e-6) - numpy_three_states(x, w, a - 1e-6)) / 2e-6
    np.testing.assert_allclose(got[1], numeric_w, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[2], numeric_a, rtol=1e-6)


def leaky_sum_and_tanh(x, w, a):
    """``m_t = a m_{t-1} + x_t`` (not in the cost) feeding ``h_t = tanh(w h_{t-1} + m_t)``;
    the cost is the last ``h``'s sum of squares. NumPy version of the symbolic one below."""
    m, h = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for x_t in x:
        m = a * m + x_t
        h = np.tanh(w @ h + m)
    return np.sum(h ** 2)


def test_a_state_the_cost_does_not_read_gets_a_sit_sot_gradient_equal_to_differences():
    x = pt.matrix("x", dtype="float64")
    w = pt.matrix("w", dtype="float64")
    a = pt.scalar("a", dtype="float64")
    zeros = pt.zeros((x.shape[1],), dtype="float64")
    hidden = pytensor.scan(lambda x_t, m, h: [a * m + x_t, pt.tanh(pt.dot(w, h) + a * m + x_t)],
                           sequences=[x], outputs_info=[zeros, zeros],
                           return_updates=False)[1]
    cost = pt.sum(hidden[-1] ** 2)
    gradients = pytensor.grad(cost, [w, a])
    function = pytensor.function([x, w, a], gradients, mode=ntm.accel.mode("CVM"))
    without = pytensor.function([x, w, a], gradients,
                                mode=accelerated_without("CVM", ZERO_STATES))
    assert state_counts(function)[0] == state_counts(without)[0] - 1
    rng = np.random.RandomState(2)
    values, w_value, a_value = rng.normal(size=(6, 3)), rng.normal(0, 0.5, (3, 3)), 0.7
    got = function(values, w_value, a_value)
    for actual, expected in zip(got, without(values, w_value, a_value), strict=True):
        np.testing.assert_array_equal(actual, expected)
    numeric_w = np.zeros((3, 3))
    for index in np.ndindex(3, 3):
        step = np.zeros((3, 3))
        step[index] = 1e-6
        numeric_w[index] = (leaky_sum_and_tanh(values, w_value + step, a_value)
                            - leaky_sum_and_tanh(values, w_value - step, a_value)) / 2e-6
    numeric_a = (leaky_sum_and_tanh(values, w_value, a_value + 1e-6)
                 - leaky_sum_and_tanh(values, w_value, a_value - 1e-6)) / 2e-6
    np.testing.assert_allclose(got[0], numeric_w, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got[1], numeric_a, rtol=1e-6)


def sit_sot_buffer_lengths(function, *values):
    """How many steps each sit-sot buffer of the compiled function's scans holds for these
    input values (the first dimension of the allocation the initial state is written into)."""
    from pytensor.tensor.basic import Alloc, AllocEmpty
    from pytensor.tensor.subtensor import IncSubtensor

    lengths = []
    for node in function.maker.fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            for buffer in node.op.outer_sitsot(node.inputs):
                while isinstance(buffer.owner.op, IncSubtensor):
                    buffer = buffer.owner.inputs[0]
                assert isinstance(buffer.owner.op, (Alloc, AllocEmpty))
                first = buffer.owner.inputs[0 if isinstance(buffer.owner.op, AllocEmpty) else 1]
                length = pytensor.function(function.maker.fgraph.inputs, first,
                                           mode="FAST_COMPILE", on_unused_input="ignore")
                lengths.append(int(length(*values)))
    return lengths


@pytest.mark.parametrize("mode_name", ["CVM", "NUMBA"])
@pytest.mark.parametrize("steps", [1, 3])
def test_a_reversed_tail_of_a_scan_is_read_from_a_trimmed_buffer(steps, mode_name):
    x = pt.matrix("x", dtype="float64")
    states = pytensor.scan(lambda x_t, h: 0.5 * h + x_t, sequences=[x],
                           outputs_info=[pt.zeros((x.shape[1],), dtype="float64")],
                           return_updates=False)
    raw = states.owner.inputs[0]  # the scan's own output, initial state first
    tail = raw[:-steps - 1:-1]
    values = np.random.RandomState(4).normal(size=(7, 2))
    expected = np.zeros((8, 2))
    for t, x_t in enumerate(values):
        expected[t + 1] = 0.5 * expected[t] + x_t
    function = pytensor.function([x], tail, mode=ntm.accel.mode(mode_name))
    without = pytensor.function([x], tail, mode=accelerated_without(mode_name, REVERSED_TAIL))
    np.testing.assert_array_equal(function(values), expected[:-steps - 1:-1])
    np.testing.assert_array_equal(without(values), expected[:-steps - 1:-1])
    # Without the rewrite the scan keeps all 8 steps; with it, the last few (one more where
    # the backend writes a step's result into the buffer), or in Numba only the last state.
    assert sit_sot_buffer_lengths(without, values) == [8]
    if mode_name == "NUMBA" and steps == 1:
        assert state_counts(function) == (0, 0, 1)
    else:
        (length,) = sit_sot_buffer_lengths(function, values)
        assert steps <= length <= steps + 1




def copied_buffers(function):
    """The ``SetSubtensor`` nodes of a compiled function that copy an ``AllocEmpty``."""
    from pytensor.tensor.basic import AllocEmpty
    from pytensor.tensor.subtensor import IncSubtensor
    return [node for node in function.maker.fgraph.apply_nodes
            if isinstance(node.op, IncSubtensor) and not node.op.inplace
            and node.inputs[0].owner is not None
            and isinstance(node.inputs[0].owner.op, AllocEmpty)]


def test_each_scan_buffer_is_set_in_place_with_the_same_values():
    """Two scans with states of one shape (their buffers' AllocEmpty merged by PyTensor):
    without the rewrite all but one copy the buffer; with it none does, same values."""
    x = pt.matrix("x")

    def two_scans():
        first = pytensor.scan(lambda xt, h: pt.tanh(h + xt), sequences=[x],
                              outputs_info=[pt.zeros_like(x[0])], return_updates=False)
        second = pytensor.scan(lambda xt, h: h * 0.5 + xt, sequences=[x[::-1]],
                               outputs_info=[x[0]], return_updates=False)
        return first.sum(axis=1) + second.sum(axis=1) + first[:, 0] * second[:, 1]

    with_rewrite = pytensor.function([x], two_scans(), mode=ntm.accel.mode("CVM"))
    without = pytensor.function([x], two_scans(), mode=accelerated_without(
        "CVM", rewrites.scan_buffer_per_state))
    assert copied_buffers(without)  # the case the rewrite is for
    assert not copied_buffers(with_rewrite)
    value = np.random.RandomState(0).normal(size=(7, 5)).astype(pytensor.config.floatX)
    for _ in range(2):  # the second call reuses the kept buffers
        np.testing.assert_array_equal(with_rewrite(value), without(value))
    h, g = np.zeros(5), value[0].astype(float)
    first, second = [], []
    for xt, xr in zip(value, value[::-1]):
        h, g = np.tanh(h + xt), g * 0.5 + xr
        first.append(h)
        second.append(g)
    first, second = np.array(first), np.array(second)
    expected = first.sum(axis=1) + second.sum(axis=1) + first[:, 0] * second[:, 1]
    np.testing.assert_allclose(with_rewrite(value), expected, rtol=1e-5)
