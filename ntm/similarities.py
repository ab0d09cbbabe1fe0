r"""Similarity measures for content addressing."""
import pytensor.tensor as pt

from . import memory_kernels

__all__ = ["cosine_similarity"]


def cosine_similarity(keys, memory, eps=1e-6, fused=None):
    r"""Cosine similarity of each key with each memory row.

    .. math::
        K(k, M_i) = \frac{k \cdot M_i}{\lVert k \rVert \, \lVert M_i \rVert + \epsilon}

    Parameters
    ----------
    keys : tensor of shape ``(batch, heads, M)``
    memory : tensor of shape ``(batch, N, M)``
    eps : float
        Keeps the ratio finite for zero vectors.
    fused : bool, optional
        Compute it with one :class:`~ntm.memory_kernels.CosineSimilarity` op (one pass over
        the memory, and one for the gradient) instead of ordinary tensor operations; by
        default as :data:`~ntm.memory_kernels.FUSED_MEMORY_ENABLED` says.

    Returns
    -------
    tensor of shape ``(batch, heads, N)``
    """
    if memory_kernels.use_fused(fused):
        return memory_kernels.CosineSimilarity(eps)(keys, memory)
    dots = pt.matmul(keys, memory.transpose(0, 2, 1))
    key_norms = pt.sqrt(pt.sum(keys ** 2, axis=-1))
    row_norms = pt.sqrt(pt.sum(memory ** 2, axis=-1))
    return dots / (key_norms[:, :, None] * row_norms[:, None, :] + eps)
