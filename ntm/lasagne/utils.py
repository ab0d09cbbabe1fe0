"""Small helpers shared by the layers: dtype casting, parameter creation, tuples.

These mirror ``lasagne.utils``: :func:`floatX`, :func:`create_param`, :func:`unique`,
:func:`as_tuple` and :func:`one_hot`.
"""
import numbers

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

__all__ = ["int_types", "floatX", "shared_empty", "as_pytensor_expression", "as_theano_expression",
           "collect_shared_vars", "one_hot", "unique", "as_tuple", "inspect_kwargs",
           "compute_norms", "create_param", "unroll_scan"]

#: The types that count as integers (Python's and NumPy's).
int_types = (numbers.Integral, np.integer)


def floatX(arr):
    """Cast ``arr`` to a NumPy array of dtype ``pytensor.config.floatX``."""
    return np.asarray(arr, dtype=pytensor.config.floatX)


def shared_empty(dim=2, dtype=None):
    """A shared variable of ``dim`` dimensions, all of size 0."""
    dtype = pytensor.config.floatX if dtype is None else dtype
    return pytensor.shared(np.zeros((0,) * dim, dtype=dtype))


def as_pytensor_expression(input):
    """Wrap ``input`` as a symbolic expression (variables are returned unchanged)."""
    if isinstance(input, Variable):
        return input
    try:
        return pt.constant(input)
    except Exception as exc:
        raise TypeError(f"Input of type {type(input)} is not a PyTensor expression") from exc


#: Lasagne's name for :func:`as_pytensor_expression`.
as_theano_expression = as_pytensor_expression


def collect_shared_vars(expressions):
    """The shared variables that ``expressions`` (one or a list) depend on, in the order of a
    left-recursive depth-first search (as Lasagne's), e.g. ``[a, s]`` for ``a * s``."""
    if isinstance(expressions, Variable):
        expressions = [expressions]
    seen, result = set(), []
    stack = list(reversed(expressions))
    while stack:
        var = stack.pop()
        if var in seen:
            continue
        seen.add(var)
        if isinstance(var, SharedVariable):
            result.append(var)
        elif var.owner is not None:
            stack.extend(reversed(var.owner.inputs))
    return result


def one_hot(x, m=None):
    """One-hot encode integer tensor ``x`` into ``m`` classes (default ``max(x) + 1``).

    Returns a tensor with one more axis than ``x`` whose last axis has size ``m``.
    """
    x = pt.as_tensor_variable(x)
    if m is None:
        m = pt.cast(pt.max(x) + 1, "int64")
    return pt.eq(x[..., None], pt.arange(m)).astype(pytensor.config.floatX)


def unique(l):
    """Items of ``l`` without repeats, in order of first occurrence."""
    seen, out = set(), []
    for item in l:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def as_tuple(x, N, t=None):
    """Coerce ``x`` into a tuple of length ``N`` (repeating a scalar), optionally type-checked.

    Raises
    ------
    ValueError
        If ``x`` is a sequence of another length, or an element is not of type ``t``.
    """
    try:
        X = tuple(x)
    except TypeError:
        X = (x,) * N
    if t is not None and not all(isinstance(v, t) for v in X):
        names = t.__name__ if isinstance(t, type) else " or ".join(c.__name__ for c in t)
        raise TypeError(f"expected a single value or an iterable of {names}, got {x!r}")
    if len(X) != N:
        raise ValueError(f"expected a single value or an iterable of length {N}, got {x!r}")
    return X


def inspect_kwargs(func):
    """The names of ``func``'s arguments that have a default value."""
    import inspect
    return [name for name, param in inspect.signature(func).parameters.items()
            if param.default is not param.empty]


def compute_norms(array, norm_axes=None):
    """Euclidean norms of a NumPy or symbolic ``array`` over ``norm_axes``.

    By default the norm is over all axes but the first for arrays of 3 to 5 dimensions and the
    first axis (input units) for matrices; a vector's "norms" are the absolute values of its
    entries (so that biases can be treated like weights).
    """
    if not isinstance(array, (np.ndarray, Variable)):
        raise RuntimeError(f"Unsupported type {type(array).__name__}: compute_norms takes a "
                           "NumPy array or a symbolic tensor")
    ndim = array.ndim
    if norm_axes is None:
        if ndim == 1:
            norm_axes = ()
        elif ndim == 2:
            norm_axes = (0,)
        elif ndim in (3, 4, 5):
            norm_axes = tuple(range(1, ndim))
        else:
            raise ValueError(f"Unsupported tensor dimensionality {ndim}. Must specify `norm_axes`")
    norm_axes = tuple(norm_axes)
    if isinstance(array, np.ndarray):
        return np.sqrt(np.sum(array ** 2, axis=norm_axes)) if norm_axes else np.abs(array)
    return pt.sqrt(pt.sum(array ** 2, axis=norm_axes)) if norm_axes else pt.abs(array)


def create_param(spec, shape, name=None):
    """Create a parameter from a number, a NumPy array, a shared variable, an expression or a
    callable.

    Parameters
    ----------
    spec : number, numpy.ndarray, SharedVariable, Variable or callable
        - number: wrapped in a new shared variable of ``floatX`` (if floating);
        - array: wrapped in a new shared variable of the array's own dtype, as in Lasagne
          (the initializers of :mod:`~ntm.lasagne.init` return ``floatX`` arrays);
        - shared variable or other expression: used as is, after a check of its dimensions (and,
          for a shared variable, of its current shape);
        - callable (e.g. an :class:`~ntm.lasagne.init.Initializer`): called with ``shape``; the
          array it returns is wrapped in a shared variable, an expression it returns is used
          as is.

        A new shared variable has a static size of 1 on the axes where ``shape`` has 1, so that
        it broadcasts like Lasagne's parameters.
    shape : tuple of int
        The shape the parameter must have; every entry must be a positive integer.
    name : str, optional
        Name given to a new shared variable, or to an expression that has no name yet.

    Raises
    ------
    ValueError
        If ``shape`` has a non-positive entry, or the array's shape / the expression's number of
        dimensions does not match ``shape``.
    TypeError
        If ``spec`` (or what the callable returned) is none of the above.
    """
    shape = tuple(shape)
    if any(not isinstance(d, numbers.Integral) or d <= 0 for d in shape):
        raise ValueError(f"Cannot create param {name!r} with a non-positive shape {shape}; "
                         "all dimensions must be positive integers")
    label = f"parameter {name!r}" if name else "parameter"
    what = "spec"
    if callable(spec) and not isinstance(spec, Variable):
        spec = spec(shape)
        what = "value returned by the callable"
    if isinstance(spec, numbers.Number) and not isinstance(spec, bool):
        spec = np.asarray(spec)
        if np.issubdtype(spec.dtype, np.floating):
            spec = floatX(spec)
    elif isinstance(spec, np.generic) and not isinstance(spec, np.bool_):
        spec = np.asarray(spec)
    if isinstance(spec, np.ndarray):
        if spec.shape != shape:
            raise ValueError(f"{label}: the {what} has shape {spec.shape}, should be {shape}")
        return pytensor.shared(spec, name=name, shape=tuple(1 if d == 1 else None for d in shape))
    if isinstance(spec, Variable):
        if spec.ndim != len(shape):
            raise ValueError(f"{label}: the {what} has {spec.ndim} dimensions, "
                             f"should be {len(shape)} for shape {shape}")
        if isinstance(spec, SharedVariable):
            actual = spec.get_value(borrow=True, return_internal_type=True).shape
            if hasattr(actual, "__len__") and tuple(actual) != shape:
                raise ValueError(f"{label}: the {what} is a shared variable of shape "
                                 f"{tuple(actual)}, should be {shape}")
        if not spec.name:
            spec.name = name
        return spec
    raise TypeError(f"{label}: cannot initialize from the {what} {spec!r}; expected a number, "
                    "a NumPy array, a shared variable or expression, or a callable")


def unroll_scan(fn, sequences, outputs_info, non_sequences, n_steps, go_backwards=False):
    """A Python loop with the interface of ``pytensor.scan``, for a fixed ``n_steps``: the
    graph holds every step (larger, but often faster to run and differentiate).

    Parameters
    ----------
    fn : callable
        Called as ``fn(*sequence_steps, *previous_outputs, *non_sequences)``; returns one
        output or a list of them.
    sequences : tensor or list of tensors
        Iterated over their first axis.
    outputs_info : value or list
        Initial values of the outputs, which are all fed back to the next step.
    non_sequences : value or list
        Passed to every step.
    n_steps : int
        The number of steps.
    go_backwards : bool
        Iterate over the sequences from the end; the outputs stay in step order.

    Returns
    -------
    list of tensors
        Each output stacked over the steps (first axis).
    """
    sequences, outputs_info, non_sequences = (
        [] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]
        for x in (sequences, outputs_info, non_sequences))
    counter = range(n_steps)
    if go_backwards:
        counter = counter[::-1]
    outputs = []
    previous = list(outputs_info)
    for i in counter:
        result = fn(*([s[i] for s in sequences] + previous + non_sequences))
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        outputs.append(result)
        previous = result
    return [pt.stack([step[j] for step in outputs]) for j in range(len(outputs[0]))]
