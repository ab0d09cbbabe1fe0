"""ntm.rewrites: softmax is compiled as elementwise C code in the C backend and constant
splits are slices in Numba, with the same values; zero taps of a scan's gradient are dropped;
PyTensor's ``scan_push_out_add`` takes a step's nodes in a fixed order."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.scan.op import Scan
from pytensor.tensor.special import LogSoftmax, Softmax, log_softmax, softmax

from ntm import rewrites
from ntm.lasagne import layers
from tests.small_ntm import binary_sequences, small_ntm


def symbolic_softmax_nodes(fgraph):
    """Softmax/LogSoftmax nodes in a graph and in the inner graphs of its scans."""
    found = []
    for node in fgraph.apply_nodes:
        if isinstance(node.op, (Softmax, LogSoftmax)):
            found.append(node)
        if isinstance(node.op, Scan):
            found += symbolic_softmax_nodes(node.op.fgraph)
    return found


def numpy_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_rewrite_is_registered_on_import():
    assert rewrites.is_registered()


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_and_log_softmax_are_inlined_with_the_same_values(axis):
    x = pt.matrix("x", dtype="float64")
    outputs = [softmax(x, axis=axis), log_softmax(x, axis=axis)]
    function = pytensor.function([x], outputs, mode="CVM")
    assert symbolic_softmax_nodes(function.maker.fgraph) == []
    value = np.random.RandomState(0).normal(0, 30, (5, 7))  # large: needs the max shift
    expected = numpy_softmax(value, axis)
    probabilities, log_probabilities = function(value)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    np.testing.assert_allclose(log_probabilities, np.log(expected), rtol=1e-10, atol=1e-12)


def test_without_the_rewrite_softmax_stays_a_symbolic_op():
    x = pt.matrix("x")
    mode = pytensor.compile.mode.get_mode("CVM").excluding(rewrites._REWRITE_NAME)
    function = pytensor.function([x], softmax(x, axis=1), mode=mode)
    assert len(symbolic_softmax_nodes(function.maker.fgraph)) == 1


def test_ntm_step_in_the_c_backend_has_no_symbolic_softmax_and_matches():
    l_input, l_ntm = small_ntm()
    output = layers.get_output(l_ntm)
    params = layers.get_all_params(l_ntm, trainable=True)
    cost = pt.sum(pt.sqr(output))
    outputs = [output] + pytensor.grad(cost, params)
    x = binary_sequences()
    reference = pytensor.function([l_input.input_var], outputs, mode="FAST_COMPILE")
    compiled = pytensor.function([l_input.input_var], outputs, mode="CVM")
    assert symbolic_softmax_nodes(compiled.maker.fgraph) == []
    assert any(isinstance(node.op, Scan) for node in compiled.maker.fgraph.apply_nodes)
    for expected, actual in zip(reference(x), compiled(x), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [1, -1])
def test_constant_splits_become_slices_in_numba_only(axis):
    from pytensor.tensor.basic import Split

    x = pt.tensor3("x", dtype="float64")
    pieces = pt.split(x, [2, 3, 1], n_splits=3, axis=axis)
    value = np.random.RandomState(1).rand(2, 6, 6)
    expected = np.split(value, [2, 5], axis=axis)
    for mode, splits in (("NUMBA", 0), ("CVM", 1)):
        function = pytensor.function([x], pieces, mode=mode)
        found = [node for node in function.maker.fgraph.apply_nodes
                 if isinstance(node.op, Split)]
        assert len(found) == splits, mode
        for actual, wanted in zip(function(value), expected, strict=True):
            np.testing.assert_array_equal(actual, wanted)


# --- zeros in a scan's gradient -------------------------------------------------------------

ZERO_TAPS = "ntm_scan_zero_gradient_taps"
ZERO_STATES = "ntm_scan_zero_gradient_states_as_sit_sot"
REVERSED_TAIL = "ntm_scan_reversed_tail_as_slice"


def shape_only_taps(function):
    """The mit-mot tap inputs of the compiled function's scans that their step does not use or
    uses for the shape only (what the zero-taps rewrite leaves of a tap it replaced)."""
    found = 0
    for node in function.maker.fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            op = node.op
            first = op.info.n_seqs
            taps = op.inner_inputs[first:first + sum(map(len, op.info.mit_mot_in_slices))]
            found += sum(all(type(client.op).__name__ in ("Shape", "Shape_i")
                             for client, _ in op.fgraph.clients[tap]) for tap in taps)
    return found


def ntm_gradient(mode):
    l_input, l_ntm = small_ntm()
    output = layers.get_output(l_ntm)
    params = layers.get_all_params(l_ntm, trainable=True)
    cost = pt.sum(output[:, -1] ** 2)  # the memory, weightings, erase and add: not in the cost
    return pytensor.function([l_input.input_var], [cost] + pytensor.grad(cost, params), mode=mode)


def test_zero_taps_rewrite_is_registered_on_import():
    assert rewrites.zero_taps_registered()


def test_the_ntm_gradient_reads_no_zero_buffer_and_is_unchanged():
    mode = pytensor.compile.mode.get_mode("CVM")
    with_rewrite = ntm_gradient(mode.excluding(ZERO_STATES))
    without = ntm_gradient(mode.excluding(ZERO_TAPS))
    # the small NTM's memory, write weighting, erase, add and read weighting
    assert shape_only_taps(with_rewrite) == 5
    assert shape_only_taps(without) == 0
    x = binary_sequences()
    for got, expected in zip(with_rewrite(x), without(x), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_taps_of_a_buffer_that_is_not_zeros_are_kept():
    """Here the cost uses the whole state sequence: its gradient buffer holds that gradient,
    not zeros, and every tap must be read."""
    x = pt.matrix("x")
    w = pytensor.shared(np.array([[0.5, -0.3], [0.2, 0.9]]), name="w")
    h0 = pt.zeros((2,), dtype=x.dtype)
    states = pytensor.scan(lambda x_t, h: pt.tanh(pt.dot(w, h) + x_t), sequences=[x],
                           outputs_info=[h0], return_updates=False)
    cost = pt.sum(states ** 2)
    function = pytensor.function([x], pytensor.grad(cost, w), mode="CVM")
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


def state_counts(function):
    """``(mit-mot, sit-sot, untraced sit-sot)`` states of the compiled function's scans."""
    counts = np.zeros(3, dtype=int)
    for node in function.maker.fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            info = node.op.info
            counts += (info.n_mit_mot, info.n_sit_sot, info.n_untraced_sit_sot)
    return tuple(int(count) for count in counts)


def test_the_ntm_gradients_zero_states_become_sit_sots_with_the_same_values():
    mode = pytensor.compile.mode.get_mode("CVM")
    with_rewrite = ntm_gradient(mode)
    without = ntm_gradient(mode.excluding(ZERO_STATES))
    # The five states of the first test: no longer mit-mots over all steps, and none of them
    # keeps a buffer of all steps (only the memory's last gradient is read, for M_0).
    mit_mot, sit_sot, untraced = state_counts(with_rewrite)
    mit_mot_before, sit_sot_before, untraced_before = state_counts(without)
    assert mit_mot == mit_mot_before - 5
    assert sit_sot + untraced == sit_sot_before + untraced_before + 5
    assert shape_only_taps(with_rewrite) == 0
    x = binary_sequences()
    for got, expected in zip(with_rewrite(x), without(x), strict=True):
        np.testing.assert_array_equal(got, expected)


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
    mode = pytensor.compile.mode.get_mode("CVM")
    function = pytensor.function([x, w, a], gradients, mode=mode)
    without = pytensor.function([x, w, a], gradients, mode=mode.excluding(ZERO_STATES))
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
    mode = pytensor.compile.mode.get_mode(mode_name)
    function = pytensor.function([x], tail, mode=mode)
    without = pytensor.function([x], tail, mode=mode.excluding(REVERSED_TAIL))
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


class _SetIteratedInOrder(set):
    """A set that iterates in a given order, as a set of nodes may in another process."""

    def __init__(self, items, order):
        super().__init__(items)
        self.order = list(order)

    def __iter__(self):
        return iter([item for item in self.order if item in self])


def two_dot_accumulations():
    """A graph whose scan accumulates two ``dot`` products in two states and returns their
    last values: two places for ``scan_push_out_add`` to start."""
    from pytensor.graph.fg import FunctionGraph

    a, b, c, d = (pt.tensor3(name) for name in "abcd")
    acc0 = pt.zeros((a.shape[1], b.shape[2]))
    acc1 = pt.zeros((c.shape[1], d.shape[2]))
    states = pytensor.scan(lambda a_t, b_t, c_t, d_t, s0, s1: (s0 + pt.dot(a_t, b_t),
                                                               s1 + pt.dot(c_t, d_t)),
                           sequences=[a, b, c, d], outputs_info=[acc0, acc1],
                           return_updates=False)
    # The scan's own outputs (with the initial values; ``states`` are their [1:]), last step.
    fgraph = FunctionGraph([a, b, c, d], [state.owner.inputs[0][-1] for state in states],
                           clone=False)
    node, = [node for node in fgraph.apply_nodes if isinstance(node.op, Scan)]
    return fgraph, node


def pushed_out(transform, order):
    """Which output's accumulation the rewrite moves out of the scan first when the step's
    nodes are iterated in this order (``"first"`` or ``"reversed"`` of the toposort)."""
    fgraph, node = two_dot_accumulations()
    inner = node.op.fgraph
    nodes = inner.toposort()
    inner.apply_nodes = _SetIteratedInOrder(inner.apply_nodes,
                                            nodes if order == "first" else nodes[::-1])
    replacements = transform(fgraph, node)
    assert replacements
    return [fgraph.outputs.index(variable) for variable in replacements
            if variable in fgraph.outputs]


def test_scan_push_out_add_takes_the_steps_nodes_in_topological_order():
    from pytensor.scan.rewriting.push_out import scan_push_out_add

    assert rewrites.order_scan_push_out_add()
    transform = scan_push_out_add.fn
    # Whatever order the set hands out the nodes in, the same accumulation goes first...
    first = pushed_out(transform, "first")
    assert first in ([0], [1])
    assert pushed_out(transform, "reversed") == first
    # ... where PyTensor's own rewrite follows the set's order.
    assert pushed_out(transform.original, "first") != pushed_out(transform.original, "reversed")
