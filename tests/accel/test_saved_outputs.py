"""The NTM's scan saves its read vectors, similarities, keys and the addressing's
intermediates, and its backward step reads them instead of computing the memory-sized passes,
the keys and the addressing again (NTMLayer's notes, ntm.scan_gradient)."""
import numpy as np
import pytensor
import pytest
from pytensor.graph.traversal import ancestors, applys_between
from pytensor.scalar import Tanh as ScalarTanh
from pytensor.scan.op import Scan
from pytensor.tensor.elemwise import Elemwise

from ntm import memory_kernels, scan_gradient
from ntm.addressing_kernels import Addressing, AddressingGrad
from ntm.controllers import DenseController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import layers
from ntm.lasagne.random import set_rng
from ntm.layers import NTMLayer
from ntm.memory import Memory
from ntm.memory_kernels import CosineSimilarity, MemoryRead


def build(num_reads=1, num_writes=1, memory_shape=(8, 4)):
    set_rng(np.random.RandomState(0))
    l_input = layers.InputLayer((None, None, 3))
    controller = DenseController(l_input, memory_shape, 10, num_reads=num_reads)
    heads = ([WriteHead(controller, 3, memory_shape) for _ in range(num_writes)]
             + [ReadHead(controller, 3, memory_shape) for _ in range(num_reads)])
    return l_input, NTMLayer(l_input, Memory(memory_shape), controller, heads)


def scan_ops(variables):
    """{name: Scan op} of the scans computing ``variables``."""
    return {v.owner.op.name: v.owner.op for v in ancestors(variables)
            if v.owner is not None and isinstance(v.owner.op, Scan)}


def inner_op_counts(op):
    nodes = list(applys_between(op.inner_inputs, op.inner_outputs))
    counts = {cls: sum(isinstance(n.op, cls) for n in nodes)
              for cls in (CosineSimilarity, MemoryRead, Addressing)}
    counts["tanh"] = sum(isinstance(n.op, Elemwise) and isinstance(n.op.scalar_op, ScalarTanh)
                       for n in nodes)
    return counts


@pytest.mark.skipif(not scan_gradient.is_applied(),
                    reason="this PyTensor version is not among scan_gradient.CHECKED_VERSIONS")
def test_backward_step_has_no_memory_sized_recomputation():
    l_input, l_ntm = build()
    output = layers.get_output(l_ntm)
    params = layers.get_all_params(l_ntm, trainable=True)
    grads = pytensor.grad((output ** 2).sum(), params)
    forward = scan_ops([output])["ntm_scan"]
    backward = scan_ops(grads)["grad_of_ntm_scan"]
    # states, then the read vectors and the write and read heads' similarities, keys and
    # addressing intermediates
    assert forward.info.n_nit_sot == 7
    assert inner_op_counts(forward) == {CosineSimilarity: 2, MemoryRead: 1, Addressing: 2,
                                        "tanh": 3}
    # the keys' tanh is read, not computed again (the add vector's is a state)
    assert inner_op_counts(backward) == {CosineSimilarity: 0, MemoryRead: 0, Addressing: 0,
                                         "tanh": 0}
    gradients = [n.op for n in applys_between(backward.inner_inputs, backward.inner_outputs)
                 if isinstance(n.op, AddressingGrad)]
    assert len(gradients) == 2 and all(op.from_saved for op in gradients)


@pytest.mark.parametrize("num_reads,num_writes,saved", [(1, 0, 4), (0, 1, 3), (2, 2, 7)])
def test_what_is_saved_for_each_kind_of_head(num_reads, num_writes, saved):
    _, l_ntm = build(num_reads, num_writes)
    forward = scan_ops([layers.get_output(l_ntm)])["ntm_scan"]
    assert forward.info.n_nit_sot == saved


def test_without_fused_ops_only_the_read_vectors_are_saved(monkeypatch):
    monkeypatch.setattr(memory_kernels, "FUSED_MEMORY_ENABLED", False)
    _, l_ntm = build()
    forward = scan_ops([layers.get_output(l_ntm)])["ntm_scan"]
    assert forward.info.n_nit_sot == 1


def test_a_compiled_function_without_the_gradient_drops_them():
    l_input, l_ntm = build()
    function = pytensor.function([l_input.input_var], layers.get_output(l_ntm), mode="CVM")
    (scan,) = [n for n in function.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]
    assert scan.op.info.n_nit_sot == 0
    # nor does the step write the addressing intermediates (ntm.rewrites)
    addressing = [n.op for n in scan.op.fn.maker.fgraph.apply_nodes
                  if isinstance(n.op, Addressing)]
    assert len(addressing) == 2 and not any(op.save_intermediates for op in addressing)
    x = np.random.RandomState(1).randint(0, 2, (2, 5, 3)).astype(pytensor.config.floatX)
    assert function(x).shape == (2, 5, 10)
