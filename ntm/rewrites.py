r"""Graph rewrites registered on ``import ntm``: softmax as compiled elementwise code for
PyTensor's C backend, constant splits as slices for Numba, no additions of zeros in a
scan's gradient, no saved addressing intermediates that nothing reads, and a fixed order for
the nodes one of PyTensor's scan rewrites visits.

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
``NTM_SCAN_ZERO_TAPS=0`` before importing :mod:`ntm` to leave it out.

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
import os

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Constant
from pytensor.graph.replace import clone_replace
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.misc.ordered_set import OrderedSet
from pytensor.scan.op import Scan
from pytensor.tensor.basic import Alloc, Split
from pytensor.tensor.rewriting.basic import register_specialize
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.special import LogSoftmax, Softmax

from .addressing_kernels import Addressing

__all__ = ["inline_softmax", "split_as_slices", "scan_zero_gradient_taps",
           "drop_unread_addressing_saves", "is_registered", "zero_taps_registered",
           "order_scan_push_out_add"]

_REWRITE_NAME = "ntm_inline_softmax"
_SPLIT_REWRITE_NAME = "ntm_split_as_slices"
_ZERO_TAPS_REWRITE_NAME = "ntm_scan_zero_gradient_taps"
_ADDRESSING_SAVES_REWRITE_NAME = "ntm_drop_unread_addressing_saves"
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


_zero_taps_registered = False


def register_zero_taps():
    """Register :data:`scan_zero_gradient_taps` among PyTensor's scan rewrites (once), before
    those that remove a scan's unused inputs and outputs."""
    global _zero_taps_registered
    if not _zero_taps_registered:
        optdb.register(_ZERO_TAPS_REWRITE_NAME,
                       dfs_rewriter(scan_zero_gradient_taps, ignore_newtrees=True),
                       "fast_run", "scan", position=1.604)
        _zero_taps_registered = True


def zero_taps_registered():
    """Whether :func:`register_zero_taps` has run."""
    return _zero_taps_registered


def register():
    """Register :data:`inline_softmax` (C backends), :data:`split_as_slices` (Numba) and
    :data:`drop_unread_addressing_saves` (all) in PyTensor's specialize phase (once)."""
    global _registered
    if not _registered:
        register_specialize(inline_softmax, "cxx_only", name=_REWRITE_NAME)
        # Tagged "numba" only (not "fast_run"), so only Numba's mode runs it.
        optdb["specialize"].register(_SPLIT_REWRITE_NAME, split_as_slices, "numba")
        register_specialize(drop_unread_addressing_saves, name=_ADDRESSING_SAVES_REWRITE_NAME)
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
