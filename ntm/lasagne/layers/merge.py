"""Layers that combine several inputs: concatenation and elementwise merges, with optional
cropping of inputs of different sizes to a common size."""
import numbers

import pytensor.tensor as pt

from .base import MergeLayer

__all__ = ["autocrop", "autocrop_array_shapes", "ConcatLayer", "concat", "ElemwiseMergeLayer",
           "ElemwiseSumLayer"]

_CROP_MODES = ("lower", "center", "upper")


def _full_cropping(cropping, ndim):
    cropping = list(cropping) + [None] * max(0, ndim - len(cropping))
    for mode in cropping:
        if mode is not None and mode not in _CROP_MODES:
            raise ValueError(f"Unknown crop mode '{mode}': expected None, 'lower', 'center' or "
                             "'upper'")
    return cropping


def autocrop(inputs, cropping):
    """Crop ``inputs`` (tensors of the same number of dimensions) to a common size on the axes
    where ``cropping`` says so.

    Parameters
    ----------
    inputs : list of tensors
    cropping : None or list of {None, 'lower', 'center', 'upper'}
        One entry per leading axis (missing entries are ``None``): ``None`` leaves the axis
        alone; the others cut every input down to the smallest size on that axis, keeping the
        first entries (``'lower'``), the last (``'upper'``) or the middle (``'center'``,
        dropping ``(size - smallest) // 2`` at the start).

    Returns
    -------
    list of tensors

    Raises
    ------
    ValueError
        If the inputs differ in dimensionality, or a mode is unknown.
    """
    if cropping is None:
        return inputs
    inputs = [pt.as_tensor_variable(x) for x in inputs]
    ndims = [x.ndim for x in inputs]
    if len(set(ndims)) != 1:
        raise ValueError(f"Not all inputs are of the same dimensionality. Got {len(inputs)} "
                         f"inputs of dimensionalities {ndims}.")
    cropping = _full_cropping(cropping, ndims[0])
    slices = [[] for _ in inputs]
    for axis, mode in enumerate(cropping):
        if mode is None:
            for s in slices:
                s.append(slice(None))
            continue
        sizes = [x.shape[axis] for x in inputs]
        smallest = sizes[0]
        for size in sizes[1:]:
            smallest = pt.minimum(smallest, size)
        for s, size in zip(slices, sizes):
            if mode == "lower":
                s.append(slice(None, smallest))
            elif mode == "upper":
                s.append(slice(size - smallest, None))
            else:
                start = (size - smallest) // 2
                s.append(slice(start, start + smallest))
    return [x[tuple(s)] for x, s in zip(inputs, slices)]


def autocrop_array_shapes(input_shapes, cropping):
    """The shapes that :func:`autocrop` gives for inputs of ``input_shapes`` (``None`` for a
    cropped axis whose size is unknown in any input).

    Raises
    ------
    ValueError
        If the shapes differ in length, or a mode is unknown.
    """
    if cropping is None:
        return input_shapes
    ndims = [len(s) for s in input_shapes]
    if len(set(ndims)) != 1:
        raise ValueError(f"Not all inputs are of the same dimensionality. Got "
                         f"{len(input_shapes)} inputs of dimensionalities {ndims}.")
    cropping = _full_cropping(cropping, ndims[0])
    columns = []
    for sizes, mode in zip(zip(*input_shapes), cropping):
        if mode is None:
            columns.append(sizes)
        else:
            smallest = None if any(s is None for s in sizes) else min(sizes)
            columns.append([smallest] * len(sizes))
    return [tuple(shape) for shape in zip(*columns)]


def _merge_shapes(input_shapes, skip_axis=None, who="layer"):
    """The common shape of ``input_shapes``; ``None`` where all are unknown."""
    ndims = {len(s) for s in input_shapes}
    if len(ndims) != 1:
        raise ValueError(f"{who}: inputs must have the same number of dimensions, got "
                         f"{input_shapes}")
    ndim = ndims.pop()
    skip = None if skip_axis is None else skip_axis % ndim
    merged = []
    for axis in range(ndim):
        sizes = {s[axis] for s in input_shapes} - {None}
        if axis == skip:
            merged.append(None)
            continue
        if len(sizes) > 1:
            raise ValueError(f"{who}: Mismatch: input shapes {input_shapes} disagree on axis "
                             f"{axis}")
        merged.append(sizes.pop() if sizes else None)
    return merged


class ConcatLayer(MergeLayer):
    """Concatenates its inputs along ``axis``; the other axes must agree (after cropping).

    Parameters
    ----------
    incomings : list of Layer or tuple
    axis : int
        The axis to concatenate along (default 1).
    cropping : None or list of {None, 'lower', 'center', 'upper'}
        Crop the inputs to a common size first (see :func:`autocrop`); the concatenation
        axis is never cropped (its entry is taken as ``None``), since the inputs need not
        agree along it.
    """

    def __init__(self, incomings, axis=1, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        self.axis = axis
        if cropping is not None:
            _full_cropping(cropping, 0)
            # the concatenation axis keeps each input's own size
            crop_axis = axis % len(self.input_shapes[0]) if axis < 0 else axis
            cropping = list(cropping) + [None] * max(0, crop_axis + 1 - len(cropping))
            cropping[crop_axis] = None
        self.cropping = cropping

    def get_output_shape_for(self, input_shapes):
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        merged = _merge_shapes(input_shapes, self.axis, "ConcatLayer")
        sizes = [s[self.axis] for s in input_shapes]
        merged[self.axis] = None if None in sizes else sum(sizes)
        return tuple(merged)

    def get_output_for(self, inputs, **kwargs):
        return pt.concatenate(autocrop(inputs, self.cropping), axis=self.axis)


concat = ConcatLayer


class ElemwiseMergeLayer(MergeLayer):
    """Merges inputs of one shape (after cropping) elementwise with a binary
    ``merge_function`` (e.g. ``pytensor.tensor.mul``).

    Parameters
    ----------
    incomings : list of Layer or tuple
    merge_function : callable
    cropping : None or list of {None, 'lower', 'center', 'upper'}
        See :func:`autocrop`.
    """

    def __init__(self, incomings, merge_function, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        self.merge_function = merge_function
        self.cropping = cropping
        if cropping is not None:
            _full_cropping(cropping, 0)

    def get_output_shape_for(self, input_shapes):
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        return tuple(_merge_shapes(input_shapes, None, self.__class__.__name__))

    def get_output_for(self, inputs, **kwargs):
        inputs = autocrop(inputs, self.cropping)
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
    cropping : None or list of {None, 'lower', 'center', 'upper'}
        See :func:`autocrop`.

    Raises
    ------
    ValueError
        If a list of coefficients does not have one per input.
    """

    def __init__(self, incomings, coeffs=1, cropping=None, **kwargs):
        super().__init__(incomings, pt.add, cropping=cropping, **kwargs)
        if isinstance(coeffs, list):
            if len(coeffs) != len(incomings):
                raise ValueError(f"Mismatch: ElemwiseSumLayer got {len(coeffs)} coeffs for "
                                 f"{len(incomings)} incomings")
        else:
            coeffs = [coeffs] * len(incomings)
        self.coeffs = coeffs

    def get_output_for(self, inputs, **kwargs):
        inputs = autocrop(inputs, self.cropping)
        output = None
        for c, x in zip(self.coeffs, inputs):
            term = x if isinstance(c, numbers.Number) and c == 1 else c * x
            output = term if output is None else output + term
        return output
