r"""The NTM made fast, apart from the model and chosen by one switch.

The model (:mod:`ntm`) is written with plain PyTensor operations. This package makes it
fast through PyTensor's public extension points only:

- fused ops for the memory-sized parts of a step, with C, Numba and NumPy implementations
  (:mod:`~ntm.accel.memory_kernels`, :mod:`~ntm.accel.addressing_kernels`, split between
  OpenMP threads by :mod:`~ntm.accel.kernel_threads` only where a call is large enough to
  pay, or as :func:`ntm.accel.kernel_threads.set_threads` says), put in the graph through
  :class:`~ntm.accel.fused.FusedImplementation`;
- a tangent of float32 arrays in one vectorised loop (:mod:`~ntm.accel.tanh_kernel`), put in
  place of PyTensor's by a rewrite;
- graph rewrites (:mod:`~ntm.accel.rewrites`) given to the modes that :func:`mode` builds,
  never registered in PyTensor's own rewrite database;
- intermediate storage kept between calls (:mod:`~ntm.accel.modes`);
- PyTensor's C code linked to the OpenBLAS that SciPy ships, while the project's functions
  are compiled and only where PyTensor has no BLAS of its own (:mod:`~ntm.accel.blas`).

:func:`accelerated` is the switch. Build the graph (``get_output``, ``pytensor.grad``) and
compile it inside it, with the mode it yields::

    import ntm.accel

    with ntm.accel.accelerated("CVM") as mode:
        loss = objectives.binary_crossentropy(get_output(l_out), target).mean()
        params = get_all_params(l_out, trainable=True)
        train = pytensor.function([l_in.input_var, target], loss,
                                  updates=updates.adam(loss, params), mode=mode)

Outside it, and for a backend or a PyTensor the fused ops do not support (JAX, say), the
model is the plain one and ``mode`` the base mode, with a one-line warning where something
was asked for that cannot be given. Nothing here changes PyTensor for anyone else: importing
:mod:`ntm` or this package changes no setting, function or rewrite of PyTensor.
"""
import warnings
from contextlib import contextmanager

import pytensor
from pytensor.compile.mode import Mode, get_mode
from pytensor.link.c.basic import CLinker, OpWiseCLinker
from pytensor.link.vm import VMLinker

from ..implementation import using
from . import blas
from .fused import FusedImplementation
from .modes import keep_storage, storage_kept
from .rewrites import mode_rewrites

__all__ = ["accelerated", "mode", "backend_of", "unsupported_reason", "SUPPORTED_PYTENSOR"]

#: The PyTensor releases (major, minor) the fused ops and rewrites are tested with.
SUPPORTED_PYTENSOR = ((3, 0), (3, 3))


def backend_of(mode):
    """``"c"`` for a mode of PyTensor's C virtual machines (``CVM``, ``C``, ``FAST_RUN``),
    ``"numba"``, ``"jax"``, ``"python"`` (no compiled code: ``FAST_COMPILE``), or the name of
    another backend's linker, for a mode or its name."""
    linker = get_mode(mode).linker
    name = type(linker).__name__.lower()
    if isinstance(linker, (CLinker, OpWiseCLinker)):
        return "c"
    if isinstance(linker, VMLinker):
        return "c" if linker.c_thunks is not False and pytensor.config.cxx else "python"
    for backend in ("numba", "jax", "pytorch", "mlx"):
        if backend in name:
            return backend
    return "python" if "perform" in name or "vm" in name else name


def unsupported_reason(mode=None):
    """Why the fused ops cannot serve ``mode`` (default ``config.mode``) here, or ``None``."""
    version = tuple(int(part) for part in pytensor.__version__.split(".")[:2]
                    if part.isdigit())
    if not SUPPORTED_PYTENSOR[0] <= version <= SUPPORTED_PYTENSOR[1]:
        low, high = (".".join(map(str, v)) for v in SUPPORTED_PYTENSOR)
        return f"PyTensor {pytensor.__version__} is not one of {low} to {high}.x"
    backend = backend_of(pytensor.config.mode if mode is None else mode)
    if backend == "c" and not pytensor.config.cxx:
        return "PyTensor has no C++ compiler"
    if backend not in ("c", "numba", "python"):  # "python": their NumPy implementation
        return f"the fused ops have no {backend} implementation"
    return None


def mode(base=None):
    """The accelerated version of ``base``: the rewrites of :mod:`ntm.accel.rewrites` for its
    backend, and its intermediate storage kept between calls
    (:func:`~ntm.accel.modes.keep_storage`).

    Parameters
    ----------
    base : str or pytensor.compile.mode.Mode, optional
        A PyTensor mode or its name (default ``config.mode``).

    Returns
    -------
    pytensor.compile.mode.Mode
        The accelerated mode; ``base`` itself for a mode that compiles nothing
        (``FAST_COMPILE``). Graphs compiled with it use the fused ops only when they were
        built inside :func:`accelerated`.
    """
    if base is not None and not isinstance(base, (str, Mode)):
        raise TypeError(f"mode: base must be a PyTensor mode or its name, got "
                        f"{type(base).__name__}")
    resolved = get_mode(pytensor.config.mode if base is None else base)
    backend = backend_of(resolved)
    if backend == "python":
        return resolved
    return keep_storage(resolved.register(*mode_rewrites(backend)))


@contextmanager
def accelerated(base=None):
    """The switch: graphs built inside use the fused ops, and the yielded mode compiles them
    with the accelerated rewrites, kept storage and a BLAS.

    Parameters
    ----------
    base : str or pytensor.compile.mode.Mode, optional
        The mode to accelerate (default ``config.mode``): ``"CVM"`` (C), ``"NUMBA"``, ...

    Yields
    ------
    pytensor.compile.mode.Mode
        The mode to compile with: :func:`mode` of ``base``, or ``base`` itself (with a
        warning naming why) where the fused ops cannot serve it.
    """
    resolved = get_mode(pytensor.config.mode if base is None else base)
    reason = unsupported_reason(resolved)
    if reason is not None:
        if backend_of(resolved) != "jax":  # JAX runs the plain model: nothing is missed
            warnings.warn(f"ntm.accel: {reason}; the NTM runs its plain implementation",
                          RuntimeWarning, stacklevel=3)
        yield resolved
        return
    fast = mode(resolved)
    # The NTM's scans name the mode: without, PyTensor links their step with its default
    # linker (3.0: config.mode; 3.3: a Python loop over the step's operations).
    implementation = FusedImplementation(scan_mode=fast)
    with using(implementation), storage_kept():
        if backend_of(fast) == "c":
            with blas.linked():
                yield fast
        else:
            yield fast
