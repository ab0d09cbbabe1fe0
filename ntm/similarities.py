r"""Similarity measures for content addressing."""
from .implementation import SIMILARITY_EPSILON, active

__all__ = ["cosine_similarity"]


def cosine_similarity(keys, memory, eps=SIMILARITY_EPSILON, implementation=None):
    r"""Cosine similarity of each key with each memory row.

    .. math::
        K(k, M_i) = \frac{k \cdot M_i}{\lVert k \rVert \, \lVert M_i \rVert + \epsilon}

    Parameters
    ----------
    keys : tensor of shape ``(batch, heads, M)``
    memory : tensor of shape ``(batch, N, M)``
    eps : float
        Keeps the ratio finite for zero vectors.
    implementation : :class:`~ntm.implementation.Implementation`, optional
        What computes it (default: :func:`ntm.implementation.active`; the plain one is
        ordinary tensor operations).

    Returns
    -------
    tensor of shape ``(batch, heads, N)``
    """
    return (implementation or active()).cosine_similarity(keys, memory, eps)
