"""Compiled PyTensor functions kept on disk, so that a run started again skips compilation.

Compiling the NTM's training function is mostly graph rewriting (about 10 s for the copy
model) and it gives the same result every time for the same graph. :func:`cached_function`
compiles once, pickles the compiled function's rewritten graph, and in a later process
loads it and links it to that process's shared variables (parameters, optimizer state), which
takes a few seconds with PyTensor's own cache of compiled C code warm.

The file is found by a key that the caller must make describe the graph completely (for the
training loop: every model and optimizer option, the input and output sizes), combined here
with what else decides the compiled function: the sources of :mod:`ntm` and of the calling
module, the versions of Python, NumPy and PyTensor, PyTensor's float type and compilation
flags, the mode, and the names, types and order of the shared variables and inputs.

The cache lives in ``<pytensor compiledir>/ntm-functions``; the environment variable
``NTM_FUNCTION_CACHE`` names another directory, or ``off`` to disable it. It keeps the
:data:`MAX_FILES` most recently used functions (about 1.5 MB each for the copy model). Files
are written atomically, and a file that cannot be read or linked is ignored and recompiled.
The files are pickles: they are loaded only from this cache directory, which must be writable
only by its user (as PyTensor's compile directory).
"""
import hashlib
import json
import os
import pickle
import platform
import sys
import warnings
import zlib
from contextlib import contextmanager

import numpy as np
import pytensor
from pytensor.link.basic import JITLinker, PerformLinker
from pytensor.link.c.basic import CLinker, OpWiseCLinker
from pytensor.link.vm import VMLinker

from ntm.accel.modes import describe as describe_mode

from .files import atomic_write

__all__ = ["cached_function", "default_cache_dir", "is_cacheable", "ENVIRONMENT_VARIABLE",
           "MAX_FILES"]

ENVIRONMENT_VARIABLE = "NTM_FUNCTION_CACHE"
_FORMAT = 1
#: Files kept in the cache directory; the least recently used beyond these are removed.
MAX_FILES = 200
# Pickling a graph recurses through its variables. The copy model's needs less than Python's
# default limit of 1,000; a larger model may need more. Not much more: the C stack must hold
# it (a graph too deep for this limit is simply not cached).
_RECURSION_LIMIT = 4_000
_source_digests = {}


def default_cache_dir():
    """The cache directory: ``$NTM_FUNCTION_CACHE``, else under PyTensor's compile directory.

    Returns
    -------
    str or None
        None when ``NTM_FUNCTION_CACHE`` is ``off`` (or ``0``, ``false``, ``no``).
    """
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if value:
        return os.path.expanduser(value)
    return os.path.join(pytensor.config.compiledir, "ntm-functions")


def is_cacheable(mode):
    """Whether functions compiled in ``mode`` are cached: those of the C and Python backends.

    Numba's and JAX's functions are not: linking an unpickled graph there compiles it again
    (minutes), where compiling from scratch finds their own on-disk caches.
    """
    linker = pytensor.compile.mode.get_mode(mode).linker
    if isinstance(linker, JITLinker):
        return False
    return isinstance(linker, (VMLinker, CLinker, OpWiseCLinker, PerformLinker))


def _digest_sources(paths):
    """SHA-256 of the Python sources at ``paths`` (files, or directories searched for .py)."""
    key = tuple(sorted(os.path.abspath(path) for path in paths))
    if key not in _source_digests:
        files = []
        for path in key:
            if os.path.isdir(path):
                for root, directories, names in os.walk(path):
                    directories[:] = sorted(d for d in directories if d != "__pycache__")
                    files += [os.path.join(root, name) for name in sorted(names)
                              if name.endswith(".py")]
            else:
                files.append(path)
        digest = hashlib.sha256()
        for name in files:
            with open(name, "rb") as stream:
                digest.update(name.encode() + b"\0" + stream.read() + b"\0")
        _source_digests[key] = digest.hexdigest()
    return _source_digests[key]


def _fingerprint(key, inputs, shared, mode, name, sources):
    """Everything that decides the compiled function, as one hexadecimal digest."""
    config = pytensor.config
    flags = {flag: str(getattr(config, flag, None)) for flag in (
        "floatX", "mode", "linker", "optimizer", "optimizer_excluding", "optimizer_including",
        "optimizer_requiring", "cxx", "blas__ldflags", "compute_test_value", "cast_policy")}
    description = {
        "format": _FORMAT,
        "key": key,
        "name": name,
        "mode": describe_mode(mode),
        "inputs": [[variable.name, str(variable.type)] for variable in inputs],
        "shared": [[variable.name, str(variable.type)] for variable in shared],
        "flags": flags,
        "environment": {variable: os.environ.get(variable) for variable in
                        ("PYTENSOR_FLAGS",)},
        "versions": [sys.version, platform.machine(), np.__version__, pytensor.__version__],
        "sources": _digest_sources([os.path.dirname(__import__("ntm").__file__),
                                    __file__, *sources]),
    }
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def _deep_recursion():
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, _RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _load(path, shared):
    """The function stored at ``path``, linked to ``shared``; None when absent or unusable."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as stream:
            data = zlib.decompress(stream.read())
        with _deep_recursion():
            maker, positions = pickle.loads(data)
        if len(positions) != len(maker.inputs):
            raise ValueError("the stored inputs do not match the function's")
        storage = []
        for position, spec in zip(positions, maker.inputs):
            if (position is None) == bool(spec.shared):
                raise ValueError("the stored inputs do not match the shared variables")
            storage.append(None if position is None else shared[position].container)
        function = maker.create(storage)
        os.utime(path)  # most recently used: the last to be pruned
        return function
    except Exception as error:  # noqa: BLE001 -- any unusable file is recompiled
        warnings.warn(f"ignoring the cached compiled function {path}: {error!r}", stacklevel=3)
        return None


def _store(path, function, shared):
    """Pickle ``function``'s maker to ``path`` with the positions of its shared inputs."""
    maker = function.maker
    index = {id(variable): position for position, variable in enumerate(shared)}
    positions = []
    for spec in maker.inputs:
        if not spec.shared:
            positions.append(None)
        elif id(spec.variable) in index:
            positions.append(index[id(spec.variable)])
        else:
            # A shared variable the caller did not list could not be linked back; keep
            # compiling such a function rather than give it stale storage.
            return False
    try:
        with _deep_recursion():
            data = pickle.dumps((maker, positions), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 -- some linkers' functions do not pickle
        warnings.warn(f"not caching the compiled function {maker.name!r}: {error!r}",
                      stacklevel=3)
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, lambda stream: stream.write(zlib.compress(data, 1)))
    _prune(os.path.dirname(path), MAX_FILES)
    return True


def _prune(directory, keep):
    """Remove all but the ``keep`` most recently used cache files of ``directory``."""
    entries = []
    for name in os.listdir(directory):
        if name.endswith(".pkl.z"):
            try:
                entries.append((os.path.getmtime(os.path.join(directory, name)), name))
            except OSError:  # removed meanwhile by another process
                pass
    for _, name in sorted(entries, reverse=True)[keep:]:
        try:
            os.remove(os.path.join(directory, name))
        except OSError:
            pass


def cached_function(inputs, outputs, *, key, shared, updates=None, mode=None, name=None,
                    sources=(), cache_dir=None, before_compiling=None):
    """``pytensor.function(inputs, outputs, updates=updates, mode=mode, name=name)``, cached.

    Parameters
    ----------
    inputs, outputs, updates, mode, name
        As for :func:`pytensor.function` (``name`` also names the cache file).
    key : JSON-serialisable
        Describes the graph completely: two calls with equal keys (and equal ``sources``,
        ``inputs`` and ``shared``) must build the same graph.
    shared : sequence of SharedVariable
        Every shared variable the graph uses, in an order that depends only on ``key``; a
        loaded function reads and updates these.
    sources : sequence of str
        Files or directories whose Python sources build the graph (the :mod:`ntm` package is
        always included).
    cache_dir : str, optional
        Default: :func:`default_cache_dir` (None there: no cache). Only functions of the C
        and Python backends are cached (:func:`is_cacheable`); others are always compiled.
    before_compiling : callable, optional
        Called without arguments just before the function is compiled (not when it is
        loaded), e.g. to start compiling C modules early.

    Returns
    -------
    function : callable
        The compiled PyTensor function.
    loaded : bool
        True when it came from the cache.
    """
    directory = default_cache_dir() if cache_dir is None else cache_dir
    shared = list(shared)
    path = None
    if directory is not None and is_cacheable(mode):
        digest = _fingerprint(key, inputs, shared, mode, name, sources)
        path = os.path.join(directory, f"{name or 'function'}-{digest[:32]}.pkl.z")
        function = _load(path, shared)
        if function is not None:
            return function, True
    if before_compiling is not None:
        before_compiling()
    function = pytensor.function(inputs, outputs, updates=updates, mode=mode, name=name)
    if path is not None:
        try:
            _store(path, function, shared)
        except OSError as error:
            warnings.warn(f"could not write the compiled function cache {path}: {error}",
                          stacklevel=2)
    return function, False
