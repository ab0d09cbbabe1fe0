r"""PyTensor modes for functions called many times: intermediate storage kept between calls.

PyTensor's virtual machines (the ``CVM`` mode and the other C and Python ones) free every
intermediate result once its last consumer has run (``allow_gc``), so that the next call
allocates all of them again. An NTM's training step holds large intermediates: the scan's
memory at every time step and the gradient scan's buffers of the same size,
:math:`(T + 1) \times B \times N \times M` values each (7 MB for the copy model at batch 16
and length 20, 39 MB at length 120). Freshly allocated blocks of that size are fresh pages
from the operating system, and the first write to each page faults, on every call.
:func:`keep_storage` returns the mode with a virtual machine that keeps each intermediate's
storage and reuses it when the next call's result has the same shape: the same operations
on the same values, without the allocations.

A scan's inner function is a second virtual machine. PyTensor 3.0 compiles it to keep its
storage from one time step to the next only when the scan names its mode
(:class:`~ntm.accel.fused.FusedImplementation` gives the NTM's scans the accelerated mode),
and empties it after every call of the scan unless ``config.allow_gc`` is off while the outer
function is linked: :func:`storage_kept` turns it off for that time. Modes whose linker
compiles the whole function (``NUMBA``, ``JAX``) are returned unchanged by
:func:`keep_storage`. :func:`ntm.accel.accelerated` applies all of it; by hand::

    with ntm.accel.modes.storage_kept():
        train = pytensor.function(inputs, loss, updates=updates,
                                  mode=ntm.accel.modes.keep_storage("CVM"))
"""
from contextlib import contextmanager

import pytensor
from pytensor.compile.mode import Mode, get_mode
from pytensor.link.vm import VMLinker

__all__ = ["keep_storage", "storage_kept", "describe"]


def keep_storage(mode=None):
    """``mode`` with a virtual machine that keeps intermediate storage between calls.

    Parameters
    ----------
    mode : str or pytensor.compile.mode.Mode, optional
        A PyTensor mode or its name (default: ``pytensor.config.mode``).

    Returns
    -------
    pytensor.compile.mode.Mode
        A copy of ``mode`` whose linker has ``allow_gc=False`` when it is a virtual machine
        that frees intermediates, else ``mode`` itself.
    """
    if mode is not None and not isinstance(mode, (str, Mode)):
        raise TypeError(f"keep_storage: mode must be a PyTensor mode or its name, got "
                        f"{type(mode).__name__}")
    resolved = get_mode(pytensor.config.mode if mode is None else mode)
    if isinstance(resolved.linker, VMLinker) and resolved.linker.allow_gc:
        return resolved.clone(link_kwargs={"allow_gc": False})
    return resolved


def _rewriter_name(rewriter):
    """A name for a rewriter that is the same from one process to the next."""
    inner = getattr(rewriter, "node_rewriters", None) or [getattr(rewriter, "node_rewriter",
                                                                  rewriter)]
    names = []
    for part in (inner if isinstance(inner, (list, tuple)) else [inner]):
        function = getattr(part, "fn", part)
        names.append(f"{getattr(function, '__module__', '')}."
                     f"{getattr(function, '__qualname__', type(function).__name__)}")
    return f"{type(rewriter).__name__}({','.join(names)})"


@contextmanager
def storage_kept():
    """While it lasts, scans linked into a function (compiled, or loaded from a pickle) keep
    their inner function's storage from one call of the function to the next.

    PyTensor frees a scan's inner storage after every call unless ``config.allow_gc`` is off
    when the scan is linked; this turns it off for that time only.
    """
    with pytensor.config.change_flags(allow_gc=False):
        yield


def describe(mode):
    """A text that is the same for two modes that compile and run a function alike (for cache
    keys): the name of a named mode (``"None"`` for PyTensor's configured one), else its
    linker's class and settings and its rewrites."""
    if mode is None or isinstance(mode, str):
        return str(mode)
    linker = mode.linker
    settings = {name: getattr(linker, name, None)
                for name in ("allow_gc", "use_cloop", "c_thunks", "lazy")}
    optimizer = mode.provided_optimizer
    if not isinstance(optimizer, str):  # a query of PyTensor's rewrite database
        extra = [(_rewriter_name(rewriter), position)
                 for rewriter, position in getattr(optimizer, "extra_rewrites", ())]
        optimizer = {name: sorted(map(str, getattr(optimizer, name, ())))
                     for name in ("include", "exclude", "require")}
        optimizer["extra"] = sorted(extra)
    return (f"{type(linker).__module__}.{type(linker).__name__}{sorted(settings.items())} "
            f"optimizer={optimizer}")
