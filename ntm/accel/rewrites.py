r"""Graph rewrites registered on ``import ntm``: softmax as compiled elementwise code for
PyTensor's C backend, constant splits as slices for Numba, sums of memory-sized arrays in one
vectorised loop, no additions of zeros and no buffers of zeros in a scan's gradient, no saved
addressing intermediates that nothing reads, and a fixed order for the nodes one of
PyTensor's scan rewrites visits.

PyTensor 3 represents :math:`\mathrm{softmax}(x) = e^{x - \max x} / \sum e^{x - \max x}` (and
log-softmax) as a *symbolic op*: an ``OpFromGraph`` whose inner graph is that expression. A
rewrite even turns a hand-written ``exp(x) / sum(exp(x))`` into one. Numba and JAX compile the
inner graph, but the C backend has no C code for it: every call goes through Python and a
separately compiled inner function. The NTM's step calls four softmaxes per time step (content
addressing and shift weighting of each head), so in the C backend they cost more than the rest
of the step's arithmetic.

:data:`inline_softmax` replaces such nodes by their inner graph during the ``specialize``
phase, after the stabilising rewrites have seen them, so that they are fused and compiled like
any other elementwise code. It is registered on ``import ntm`` with the ``cxx_only`` tag, so it
runs for the C backends (``CVM``, ``C``, ``FAST_RUN``) and not for Numba or JAX. The computed
values are those of the inner graph, i.e. the same expression. Set the environment variable
``NTM_INLINE_SOFTMAX=0`` before importing :mod:`ntm` to leave PyTensor's behaviour unchanged.

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
:class:`~ntm.memory_kernels.SumInOrder`, which adds in the same order in one contiguous loop
(same bits; 21-22 -> 9.5-10 us a step at batch 16 on one thread, 20 -> 6-7 on two, in the
scan's profile that ``benchmarks/train_step.py --profile`` prints with
``PYTENSOR_FLAGS=profile=True``). It runs after the elementwise fusion, so an addition fused
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
a cold buffer, 15% of a training step on one thread (30.2 -> 25.6 ms, ``OMP_NUM_THREADS=1
python benchmarks/train_step.py --modes CVM --batch-sizes 16`` with and without it). The
values are the same (``x + 0 == x``; only the sign of a zero gradient can differ). Set
``NTM_SCAN_ZERO_TAPS=0`` before importing :mod:`ntm` to leave it out, with the next two.

:data:`scan_zero_gradient_states_as_sit_sot` goes on from there. Once such a state's tap 1
is read for its shape only, the state is an ordinary recurrence: step ``t`` reads position
``t`` (tap 0), which step ``t - 1`` wrote, and writes ``t + 1``; only position 0, the initial
zeros, comes from the buffer. That is a sit-sot state (tap -1) with the same buffer, and the
rewrite rebuilds the scan so, the step's computation untouched. As a mit-mot the state kept a
buffer of every step, zeroed before each call (for the copy model's memory at batch 16 and
length 20, 43 x 16 x 128 x 20 floats, 7 MB, 0.9 ms of a 22 ms profiled step); as a sit-sot,
PyTensor's memory rewrites keep the steps that are read, here two.

:data:`scan_reversed_tail_as_slice` lets those rewrites see what is read. The gradient with
respect to a state's initial value reads its last step as ``out[:-2:-1]`` (the buffer
reversed, then its first step), and PyTensor keeps the whole buffer for any slice that
steps backwards. The rewrite writes ``out[:stop:-1]`` of a scan's output as the tail
``out[stop + 1:]``, reversed when it has more than one step: the same values.

:data:`drop_unread_addressing_saves` is for every backend. The NTM's step addresses with
``Addressing(..., save_intermediates=True)``, whose second output keeps what the gradient
needs (:mod:`ntm.addressing_kernels`); a function compiled without the gradient drops the
scan's outputs of them, and the rewrite then gives the step the op without that output, so
that it does not write them at all. The weightings are computed by the same code either way.

:func:`order_scan_push_out_add` fixes an order rather than rewriting anything. PyTensor's
``scan_push_out_add`` moves a step's ``dot`` accumulations (the parameters' gradients in the
backward scan) out of the loop as new per-step outputs, taking the additions in the order it
iterates the step's nodes, a ``set`` whose order follows their memory addresses. So from one
process to the next the backward scan's outputs came in another order: the same computation,
but another Numba cache key, and ``benchmarks/train_step.py --modes NUMBA`` compiled for two
minutes in every run. On ``import ntm`` that rewrite is made to see the nodes in the order of
the step's topological sort, which is fixed by the graph itself.
"""
import dataclasses
import os

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Constant
from pytensor.graph.destroyhandler import inplace_candidates
from pytensor.graph.replace import clone_replace
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.misc.ordered_set import OrderedSet
from pytensor.scalar import Add as ScalarAdd
from pytensor.scan.op import Scan
from pytensor.tensor.basic import Alloc, Split, get_scalar_constant_value
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.rewriting.basic import register_specialize
from pytensor.tensor.rewriting.elemwise import InplaceGraphOptimizer
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import Subtensor, get_idx_list

from .addressing_kernels import Addressing
from .memory_kernels import SumInOrder

__all__ = ["inline_softmax", "split_as_slices", "sum_in_order", "SumInOrderInplace",
           "scan_zero_gradient_taps", "scan_zero_gradient_states_as_sit_sot",
           "scan_reversed_tail_as_slice",
           "drop_unread_addressing_saves", "is_registered", "zero_taps_registered",
           "order_scan_push_out_add"]

_REWRITE_NAME = "ntm_inline_softmax"
_SPLIT_REWRITE_NAME = "ntm_split_as_slices"
_ZERO_TAPS_REWRITE_NAME = "ntm_scan_zero_gradient_taps"
_ZERO_STATES_REWRITE_NAME = "ntm_scan_zero_gradient_states_as_sit_sot"
_REVERSED_TAIL_REWRITE_NAME = "ntm_scan_reversed_tail_as_slice"
_ADDRESSING_SAVES_REWRITE_NAME = "ntm_drop_unread_addressing_saves"
_SUM_REWRITE_NAME = "ntm_sum_in_order"
_SUM_INPLACE_REWRITE_NAME = "ntm_sum_in_order_inplace"
_registered = False


@node_rewriter([Softmax, LogSoftmax])
def inline_softmax(fgraph, node):
    """Replace a ``Softmax``/``LogSoftmax`` node by the expression it stands for."""
    return inline_ofg_node(node)


@node_rewriter([Split])
def split_as_slices(fgraph, node):
    """Replace a ``Split`` whose axis and sizes are constants by one slice per piece."""
    x, axis, sizes = node.inputs
    if not (isinstance(axis, Constant) and isinstance(sizes, Constant)):
        return None
    axis = int(axis.data) % x.type.ndim
    bounds = np.concatenate([[0], np.cumsum(sizes.data)])
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = [slice(None)] * axis + [slice(int(start), int(stop))]
        pieces.append(x[tuple(index)])
    return pieces


@node_rewriter([Addressing])
def drop_unread_addressing_saves(fgraph, node):
    """Replace an ``Addressing`` whose saved intermediates nobody reads by the op without
    them."""
    if not node.op.save_intermediates or fgraph.clients[node.outputs[1]]:
        return None
    weights = Addressing(node.op.shift_mode, node.op.eps)(*node.inputs)
    return {node.outputs[0]: weights}


@node_rewriter([Elemwise])
def sum_in_order(fgraph, node):
    """Replace an ``Add`` of two or more arrays of one type, with three or more axes none of
    which broadcasts, by :class:`~ntm.memory_kernels.SumInOrder` (same values)."""
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


class SumInOrderInplace(InplaceGraphOptimizer):
    """Make each :class:`~ntm.memory_kernels.SumInOrder` write over its first or second input,
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


@node_rewriter([Scan])
def scan_zero_gradient_taps(fgraph, node):
    """Replace, in a scan's step, each mit-mot tap that can only read a buffer's zeros by a zero
    tensor of its shape (see the module docstring)."""
    op, info = node.op, node.op.info
    inner_clients = op.fgraph.clients
    position = info.n_seqs  # the step's inputs: sequences, then every mit-mot's taps
    replace = {}
    for state, (in_taps, out_taps) in enumerate(zip(info.mit_mot_in_slices,
                                                     info.mit_mot_out_slices)):
        zeros = _all_zeros(node.inputs[1 + info.n_seqs + state])
        for index, tap in enumerate(in_taps):
            tap_input = op.inner_inputs[position + index]
            # A tap already replaced is used for its shape only.
            if zeros and all(out_tap <= tap for out_tap in out_taps) and any(
                    not isinstance(client.op, (Shape, Shape_i))
                    for client, _ in inner_clients[tap_input]):
                replace[tap_input] = pt.zeros(tap_input.shape, dtype=tap_input.dtype)
        position += len(in_taps)
    if not replace:
        return None
    outputs = clone_replace(op.inner_outputs, replace=replace)
    new_op = Scan(op.inner_inputs, outputs, info, mode=op.mode, profile=op.profile,
                  truncate_gradient=op.truncate_gradient, name=op.name, allow_gc=op.allow_gc)
    return new_op(*node.inputs, return_list=True)


def _rebuilt_with_sit_sots(node, converted, substitutions):
    """The outputs of ``node``'s scan rebuilt with each mit-mot state in ``converted`` (indices
    of states with input taps (0, 1) and output tap 1) as a sit-sot state (tap -1) placed after
    the existing ones, its tap-0 input becoming the sit-sot's input and its tap-1 input dropped
    (``substitutions`` replaces it inside the step first). Returns the old outputs' new
    counterparts in the old order."""
    op, info = node.op, node.op.info
    inputs, outputs = op.inner_inputs, clone_replace(op.inner_outputs, replace=substitutions)
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


@node_rewriter([Scan])
def scan_zero_gradient_states_as_sit_sot(fgraph, node):
    """Turn each mit-mot state of a scan's gradient whose buffer is all zeros and whose tap 1
    is no longer read (see :data:`scan_zero_gradient_taps`) into a sit-sot state, so that
    PyTensor's memory rewrites can keep only the steps that are used (see the module
    docstring)."""
    op, info = node.op, node.op.info
    inner_clients = op.fgraph.clients
    mit_mot_inputs = op.inner_mitmot_grouped(op.inner_inputs)
    mit_mot_outputs = op.inner_mitmot_outs_grouped(op.inner_outputs)
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
    return _rebuilt_with_sit_sots(node, converted, substitutions)


@node_rewriter([Subtensor])
def scan_reversed_tail_as_slice(fgraph, node):
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


_zero_taps_registered = False


def register_zero_taps():
    """Register :data:`scan_zero_gradient_taps`, :data:`scan_zero_gradient_states_as_sit_sot`
    and :data:`scan_reversed_tail_as_slice` among PyTensor's scan rewrites (once), in that
    order, before those that remove a scan's unused inputs and outputs and shrink its
    buffers."""
    global _zero_taps_registered
    if not _zero_taps_registered:
        optdb.register(_ZERO_TAPS_REWRITE_NAME,
                       dfs_rewriter(scan_zero_gradient_taps, ignore_newtrees=True),
                       "fast_run", "scan", position=1.604)
        optdb.register(_ZERO_STATES_REWRITE_NAME,
                       dfs_rewriter(scan_zero_gradient_states_as_sit_sot,
                                    ignore_newtrees=True),
                       "fast_run", "scan", position=1.6042)
        optdb.register(_REVERSED_TAIL_REWRITE_NAME,
                       dfs_rewriter(scan_reversed_tail_as_slice, ignore_newtrees=True),
                       "fast_run", "scan", position=1.6043)
        _zero_taps_registered = True


def zero_taps_registered():
    """Whether :func:`register_zero_taps` has run."""
    return _zero_taps_registered


def register():
    """Register :data:`inline_softmax` (C backends), :data:`split_as_slices` (Numba) and
    :data:`drop_unread_addressing_saves` (all) in PyTensor's specialize phase, and
    :data:`sum_in_order` (C backends) after its elementwise fusion (once)."""
    global _registered
    if not _registered:
        register_specialize(inline_softmax, "cxx_only", name=_REWRITE_NAME)
        # Tagged "numba" only (not "fast_run"), so only Numba's mode runs it.
        optdb["specialize"].register(_SPLIT_REWRITE_NAME, split_as_slices, "numba")
        register_specialize(drop_unread_addressing_saves, name=_ADDRESSING_SAVES_REWRITE_NAME)
        # After elementwise fusion (49), before the inplace rewrites (50.x).
        optdb.register(_SUM_REWRITE_NAME, dfs_rewriter(sum_in_order), "fast_run", "cxx_only",
                       position=49.2)
        optdb.register(_SUM_INPLACE_REWRITE_NAME, SumInOrderInplace(), "fast_run", "inplace",
                       "cxx_only", position=50.55)
        _registered = True


def is_registered():
    """Whether :func:`register` has run."""
    return _registered


def _in_topological_order(transform):
    """``transform(fgraph, node)`` for a scan node, run while the scan's inner graph hands out
    its nodes in topological order."""
    def ordered_transform(fgraph, node):
        inner = node.op.fgraph
        nodes = inner.apply_nodes
        if not isinstance(nodes, set):
            return transform(fgraph, node)
        ordered = OrderedSet(inner.toposort())
        ordered.update(apply for apply in nodes if apply not in ordered)  # none, if valid
        inner.apply_nodes = ordered
        try:
            return transform(fgraph, node)
        finally:
            inner.apply_nodes = nodes if set(ordered) == nodes else set(ordered)

    ordered_transform.original = transform
    return ordered_transform


def order_scan_push_out_add():
    """Make PyTensor's ``scan_push_out_add`` take a scan step's nodes in topological order
    (once; does nothing where PyTensor has no such rewrite). Returns whether it is done."""
    try:
        from pytensor.scan.rewriting.push_out import scan_push_out_add
    except ImportError:
        return False
    transform = getattr(scan_push_out_add, "fn", None)
    if transform is None:
        return False
    if not hasattr(transform, "original"):
        scan_push_out_add.fn = _in_topological_order(transform)
    return True


order_scan_push_out_add()
if os.environ.get("NTM_INLINE_SOFTMAX", "1").strip().lower() not in ("0", "off", "false", "no"):
    register()
if os.environ.get("NTM_SCAN_ZERO_TAPS", "1").strip().lower() not in ("0", "off", "false", "no"):
    register_zero_taps()
