"""Layers that combine several inputs: concatenation and elementwise merges."""
import numbers

import pytensor.tensor as pt

from .base import MergeLayer

__all__ = ["ConcatLayer", "concat", "ElemwiseMergeLayer", "ElemwiseSumLayer"]


def _merge_shapes(input_shapes, skip_axis=None, who="layer"):
    """The common shape of ``input_shapes``; ``None`` where all are unknown."""
    ndims = {len(s) for s in input_shapes}
    if len(ndims) != 1:
        raise ValueError(f"{who}: inputs must have the same number of dimensions, got {input_shapes}")
    ndim = ndims.pop()
    skip = None if skip_axis is None else skip_axis % ndim
    merged = []
    for axis in range(ndim):
        sizes = {s[axis] for s in input_shapes} - {None}
        if axis == skip:
            merged.append(None)
            continue
        if len(sizes) > 1:
            raise ValueError(f"{who}: input shapes {input_shapes} disagree on axis {axis}")
        merged.append(sizes.pop() if sizes else None)
    return merged


class ConcatLayer(MergeLayer):
    """Concatenates its inputs along ``axis``; the other axes must agree.

    Parameters
    ----------
    incomings : list of Layer or tuple
    axis : int
        The axis to concatenate along (default 1).
    cropping : None
        Kept for API compatibility; only ``None`` is supported.
    """

    def __init__(self, incomings, axis=1, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        if cropping is not None:
            raise NotImplementedError("ConcatLayer supports only cropping=None")
        self.axis, self.cropping = axis, cropping
        self.output_shape  # validate the input shapes now

    def get_output_shape_for(self, input_shapes):
        merged = _merge_shapes(input_shapes, self.axis, "ConcatLayer")
        sizes = [s[self.axis] for s in input_shapes]
        merged[self.axis] = None if None in sizes else sum(sizes)
        return tuple(merged)

    def get_output_for(self, inputs, **kwargs):
        return pt.concatenate(inputs, axis=self.axis)


concat = ConcatLayer


class ElemwiseMergeLayer(MergeLayer):
    """Merges inputs of one shape elementwise with a binary ``merge_function``
    (e.g. ``pytensor.tensor.mul``)."""

    def __init__(self, incomings, merge_function, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        if cropping is not None:
            raise NotImplementedError("ElemwiseMergeLayer supports only cropping=None")
        self.merge_function = merge_function
        self.output_shape

    def get_output_shape_for(self, input_shapes):
        return tuple(_merge_shapes(input_shapes, None, self.__class__.__name__))

    def get_output_for(self, inputs, **kwargs):
        output = inputs[0]
        for other in inputs[1:]:
            output = self.merge_function(output, other)
        return output


class ElemwiseSumLayer(ElemwiseMergeLayer):
    r"""The weighted sum :math:`\sum_i c_i x_i` of inputs of one shape.

    Parameters
    ----------
    coeffs : float, scalar expression, or list of them
        One coefficient for all inputs, or a list of one per input.

    Raises
    ------
    ValueError
        If a list of coefficients does not have one per input.
    """

    def __init__(self, incomings, coeffs=1, cropping=None, **kwargs):
        super().__init__(incomings, pt.add, cropping=cropping, **kwargs)
        if isinstance(coeffs, list):
            if len(coeffs) != len(incomings):
                raise ValueError(f"ElemwiseSumLayer got {len(coeffs)} coeffs for "
                                 f"{len(incomings)} incomings")
        else:
            coeffs = [coeffs] * len(incomings)
        self.coeffs = coeffs

    def get_output_for(self, inputs, **kwargs):
        return super().get_output_for(
            [x if isinstance(c, numbers.Number) and c == 1 else c * x
             for c, x in zip(self.coeffs, inputs)])
