"""Constant padding of the trailing axes of a tensor."""
import numbers

import pytensor.tensor as pt
from pytensor.graph.basic import Variable

__all__ = ["pad"]


def _pairs(width, ndim):
    """``width`` as one ``(before, after)`` pair per padded axis."""
    if isinstance(width, (numbers.Integral, Variable)):
        return [(width, width)] * ndim
    width = list(width)
    if len(width) != ndim:
        raise ValueError(f"pad width must be an int or one entry per padded axis ({ndim}), "
                         f"got {width!r}")
    pairs = []
    for w in width:
        if isinstance(w, (tuple, list)):
            if len(w) != 2:
                raise ValueError(f"a pad width pair must have two entries, got {w!r}")
            pairs.append(tuple(w))
        else:
            pairs.append((w, w))
    return pairs


def pad(x, width, val=0, batch_ndim=1):
    r"""Pad the axes of ``x`` after the first ``batch_ndim`` with the constant ``val``.

    Parameters
    ----------
    x : tensor
        The tensor to pad.
    width : int, or iterable of int or (int, int)
        The number of entries added on each side of every padded axis; one value for all axes,
        or one per padded axis, each an int (both sides) or a ``(before, after)`` pair. Entries
        may be symbolic integer scalars.
    val : float
        The value of the added entries.
    batch_ndim : int
        How many leading axes are left alone.

    Returns
    -------
    tensor
        ``x`` with axis ``d`` (``d >= batch_ndim``) grown from :math:`n_d` to
        :math:`n_d + b_d + a_d`, where :math:`(b_d, a_d)` is its pad width.
    """
    x = pt.as_tensor_variable(x)
    pairs = _pairs(width, x.ndim - batch_ndim)
    if all(isinstance(b, numbers.Integral) and isinstance(a, numbers.Integral) and b == a == 0
           for b, a in pairs):
        return x
    static = x.type.shape
    size = [x.shape[d] if s is None else s for d, s in enumerate(static)]
    shape = size[:batch_ndim]
    region = [slice(None)] * batch_ndim
    for d, (before, after) in enumerate(pairs, start=batch_ndim):
        shape.append(size[d] + before + after)
        region.append(slice(before, before + size[d]))
    out = pt.alloc(pt.cast(val, x.dtype), *shape)
    return pt.set_subtensor(out[tuple(region)], x)
