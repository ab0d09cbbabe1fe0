r"""Faster gradients of ``scan``: three changes to how PyTensor builds the backward scan.

The gradient of a scan is a second scan that runs backwards. Building it in PyTensor 3.0 has two
costs that grow badly with the size of the step, and an NTM step is large:

1. **Duplicated inner graphs.** For every differentiable input of the step, the backward step's
   gradient expression is passed through ``forced_replace`` once per recurrent output, which
   swaps recomputed forward values for the saved ones, and each call *clones* the whole
   expression. The clones of different inputs share nothing, so the backward step of the copy
   model's NTM had 12,205 nodes for a forward step of 182, and graph rewriting then spent most of
   the compile time merging the copies back together.
2. **Static-shape inference of zero buffers.** Each state whose output sequence is not used by
   the cost gets a zero buffer ``zeros(outs[i].shape)``; building it runs ``infer_static_shape``,
   which imports the whole forward graph, scan included, into a shape-inferring function graph:
   about 0.9 s per buffer, 23 s for the copy model.
3. **Saved outputs computed again.** ``forced_replace`` is called for one output of the step
   after another, states first, each time on the previous call's result; an output that is
   computed from a state (and not fed back) is then no longer found once that state has been
   replaced, so the backward step computes it again instead of reading the forward scan's
   saved sequence.

:func:`apply` changes all three without changing any computed value:

1. ``forced_replace`` keeps one memo per placeholder for the duration of one gradient, so a
   subexpression shared by the gradients of several inputs is rewritten once and stays shared,
   and a subexpression with nothing to replace is not copied at all;
2. the zero buffers are allocated with the static shape that a local walk of their shape finds
   (constants and the static lengths of axes), without inferring the whole graph's shapes;
3. each output is also looked for as rewritten by the replacements made before it, so the
   backward step reads it (``NTMLayer`` saves its read vectors and similarities this way).

For the copy model (``python benchmarks/train_step.py``) ``pytensor.grad`` goes from 17 s to
0.4 s and the backward step from 12,205 nodes to 807 (392 after rewriting, as before).
``import ntm`` applies it; set the environment variable ``NTM_SCAN_GRADIENT=pytensor`` before
importing to keep PyTensor's own behaviour, or call :func:`remove`.

It replaces two names inside ``pytensor.scan.op`` and wraps ``Scan.pullback`` (to drop the
memos once a gradient is built), and is applied only to the PyTensor versions it was checked
against (:data:`CHECKED_VERSIONS`); with another version it does nothing and
:func:`is_applied` is False.
"""
import importlib
import os
import types

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Apply, Constant, equal_computations
from pytensor.tensor.basic import as_tensor_variable, get_scalar_constant_value
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.shape import Shape
from pytensor.tensor.type import TensorType

__all__ = ["apply", "remove", "is_applied", "CHECKED_VERSIONS"]

#: PyTensor versions whose ``Scan.pullback`` this module was checked against.
CHECKED_VERSIONS = ("3.0.7",)

_scan_op = importlib.import_module("pytensor.scan.op")
_originals = {}
# One memo per placeholder, alive while one (possibly nested) scan gradient is built.
_memos = {}
_depth = [0]
# Per nesting depth of scan gradients: the replacements (x, y, x as rewritten by the earlier
# ones) of the gradient being built, in the order PyTensor makes them.
_orders = {}


def _shared_forced_replace(out, x, y):
    """``out`` with every subexpression structurally equal to ``x`` replaced by ``y``.

    Same result as PyTensor's ``forced_replace`` (it does not look inside a replaced
    subexpression), but the rewritten nodes are memoised per ``y`` and unchanged nodes are
    kept, so gradients that share subexpressions still share them afterwards.

    PyTensor calls it for each of the step's outputs in turn, states first, each on the
    result of the previous calls. An output computed from a state (one that is not fed back,
    such as the NTM's similarities) no longer appears as ``x`` once that state has been
    replaced, but as ``x`` rewritten by the earlier replacements: that is looked for too, so
    the backward step reads the saved value instead of computing it again (the same value).
    """
    if out is None:
        return None
    order = _orders.setdefault(_depth[0], [])
    entry = next((e for e in order if e[1] is y), None)
    if entry is None:
        image = x
        for earlier in order:
            image = _replace(image, *earlier)
        entry = (x, y, image)
        order.append(entry)
    return _replace(out, *entry)


def _replace(out, x, y, image):
    """``out`` with each subexpression equal to ``x`` or to ``image`` replaced by ``y``,
    memoised per ``y``."""
    memo = _memos.setdefault(y, {})
    stack = [out]
    while stack:
        variable = stack[-1]
        if variable in memo:
            stack.pop()
            continue
        node = variable.owner
        if node is None:
            memo[variable] = variable
            stack.pop()
            continue
        if (variable is image or equal_computations([variable], [x])
                or (image is not x and equal_computations([variable], [image]))):
            memo[variable] = y
            stack.pop()
            continue
        pending = [i for i in node.inputs if i not in memo]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        new_inputs = [memo[i] for i in node.inputs]
        if any(new is not old for new, old in zip(new_inputs, node.inputs)):
            new_node = node.clone_with_new_inputs(new_inputs)
        else:
            new_node = node
        for old, new in zip(node.outputs, new_node.outputs):
            memo[old] = new
    return memo[out]


def _static_length(dim):
    """The value of a shape element when it is a constant or the static length of an axis
    (``x.shape[i]`` with ``x.type.shape[i]`` known); None otherwise. Found by a local walk, so
    that the buffer's static shape matches the scan's inner types without a ``SpecifyShape``
    (whose rewrite into the allocation would infer the whole graph's shapes again)."""
    if isinstance(dim, Constant):
        return int(dim.data)
    try:
        return int(get_scalar_constant_value(dim))
    except NotScalarConstantError:
        return None


def _zeros(shape, dtype=None):
    """``pt.zeros(shape, dtype)`` without inferring the static shape beyond its constants."""
    owner = getattr(shape, "owner", None)
    if owner is not None and isinstance(owner.op, Shape):
        return pt.zeros_like(owner.inputs[0], dtype=dtype)
    if not isinstance(shape, (list, tuple)):
        return pt.zeros(shape, dtype=dtype)
    dtype = dtype or pytensor.config.floatX
    dims = [as_tensor_variable(s, ndim=0) for s in shape]
    static = tuple(_static_length(d) for d in dims)
    zero = as_tensor_variable(np.array(0, dtype=dtype))
    return Apply(pt.alloc, [zero, *dims], [TensorType(dtype, shape=static)()]).outputs[0]


class _TensorModule(types.ModuleType):
    """``pytensor.tensor`` as seen by ``pytensor.scan.op``, with :func:`_zeros`."""

    zeros = staticmethod(_zeros)

    def __getattr__(self, name):
        return getattr(pt, name)


def _pullback(self, *args, **kwargs):
    _depth[0] += 1
    try:
        return _originals["pullback"](self, *args, **kwargs)
    finally:
        _orders.pop(_depth[0], None)
        _depth[0] -= 1
        if _depth[0] == 0:
            _memos.clear()


def is_applied():
    """Whether the faster scan gradient is in use."""
    return bool(_originals)


def apply():
    """Use the faster scan gradient (idempotent). Returns :func:`is_applied`."""
    if _originals or pytensor.__version__ not in CHECKED_VERSIONS:
        return is_applied()
    scan = _scan_op.Scan
    if not (hasattr(_scan_op, "forced_replace") and getattr(_scan_op, "pt", None) is pt
            and hasattr(scan, "pullback")):
        return False
    _originals.update(forced_replace=_scan_op.forced_replace, pt=_scan_op.pt,
                      pullback=scan.pullback)
    _scan_op.forced_replace = _shared_forced_replace
    _scan_op.pt = _TensorModule("pytensor.tensor")
    scan.pullback = _pullback
    return True


def remove():
    """Restore PyTensor's own scan gradient."""
    if not _originals:
        return
    _scan_op.forced_replace = _originals.pop("forced_replace")
    _scan_op.pt = _originals.pop("pt")
    _scan_op.Scan.pullback = _originals.pop("pullback")


if os.environ.get("NTM_SCAN_GRADIENT", "fast") != "pytensor":
    apply()
