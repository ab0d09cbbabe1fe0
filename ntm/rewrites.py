r"""A graph rewrite for PyTensor's C backend: softmax as compiled elementwise code.

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
"""
import os

from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.tensor.rewriting.basic import register_specialize
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from pytensor.tensor.special import LogSoftmax, Softmax

__all__ = ["inline_softmax", "is_registered"]

_REWRITE_NAME = "ntm_inline_softmax"
_registered = False


@node_rewriter([Softmax, LogSoftmax])
def inline_softmax(fgraph, node):
    """Replace a ``Softmax``/``LogSoftmax`` node by the expression it stands for."""
    return inline_ofg_node(node)


def register():
    """Register :data:`inline_softmax` in PyTensor's specialize phase (once)."""
    global _registered
    if not _registered:
        register_specialize(inline_softmax, "cxx_only", name=_REWRITE_NAME)
        _registered = True


def is_registered():
    """Whether :func:`register` has run."""
    return _registered


if os.environ.get("NTM_INLINE_SOFTMAX", "1").strip().lower() not in ("0", "off", "false", "no"):
    register()
