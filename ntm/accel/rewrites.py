r"""Graph rewrites of the accelerated modes (:func:`ntm.accel.mode`): softmax as compiled
elementwise code for PyTensor's C backend, constant splits as slices for Numba, sums of
memory-sized arrays in one vectorised loop, no additions of zeros and no buffers of zeros in
a scan's gradient, and no saved addressing intermediates that nothing reads. They are given
to the modes that :func:`ntm.accel.mode` builds (:func:`mode_rewrites`), never registered in
PyTensor's own rewrite database: a function compiled in any other mode is compiled as
PyTensor compiles it.

PyTensor 3 represents :math:`\mathrm{softmax}(x) = e^{x - \max x} / \sum e^{x - \max x}` (and
log-softmax) as a *symbolic op*: an ``OpFromGraph`` whose inner graph is that expression. A
rewrite even turns a hand-written ``exp(x) / sum(exp(x))`` into one. Numba and JAX compile the
inner graph, but the C backend has no C code for it: every call goes through Python and a
separately compiled inner function. The NTM's step calls four softmaxes per time step (content
addressing and shift weighting of each head), so in the C backend they cost more than the rest
of the step's arithmetic.

:data:`inline_softmax` replaces such nodes by their inner graph during the ``specialize``
phase, after the stabilising rewrites have seen them, so that they are fused and compiled like
any other elementwise code. It runs for the C backends (``CVM``, ``C``, ``FAST_RUN``), not for
Numba or JAX. The computed values are those of the inner graph, i.e. the same expression.

:data:`split_as_slices` is the reverse case, for Numba only (tag ``numba``): the heads cut what
the controller emits, and the weighting they shift, with one ``Split`` each, which the C backend
runs as one operation where slices would be several. Numba compiles a step into one function
anyway, and its ``Split`` (``np.split``) costs more than the slices, so there a ``Split`` with
constant sizes becomes one slice per piece. Same values: both are views of the input.

:data:`sum_in_order` is for the C backends (tag ``cxx_only``): PyTensor's C code for an
elementwise ``Add`` walks arbitrary strides in nested loops that the compiler does not
vectorise, and the NTM's backward step adds four memory-sized gradients at every time step
(the read's, both similarities', the next step's). An ``Add`` of two or more arrays of one
type, with three or more axes of which none broadcasts, becomes
:class:`~ntm.accel.memory_kernels.SumInOrder`, which adds in the same order in one contiguous loop
(same bits; its time is in the scan's profile that ``benchmarks/train_step.py --profile``
prints with ``PYTENSOR_FLAGS=profile=True``). It runs after the elementwise fusion, so an
addition fused
with other elementwise work is left to the fused code.

:data:`scan_zero_gradient_taps` is for every backend. The gradient of a scan carries the
gradient of each recurrent state back through a buffer of all time steps (a "mit-mot" state
of the backward scan: input taps 0 and 1, output tap 1), which PyTensor initialises with the
cost's gradient with respect to that state's outputs, or with zeros when the cost does not
use them, as for the NTM's memory, weightings and erase and add vectors. Each backward step
reads tap 1 and adds it to the state's gradient. A tap ``k`` of such a state is only ever
read before anything is written there when no output tap is beyond ``k``: step ``t`` reads
position ``t + k``, which step ``t'`` writes through output tap ``o`` at ``t' + o``, before
``t`` only if ``o > k``. So with a buffer of zeros that tap always reads zeros, and the
rewrite replaces it inside the step by a zero tensor of its shape, which the step's own
rewriting then adds to nothing: for the copy model at batch 16, five additions of a state's
size per time step (one of them over the whole ``(batch, 128, 20)`` memory) and their reads of
a cold buffer. The values are the same (``x + 0 == x``; only the sign of a zero gradient can
differ). The NTM's
own scan has its own gradient (:mod:`ntm.recurrence`), without such buffers; these three
serve the scans whose gradient PyTensor builds (the recurrent layers of :mod:`ntm.lasagne`).

:data:`scan_zero_gradient_states_as_sit_sot` goes on from there. Once such a state's tap 1
is read for its shape only, the state is an ordinary recurrence: step ``t`` reads position
``t`` (tap 0), which step ``t - 1`` wrote, and writes ``t + 1``; only position 0, the initial
zeros, comes from the buffer. That is a sit-sot state (tap -1) with the same buffer, and the
rewrite rebuilds the scan so, the step's computation untouched. As a mit-mot the state kept a
buffer of every step, zeroed before each call (for the copy model's memory at batch 16 and
length 20, 43 x 16 x 128 x 20 floats, 7 MB); as a sit-sot,
PyTensor's memory rewrites keep the steps that are read, here two.

:data:`scan_reversed_tail_as_slice` lets those rewrites see what is read. The gradient with
respect to a state's initial value reads its last step as ``out[:-2:-1]`` (the buffer
reversed, then its first step), and PyTensor keeps the whole buffer for any slice that
steps backwards. The rewrite writes ``out[:stop:-1]`` of a scan's output as the tail
``out[stop + 1:]``, reversed when it has more than one step: the same values.

:data:`scan_buffer_per_state` is for the C backends. A scan keeps each recurrent state in
a buffer of its steps, made by ``AllocEmpty`` with the initial state set into its first step
(``SetSubtensor``). PyTensor merges the ``AllocEmpty`` of buffers of one shape into one node,
and then only one of the ``SetSubtensor`` may write into it in place: every other one copies
the whole uninitialised buffer, at every call, before setting one step of it (the backward
scan's buffers of the memory's gradient, ``(T + 1) x B x N x M`` values each). The rewrite
gives each such ``SetSubtensor`` an ``AllocEmpty`` of its own, just before PyTensor's in-place
rewrites, so that each sets its step in place; with storage kept between calls
(:mod:`ntm.accel.modes`) each buffer is then allocated once. Same values: the copied part
was never initialised.

:data:`drop_unread_addressing_saves` is for every backend. The NTM's step addresses with
``Addressing(..., save_intermediates=True)``, whose second output keeps what the gradient
needs (:mod:`ntm.accel.addressing_kernels`); a function compiled without the gradient drops the
scan's outputs of them, and the rewrite then gives the step the op without that output, so
that it does not write them at all. The weightings are computed by the same code either way.

:data:`merge_similarities` and :data:`merge_similarity_gradients` are for the C backends. An
NTM with read and write heads addresses the same memory with each kind of head: two
:class:`~ntm.accel.memory_kernels.CosineSimilarity` of one memory per time step, and in the
backward step two :class:`~ntm.accel.memory_kernels.CosineSimilarityGrad` whose memory
gradients are added. The first rewrite computes the similarities of every key of one memory in
one op (the keys joined, the result cut back into each kind's); the second does the same for
the gradients, whose memory gradient is then one array, already summed, in the addition: one pass
over the memory instead of two, and one array less to add (``docs/performance.md``). The values
are those of the same equations; only the order of the additions over the keys differs.

:data:`tanh_kernel` is for the C backends: PyTensor's ``tanh`` of a float32 array becomes
:class:`~ntm.accel.tanh_kernel.Tanh`, one vectorised loop instead of a call of the C library's
``tanhf`` per value (the heads' keys and add vectors, and the tangents their gradients
compute again). Its values are within 2 ulp of the exact tangent.
"""
import dataclasses

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Constant
from pytensor.graph.destroyhandler import inplace_candidates
from pytensor.graph.replace import clone_replace
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.scalar import Add as ScalarAdd
from pytensor.scalar import Tanh as ScalarTanh
from pytensor.scan.op import Scan
from pytensor.tensor.basic import Alloc, AllocEmpty, Split, get_scalar_constant_value
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.rewriting.elemwise import InplaceGraphOptimizer
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import IncSubtensor, Subtensor, get_idx_list

from .addressing_kernels import Addressing
from .memory_kernels import CosineSimilarity, CosineSimilarityGrad, SumInOrder
from .tanh_kernel import Tanh

__all__ = ["inline_softmax", "split_as_slices", "sum_in_order", "SumInOrderInplace",
           "scan_zero_gradient_taps", "scan_zero_gradient_states_as_sit_sot",
           "scan_reversed_tail_as_slice", "drop_unread_addressing_saves", "scan_buffer_per_state",
           "merge_similarities", "merge_similarity_gradients", "tanh_kernel", "mode_rewrites"]


# Each rewrite object below refers to its function by a name of its own (_name), so that a
# mode that holds it (a scan's, pickled with a compiled function) can be pickled.

def _inline_softmax(fgraph, node):
    """Replace a ``Softmax``/``LogSoftmax`` node by the expression it stands for."""
    return inline_ofg_node(node)


inline_softmax = node_rewriter([Softmax, LogSoftmax])(_inline_softmax)


def _split_as_slices(fgraph, node):
    """Replace a ``Split`` whose axis and sizes are constants by one slice per piece."""
    if len(node.inputs) == 3:  # PyTensor 3.0: the axis is an input
        x, axis, sizes = node.inputs
        if not isinstance(axis, Constant):
            return None
        axis = int(axis.data)
    else:  # since: a property of the op
        (x, sizes), axis = node.inputs, node.op.axis
    if not isinstance(sizes, Constant):
        return None
    axis = int(axis) % x.type.ndim
    bounds = np.concatenate([[0], np.cumsum(sizes.data)])
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = [slice(None)] * axis + [slice(int(start), int(stop))]
        pieces.append(x[tuple(index)])
    return pieces


split_as_slices = node_rewriter([Split])(_split_as_slices)


def _drop_unread_addressing_saves(fgraph, node):
    """Replace an ``Addressing`` whose saved intermediates nobody reads by the op without
    them."""
    if not node.op.save_intermediates or fgraph.clients[node.outputs[1]]:
        return None
    weights = Addressing(node.op.shift_mode, node.op.eps)(*node.inputs)
    return {node.outputs[0]: weights}


drop_unread_addressing_saves = node_rewriter([Addressing])(_drop_unread_addressing_saves)


def _sum_in_order(fgraph, node):
    """Replace an ``Add`` of two or more arrays of one type, with three or more axes none of
    which broadcasts, by :class:`~ntm.accel.memory_kernels.SumInOrder` (same values)."""
    if not isinstance(node.op.scalar_op, ScalarAdd) or len(node.inputs) < 2:
        return None
    first = node.inputs[0].type
    if (first.ndim < 3 or first.dtype not in ("float32", "float64")
            or any(first.broadcastable) or node.outputs[0].type.dtype != first.dtype):
        return None
    if any(x.type.ndim != first.ndim or x.type.dtype != first.dtype or any(x.type.broadcastable)
           for x in node.inputs[1:]):
        return None
    return [SumInOrder()(*node.inputs)]


sum_in_order = node_rewriter([Elemwise])(_sum_in_order)


def _static_heads(keys):
    """The number of keys (axis 1) where the type knows it, else ``None``."""
    return keys.type.shape[1]


def _cut(joined, sizes, like):
    """``joined[:, a:b]`` for consecutive ``sizes`` along axis 1, each of the type of the
    corresponding variable in ``like``."""
    pieces, start = [], 0
    for size, variable in zip(sizes, like):
        pieces.append(variable.type.filter_variable(joined[:, start:start + size]))
        start += size
    return pieces


def _merge_similarities(fgraph, node):
    """Replace the ``CosineSimilarity`` nodes of one memory (and ``eps``) by one, of their keys
    joined, cut back into each node's similarities."""
    memory = node.inputs[1]
    nodes = []
    for client, _ in fgraph.clients[memory]:
        if (client not in nodes and client.op == node.op and client.inputs[1] is memory
                and _static_heads(client.inputs[0]) is not None
                and client.inputs[0].type.dtype == node.inputs[0].type.dtype):
            nodes.append(client)
    if len(nodes) < 2 or node not in nodes:
        return None
    merged = node.op(pt.join(1, *[n.inputs[0] for n in nodes]), memory)
    sizes = [_static_heads(n.inputs[0]) for n in nodes]
    outputs = [n.outputs[0] for n in nodes]
    return dict(zip(outputs, _cut(merged, sizes, outputs)))


merge_similarities = node_rewriter([CosineSimilarity])(_merge_similarities)


def _merge_similarity_gradients(fgraph, node):
    """In an ``Add``, replace the memory gradients of ``CosineSimilarityGrad`` nodes of one
    memory (read by nothing else) by the memory gradient of one node of their keys and output
    gradients joined; its key gradient is cut back into each node's."""
    if not isinstance(node.op.scalar_op, ScalarAdd):
        return None
    groups = {}
    for i, x in enumerate(node.inputs):
        grad = x.owner
        if (grad is not None and isinstance(grad.op, CosineSimilarityGrad)
                and x is grad.outputs[1] and len(fgraph.clients[x]) == 1
                and _static_heads(grad.inputs[0]) is not None):
            groups.setdefault((grad.inputs[1], grad.op), []).append(i)
    merged = next((g for g in groups.values() if len(g) > 1), None)
    if merged is None:
        return None
    grads = [node.inputs[i].owner for i in merged]
    memory, op = grads[0].inputs[1], grads[0].op
    d_keys, d_memory = op(pt.join(1, *[g.inputs[0] for g in grads]), memory,
                          pt.join(1, *[g.inputs[2] for g in grads]))
    inputs = [d_memory if i == merged[0] else x for i, x in enumerate(node.inputs)
              if i not in merged[1:]]
    total = node.op(*inputs) if len(inputs) > 1 else inputs[0]
    replacements = {node.outputs[0]: node.outputs[0].type.filter_variable(total)}
    key_grads = [g.outputs[0] for g in grads]
    for old, new in zip(key_grads, _cut(d_keys, [_static_heads(g.inputs[0]) for g in grads],
                                        key_grads)):
        if fgraph.clients.get(old):
            replacements[old] = new
    return replacements


merge_similarity_gradients = node_rewriter([Elemwise])(_merge_similarity_gradients)


def _tanh_kernel(fgraph, node):
    """Replace PyTensor's ``tanh`` of a float32 array by :class:`~ntm.accel.tanh_kernel.Tanh`."""
    if not isinstance(node.op.scalar_op, ScalarTanh) or node.outputs[0].type.dtype != "float32":
        return None
    (x,) = node.inputs
    if x.type != node.outputs[0].type:
        return None
    return [Tanh()(x)]


tanh_kernel = node_rewriter([Elemwise])(_tanh_kernel)


class SumInOrderInplace(InplaceGraphOptimizer):
    """Make each :class:`~ntm.accel.memory_kernels.SumInOrder` write over its first or second input,
    whichever nothing else needs (PyTensor's checks decide which may be destroyed)."""

    op = SumInOrder

    def filter_candidate_pairs(self, fgraph, node, protected_inputs):
        if node.op.inplace is not None:
            return []
        output = node.outputs[0]
        candidates = set(inplace_candidates(fgraph, node.inputs,
                                            protected_inputs=protected_inputs))
        return [((0, output), (i, x)) for i, x in enumerate(node.inputs[:2])
                if x in candidates and x.type == output.type]

    def create_inplace_node(self, node, inplace_pattern):
        (index,) = inplace_pattern[0]
        return SumInOrder(inplace=index).make_node(*node.inputs)


def _all_zeros(variable):
    """Whether ``variable`` is an allocation filled with the constant 0."""
    owner = variable.owner
    return (owner is not None and isinstance(owner.op, Alloc)
            and isinstance(owner.inputs[0], Constant) and not np.any(owner.inputs[0].data))


def _inner_graph(op):
    """A scan's step as ``(inputs, outputs, clients)`` that may be rewritten: a mutable copy
    where PyTensor keeps the step frozen (3.1 and newer), else the step itself."""
    inner = op.fgraph.unfreeze() if hasattr(op.fgraph, "unfreeze") else op.fgraph
    return list(inner.inputs), list(inner.outputs), inner.clients


def _scan_zero_gradient_taps(fgraph, node):
    """Replace, in a scan's step, each mit-mot tap that can only read a buffer's zeros by a zero
    tensor of its shape (see the module docstring)."""
    op, info = node.op, node.op.info
    inner_inputs, inner_outputs, inner_clients = _inner_graph(op)
    position = info.n_seqs  # the step's inputs: sequences, then every mit-mot's taps
    replace = {}
    for state, (in_taps, out_taps) in enumerate(zip(info.mit_mot_in_slices,
                                                     info.mit_mot_out_slices)):
        zeros = _all_zeros(node.inputs[1 + info.n_seqs + state])
        for index, tap in enumerate(in_taps):
            tap_input = inner_inputs[position + index]
            # A tap already replaced is used for its shape only.
            if zeros and all(out_tap <= tap for out_tap in out_taps) and any(
                    not isinstance(client.op, (Shape, Shape_i))
                    for client, _ in inner_clients[tap_input]):
                replace[tap_input] = pt.zeros(tap_input.shape, dtype=tap_input.dtype)
        position += len(in_taps)
    if not replace:
        return None
    outputs = clone_replace(inner_outputs, replace=replace)
    new_op = Scan(inner_inputs, outputs, info, mode=op.mode, profile=op.profile,
                  truncate_gradient=op.truncate_gradient, name=op.name, allow_gc=op.allow_gc)
    return new_op(*node.inputs, return_list=True)


scan_zero_gradient_taps = node_rewriter([Scan])(_scan_zero_gradient_taps)


def _rebuilt_with_sit_sots(node, inner_inputs, inner_outputs, converted, substitutions):
    """The outputs of ``node``'s scan rebuilt with each mit-mot state in ``converted`` (indices
    of states with input taps (0, 1) and output tap 1) as a sit-sot state (tap -1) placed after
    the existing ones, its tap-0 input becoming the sit-sot's input and its tap-1 input dropped
    (``substitutions`` replaces it inside the step first). Returns the old outputs' new
    counterparts in the old order."""
    op, info = node.op, node.op.info
    inputs, outputs = inner_inputs, clone_replace(inner_outputs, replace=substitutions)
    kept = [state for state in range(info.n_mit_mot) if state not in converted]
    mit_mot_inputs = op.inner_mitmot_grouped(inputs)
    mit_mot_outputs = op.inner_mitmot_outs_grouped(outputs)
    new_inner_inputs = (
        op.inner_seqs(inputs) + [tap for state in kept for tap in mit_mot_inputs[state]]
        + op.inner_mitsot(inputs) + op.inner_sitsot(inputs)
        + [mit_mot_inputs[state][0] for state in converted]
        + op.inner_untraced_sit_sot(inputs) + op.inner_non_seqs(inputs))
    new_inner_outputs = (
        [out for state in kept for out in mit_mot_outputs[state]]
        + op.inner_mitsot_outs(outputs) + op.inner_sitsot_outs(outputs)
        + [mit_mot_outputs[state][0] for state in converted]
        + op.inner_nitsot_outs(outputs) + op.inner_untraced_sit_sot_outs(outputs))
    if info.as_while:
        new_inner_outputs.append(outputs[-1])
    outer_mit_mot = op.outer_mitmot(node.inputs)
    new_outer_inputs = (
        [node.inputs[0]] + op.outer_seqs(node.inputs) + [outer_mit_mot[s] for s in kept]
        + op.outer_mitsot(node.inputs) + op.outer_sitsot(node.inputs)
        + [outer_mit_mot[s] for s in converted] + op.outer_untraced_sit_sot(node.inputs)
        + op.outer_nitsot(node.inputs) + op.outer_non_seqs(node.inputs))
    new_info = dataclasses.replace(
        info,
        mit_mot_in_slices=tuple(info.mit_mot_in_slices[s] for s in kept),
        mit_mot_out_slices=tuple(info.mit_mot_out_slices[s] for s in kept),
        sit_sot_in_slices=info.sit_sot_in_slices + ((-1,),) * len(converted))
    new_op = Scan(new_inner_inputs, new_inner_outputs, new_info, mode=op.mode,
                  profile=op.profile, truncate_gradient=op.truncate_gradient, name=op.name,
                  allow_gc=op.allow_gc)
    new_outs = new_op(*new_outer_inputs, return_list=True)
    # Outer outputs: mit-mot | mit-sot | sit-sot | nit-sot | untraced sit-sot.
    n_kept, n_before = len(kept), info.n_mit_sot + info.n_sit_sot
    old_to_new = [None] * len(node.outputs)
    for position, state in enumerate(kept):
        old_to_new[state] = new_outs[position]
    for position, state in enumerate(converted):
        old_to_new[state] = new_outs[n_kept + n_before + position]
    for offset in range(len(node.outputs) - info.n_mit_mot):
        new_position = n_kept + offset + (len(converted) if offset >= n_before else 0)
        old_to_new[info.n_mit_mot + offset] = new_outs[new_position]
    return old_to_new


def _scan_zero_gradient_states_as_sit_sot(fgraph, node):
    """Turn each mit-mot state of a scan's gradient whose buffer is all zeros and whose tap 1
    is no longer read (see :data:`scan_zero_gradient_taps`) into a sit-sot state, so that
    PyTensor's memory rewrites can keep only the steps that are used (see the module
    docstring)."""
    op, info = node.op, node.op.info
    inner_inputs, inner_outputs, inner_clients = _inner_graph(op)
    mit_mot_inputs = op.inner_mitmot_grouped(inner_inputs)
    mit_mot_outputs = op.inner_mitmot_outs_grouped(inner_outputs)
    converted, substitutions = [], {}
    for state, (in_taps, out_taps) in enumerate(zip(info.mit_mot_in_slices,
                                                     info.mit_mot_out_slices)):
        if tuple(in_taps) != (0, 1) or tuple(out_taps) != (1,):
            continue
        if not _all_zeros(node.inputs[1 + info.n_seqs + state]):
            continue
        tap0, tap1 = mit_mot_inputs[state]
        if tap0.type != mit_mot_outputs[state][0].type:
            continue
        if any(not isinstance(client.op, (Shape, Shape_i))
               for client, _ in inner_clients[tap1]):
            continue
        converted.append(state)
        substitutions[tap1] = tap0  # the same shape: both are one step of the buffer
    if not converted:
        return None
    return _rebuilt_with_sit_sots(node, inner_inputs, inner_outputs, converted, substitutions)


scan_zero_gradient_states_as_sit_sot = node_rewriter([Scan])(_scan_zero_gradient_states_as_sit_sot)


def _scan_reversed_tail_as_slice(fgraph, node):
    """Write ``out[:stop:-1]`` of a scan's output (its last ``-stop - 1`` steps, reversed) as
    ``out[stop + 1:][::-1]``, a tail that PyTensor's memory rewrites recognise (see the module
    docstring). A tail of one step needs no reversal."""
    x = node.inputs[0]
    if x.owner is None or not isinstance(x.owner.op, Scan) or len(node.op.idx_list) != 1:
        return None
    (index,) = get_idx_list(node.inputs, node.op.idx_list)
    if not isinstance(index, slice) or index.start is not None:
        return None
    try:
        stop, step = (int(get_scalar_constant_value(value))
                      for value in (index.stop, index.step))
    except (NotScalarConstantError, TypeError):
        return None
    if step != -1 or stop >= -1:
        return None
    tail = x[stop + 1:]
    return [tail if stop == -2 else tail[::-1]]


scan_reversed_tail_as_slice = node_rewriter([Subtensor])(_scan_reversed_tail_as_slice)


def _scan_buffer_per_state(fgraph, node):
    """Give an ``IncSubtensor`` that sets part of an ``AllocEmpty`` shared with other nodes an
    ``AllocEmpty`` of its own (see the module docstring), so that it can set it in place."""
    if node.op.inplace or not node.op.set_instead_of_inc:
        return None
    buffer = node.inputs[0]
    if (buffer.owner is None or not isinstance(buffer.owner.op, AllocEmpty)
            or len(fgraph.clients[buffer]) < 2):
        return None
    own = buffer.owner.op.make_node(*buffer.owner.inputs).outputs[0]
    return [node.op(own, *node.inputs[1:])]


scan_buffer_per_state = node_rewriter([IncSubtensor])(_scan_buffer_per_state)


def mode_rewrites(backend):
    """The rewrites of this module for a mode of ``backend`` (``"c"``: PyTensor's C virtual
    machines; ``"numba"``; anything else: those every backend may run), as ``(rewriter,
    position)`` pairs for ``Mode.register``: nothing is registered in PyTensor's own database,
    so they run only in the modes :func:`ntm.accel.mode` builds.

    The positions are PyTensor's phases: the scan rewrites in this order before those that
    remove a scan's unused inputs and outputs and shrink its buffers (1.605); the softmax, the
    addressing, the similarity and the tangent rewrites right after ``specialize`` (2); the sum
    after the elementwise fusion (49), the buffers of their own just before the in-place
    rewrites (50.05) and the sum's in-place version among them (50.x).
    """
    rewrites = [
        (dfs_rewriter(scan_zero_gradient_taps, ignore_newtrees=True), 1.604),
        (dfs_rewriter(scan_zero_gradient_states_as_sit_sot, ignore_newtrees=True), 1.6042),
        (dfs_rewriter(scan_reversed_tail_as_slice, ignore_newtrees=True), 1.6043),
        (dfs_rewriter(drop_unread_addressing_saves), 2.06),
    ]
    if backend == "c":
        rewrites += [(dfs_rewriter(inline_softmax), 2.05),
                     (dfs_rewriter(merge_similarities), 2.08),
                     (dfs_rewriter(merge_similarity_gradients), 2.09),
                     (dfs_rewriter(tanh_kernel), 2.1),
                     (dfs_rewriter(sum_in_order), 49.2),
                     (dfs_rewriter(scan_buffer_per_state, ignore_newtrees=True), 50.05),
                     (SumInOrderInplace(), 50.55)]
    elif backend == "numba":
        rewrites += [(dfs_rewriter(split_as_slices), 2.07)]
    return rewrites
