r"""Graph rewrites registered on ``import ntm``: softmax as compiled elementwise code for
PyTensor's C backend, and constant splits as slices for Numba.

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
"""
import os

import numpy as np
from pytensor.compile import optdb
from pytensor.graph.basic import Constant
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.tensor.basic import Split
from pytensor.tensor.rewriting.basic import register_specialize
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from pytensor.tensor.special import LogSoftmax, Softmax

__all__ = ["inline_softmax", "split_as_slices", "is_registered"]

_REWRITE_NAME = "ntm_inline_softmax"
_SPLIT_REWRITE_NAME = "ntm_split_as_slices"
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


def register():
    """Register :data:`inline_softmax` (C backends) and :data:`split_as_slices` (Numba) in
    PyTensor's specialize phase (once)."""
    global _registered
    if not _registered:
        register_specialize(inline_softmax, "cxx_only", name=_REWRITE_NAME)
        # Tagged "numba" only (not "fast_run"), so only Numba's mode runs it.
        optdb["specialize"].register(_SPLIT_REWRITE_NAME, split_as_slices, "numba")
        _registered = True


def is_registered():
    """Whether :func:`register` has run."""
    return _registered


if os.environ.get("NTM_INLINE_SOFTMAX", "1").strip().lower() not in ("0", "off", "false", "no"):
    register()
