"""With the fused implementation the NTM's scan saves its read vectors, similarities, keys and
the addressing's intermediates (``FusedImplementation.saved_for_gradient``), and the backward
scan of ntm.recurrence reads them instead of computing the memory-sized passes and the
addressing again (NTMLayer's notes)."""
import numpy as np
import pytensor
import pytest
from pytensor.compile.builders import OpFromGraph
from pytensor.graph.traversal import ancestors
from pytensor.scalar import Composite
from pytensor.scalar import Tanh as ScalarTanh
from pytensor.scan.op import Scan
from pytensor.tensor.elemwise import Elemwise

import ntm.accel
from ntm.accel.addressing_kernels import Addressing, AddressingGrad
from ntm.accel.fused import FusedImplementation
from ntm.accel.tanh_kernel import Tanh
from ntm.accel.memory_kernels import (CosineSimilarity, CosineSimilarityGrad, MemoryRead,
                                      MemoryReadGrad, MemoryWrite, MemoryWriteGrad)
from ntm.controllers import DenseController
from ntm.heads import ReadHead, WriteHead
from ntm.implementation import using
from ntm.lasagne import layers
from ntm.lasagne.random import set_rng
from ntm.layers import NTMLayer
from ntm.memory import Memory


def build(num_reads=1, num_writes=1, memory_shape=(8, 4)):
    set_rng(np.random.RandomState(0))
    l_input = layers.InputLayer((None, None, 3))
    controller = DenseController(l_input, memory_shape, 10, num_reads=num_reads)
    heads = ([WriteHead(controller, 3, memory_shape) for _ in range(num_writes)]
             + [ReadHead(controller, 3, memory_shape) for _ in range(num_reads)])
    return l_input, NTMLayer(l_input, Memory(memory_shape), controller, heads)


def scan_ops(variables):
    """{name: Scan op} of the scans computing ``variables``, also inside OpFromGraphs (the
    recurrence wraps its forward scan in one, and its gradient is another)."""
    found = {}
    for variable in ancestors(variables):
        op = None if variable.owner is None else variable.owner.op
        if isinstance(op, Scan):
            found[op.name] = op
        elif isinstance(op, OpFromGraph):
            found.update(scan_ops(op.inner_outputs))
    return found


def compiled_scans(function):
    """{name: Scan node} of a compiled function."""
    return {node.op.name: node for node in function.maker.fgraph.apply_nodes
            if isinstance(node.op, Scan)}


def computes_tanh(node):
    """Whether a node computes a tanh (the accelerated mode's kernel, or an elementwise node,
    alone or fused with other operations)."""
    if isinstance(node.op, Tanh):
        return True
    if not isinstance(node.op, Elemwise):
        return False
    pending = [node.op.scalar_op]
    while pending:
        op = pending.pop()
        if isinstance(op, ScalarTanh):
            return True
        if isinstance(op, Composite):
            pending += [inner.op for inner in op.fgraph.apply_nodes]
    return False


def step_op_counts(nodes):
    counts = {cls: sum(isinstance(n.op, cls) for n in nodes)
              for cls in (CosineSimilarity, MemoryRead, MemoryWrite, Addressing)}
    counts["tanh"] = sum(computes_tanh(n) for n in nodes)
    return counts


@pytest.fixture(scope="module")
def compiled_gradient():
    """The small NTM's output and parameter gradients, built and compiled accelerated (C)."""
    l_input, l_ntm = build()
    with ntm.accel.accelerated("CVM") as mode:
        output = layers.get_output(l_ntm)
        params = layers.get_all_params(l_ntm, trainable=True)
        grads = pytensor.grad((output ** 2).sum(), params)
        function = pytensor.function([l_input.input_var], [output] + grads, mode=mode)
    return function, (l_input, l_ntm, params)


def test_backward_step_has_no_memory_sized_recomputation(compiled_gradient):
    function, _ = compiled_gradient
    scans = compiled_scans(function)
    # accelerated: the scans name the accelerated mode, and are named after it
    assert set(scans) == {"ntm_scan_fused", "ntm_scan_fused_grad"}
    forward, backward = scans["ntm_scan_fused"].op, scans["ntm_scan_fused_grad"].op
    # states, then the read vectors and the write and read heads' similarities, keys and
    # addressing intermediates
    assert forward.info.n_nit_sot == 7
    forward_nodes = forward.fgraph.apply_nodes
    # the similarities of both heads' keys in one op (ntm.accel.rewrites.merge_similarities)
    assert step_op_counts(forward_nodes) == {CosineSimilarity: 1, MemoryRead: 1,
                                             MemoryWrite: 1, Addressing: 2, "tanh": 3}
    assert all(n.op.save_intermediates for n in forward_nodes if isinstance(n.op, Addressing))
    # The backward step computes no similarity, read, write or addressing again. It does
    # compute the three tanh of the keys and the add vector again, (batch, M) values each:
    # PyTensor's gradient of tanh is gz (1 - tanh(x)^2), from the tanh's input.
    backward_nodes = backward.fgraph.apply_nodes
    assert step_op_counts(backward_nodes) == {CosineSimilarity: 0, MemoryRead: 0,
                                              MemoryWrite: 0, Addressing: 0, "tanh": 3}
    step_inputs = set(backward.fgraph.inputs)

    def grad_nodes(cls):
        return [n for n in backward_nodes if isinstance(n.op, cls)]

    addressing = grad_nodes(AddressingGrad)
    assert len(addressing) == 2
    for node in addressing:
        # the similarities, previous weightings and saved intermediates: read from the forward
        # scan's outputs (inputs of the step), not computed in it
        assert node.op.from_saved
        assert {0, 5, 6} <= {i for i, x in enumerate(node.inputs) if x in step_inputs}
    # one gradient of both heads' similarities (ntm.accel.rewrites.merge_similarity_gradients)
    (similarity,) = grad_nodes(CosineSimilarityGrad)
    # the keys (joined) and the memory they were compared with: saved
    keys, memory = similarity.inputs[:2]
    assert keys.type.shape[1] == 2 and memory in step_inputs
    assert all(x in step_inputs for x in keys.owner.inputs[1:])
    (read,) = grad_nodes(MemoryReadGrad)
    assert read.inputs[0] in step_inputs and read.inputs[1] in step_inputs
    (write,) = grad_nodes(MemoryWriteGrad)
    assert all(x in step_inputs for x in write.inputs[:4])


def test_the_gradient_that_reads_the_saved_values_equals_the_plain_one(compiled_gradient):
    function, (l_input, l_ntm, params) = compiled_gradient
    output = layers.get_output(l_ntm)  # built again, with the plain implementation
    grads = pytensor.grad((output ** 2).sum(), params)
    plain = pytensor.function([l_input.input_var], [output] + grads, mode="FAST_COMPILE")
    assert scan_ops([output])["ntm_scan"].info.n_nit_sot == 1  # the read vectors only
    x = np.random.RandomState(2).randint(0, 2, (2, 5, 3)).astype(pytensor.config.floatX)
    got, expected = function(x), plain(x)
    assert len(got) == len(expected) == 1 + len(params)
    for actual, wanted in zip(got, expected):
        assert actual.shape == wanted.shape
        np.testing.assert_allclose(actual, wanted, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("num_reads,num_writes,saved", [(1, 0, 4), (0, 1, 3), (2, 2, 7)])
def test_what_is_saved_for_each_kind_of_head(num_reads, num_writes, saved):
    _, l_ntm = build(num_reads, num_writes)
    with using(FusedImplementation()):
        output = layers.get_output(l_ntm)
    forward = scan_ops([output])["ntm_scan"]
    assert forward.info.n_nit_sot == saved


def test_without_fused_ops_only_the_read_vectors_are_saved():
    _, l_ntm = build()
    forward = scan_ops([layers.get_output(l_ntm)])["ntm_scan"]
    assert forward.info.n_nit_sot == 1


def test_a_compiled_function_without_the_gradient_drops_them():
    l_input, l_ntm = build()
    with ntm.accel.accelerated("CVM") as mode:
        function = pytensor.function([l_input.input_var], layers.get_output(l_ntm), mode=mode)
    (scan,) = compiled_scans(function).values()
    assert scan.op.info.n_nit_sot == 0
    # nor does the step write the addressing intermediates
    # (ntm.accel.rewrites.drop_unread_addressing_saves)
    addressing = [n.op for n in scan.op.fgraph.apply_nodes if isinstance(n.op, Addressing)]
    assert len(addressing) == 2 and not any(op.save_intermediates for op in addressing)
    plain = pytensor.function([l_input.input_var], layers.get_output(l_ntm),
                              mode="FAST_COMPILE")
    x = np.random.RandomState(1).randint(0, 2, (2, 5, 3)).astype(pytensor.config.floatX)
    result = function(x)
    assert result.shape == (2, 5, 10)
    np.testing.assert_allclose(result, plain(x), rtol=1e-6, atol=1e-8)


def test_in_pytensors_own_mode_the_step_still_writes_them():
    """The fused graph compiled in PyTensor's C mode, without the accelerated rewrites: the
    scan's outputs of the saved values go (PyTensor's rewrites), the op that writes them stays.
    (Another memory shape than the other tests': PyTensor shares equal scans between graphs.)"""
    l_input, l_ntm = build(memory_shape=(8, 5))
    with using(FusedImplementation()):
        output = layers.get_output(l_ntm)
    function = pytensor.function([l_input.input_var], output, mode="CVM")
    (scan,) = compiled_scans(function).values()
    assert scan.op.info.n_nit_sot == 0
    addressing = [n.op for n in scan.op.fgraph.apply_nodes if isinstance(n.op, Addressing)]
    assert len(addressing) == 2 and all(op.save_intermediates for op in addressing)


def test_an_accelerated_build_after_a_fused_one_of_the_same_network_is_accelerated():
    l_input, l_ntm = build(memory_shape=(8, 6))
    with using(FusedImplementation()):
        earlier = layers.get_output(l_ntm)  # still in use while the next one is built
    with ntm.accel.accelerated("CVM") as mode:
        function = pytensor.function([l_input.input_var], layers.get_output(l_ntm), mode=mode)
    (scan,) = compiled_scans(function).values()
    assert scan.op.name == "ntm_scan_fused" and scan.op.mode is not None
    # the step as compiled (by the scan's mode) drops the unread saves
    addressing = [n.op for n in scan.op.fn.maker.fgraph.apply_nodes
                  if isinstance(n.op, Addressing)]
    assert len(addressing) == 2 and not any(op.save_intermediates for op in addressing)
    assert earlier.owner is not None
