r"""How the heads compute the memory-sized parts of a step: the plain implementation, and the
one place where another is chosen.

Every step of an NTM compares its heads' keys with every memory row, reads and writes the
memory and turns similarities into weightings. :class:`Implementation` computes them with
ordinary PyTensor tensor operations, the paper's equations as written in :mod:`ntm.heads`
and :mod:`ntm.similarities`; any PyTensor backend (C, Numba, JAX) can compile it.

Another implementation (:mod:`ntm.accel` provides one, with fused kernels) subclasses it and
is put in force for the graphs built inside :func:`using`. The model asks :func:`active`
when it builds a graph (``get_output``), so a network built once can be compiled with either.
The model never imports an implementation other than its own.
"""
import threading
from contextlib import contextmanager

import pytensor.tensor as pt

__all__ = ["Implementation", "PLAIN", "active", "using", "SIMILARITY_EPSILON"]

#: :math:`\epsilon` of the heads' cosine similarity (keeps it finite for zero vectors).
SIMILARITY_EPSILON = 1e-6


class Implementation:
    """The memory-sized computations of an NTM step as ordinary tensor operations.

    Subclasses replace any of the methods with an equivalent computation; the shapes and the
    values are those documented here.
    """

    #: a short name, for messages and cache keys.
    name = "plain"

    #: how many variables :meth:`saved_for_gradient` gives for a scan to keep.
    num_saved = 0

    #: the mode a scan over such a step names for its inner function (``None``: PyTensor's
    #: choice: the outer function's mode, or ``config.mode`` where the scan needs one).
    scan_mode = None

    def cosine_similarity(self, keys, memory, eps):
        r""":math:`K[b, h, n] = \dfrac{k_{bh} \cdot M_{bn}}{\lVert k_{bh} \rVert
        \lVert M_{bn} \rVert + \epsilon}` for keys ``(batch, heads, M)`` and memory
        ``(batch, N, M)``: ``(batch, heads, N)``."""
        dots = pt.matmul(keys, memory.transpose(0, 2, 1))
        key_norms = _norm(keys)
        row_norms = _norm(memory)
        return dots / (key_norms[:, :, None] * row_norms[:, None, :] + eps)

    def read(self, weights, memory):
        r""":math:`r_h = \sum_n w_h[n] M_n` for weights ``(batch, heads, N)`` and memory
        ``(batch, N, M)``: ``(batch, heads, M)``."""
        return pt.matmul(weights, memory)

    def write(self, memory, weights, erase, add):
        r""":math:`M \odot \prod_h (1 - w_h e_h^\top) + \sum_h w_h a_h^\top` for memory
        ``(batch, N, M)``, weights ``(batch, heads, N)``, erase and add ``(batch, heads, M)``."""
        if weights.type.shape[1] == 1:
            w = weights[:, 0, :, None]
            return memory * (1.0 - w * erase[:, 0, None, :]) + w * add[:, 0, None, :]
        keep = pt.prod(1.0 - weights[:, :, :, None] * erase[:, :, None, :], axis=1)
        return memory * keep + pt.matmul(weights.transpose(0, 2, 1), add)

    def address(self, emitted, previous_weights, memory, num_locations, num_shifts,
                shift_mode, save_intermediates=False):
        r"""The new weightings ``(batch, heads, N)`` from what the heads emitted (a dict of
        ``key``, ``beta``, ``gate``, ``shift`` and ``gamma``), the previous weightings and
        the memory: content addressing :math:`\mathrm{softmax}(\beta K(k, M))`, then
        :func:`~ntm.heads.interpolate`, :func:`~ntm.heads.shift` and
        :func:`~ntm.heads.sharpen`. ``save_intermediates`` asks for what
        :meth:`saved_for_gradient` returns."""
        from .heads import content_addressing, interpolate, sharpen, shift

        content = content_addressing(emitted["key"], emitted["beta"], memory, self)
        gated = interpolate(content, previous_weights, emitted["gate"])
        shifted = shift(gated, emitted["shift"], num_locations, shift_mode, num_shifts)
        return sharpen(shifted, emitted["gamma"])

    def saved_for_gradient(self, weights):
        """Variables of the step that made ``weights`` (by :meth:`address` with
        ``save_intermediates``) which a scan should output so that its gradient reads them
        instead of computing them again: none here."""
        return []


def _norm(x):
    r""":math:`\lVert x \rVert` over the last axis, whose gradient at a zero vector is 0 (its
    direction :math:`x / \lVert x \rVert` taken as 0, as the fused ops take it) rather than
    NaN: the squares' sum is floored at :math:`10^{-30}` (a zero vector's norm is then
    :math:`10^{-15}`, which changes no similarity: its dot products are 0)."""
    squares = pt.sum(x ** 2, axis=-1)
    return pt.sqrt(pt.maximum(squares, pt.constant(1e-30, dtype=squares.dtype)))


#: The plain implementation.
PLAIN = Implementation()

_local = threading.local()


def active():
    """The implementation the graphs built now use (:data:`PLAIN` outside :func:`using`)."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else PLAIN


@contextmanager
def using(implementation):
    """Build the NTM graphs of this thread with ``implementation`` while the context lasts."""
    if not isinstance(implementation, Implementation):
        raise TypeError(f"using: expected an ntm.implementation.Implementation, got "
                        f"{implementation!r}")
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(implementation)
    try:
        yield implementation
    finally:
        stack.pop()
