r"""PyTensor's C backend linked to the OpenBLAS that SciPy ships.

PyTensor's C code calls a Fortran BLAS for its matrix products (``Gemm``: :math:`C \leftarrow
\alpha A B + \beta C`, ``Dot22``, ``Gemv``, ``Ger``), linked with the flags of its
``blas__ldflags`` setting. Installed from PyPI it finds no BLAS library to link (it warns so at
every run) and falls back to NumPy: ``Dot22`` runs through Python, and ``Gemm`` computes
:math:`AB` with NumPy, then adds it to :math:`C` one element at a time through NumPy's
iterator. The NTM's backward step accumulates its weight gradients with a ``Gemm`` at every
time step, and its forward step computes the controller with one, so both paths are hot.

SciPy, a dependency of PyTensor, ships OpenBLAS in its wheels (``scipy.libs/libscipy_openblas*``,
32-bit integers, the Fortran interface), with every symbol renamed: ``scipy_sgemm_`` for
``sgemm_``. :func:`scipy_openblas_ldflags` builds once per compile directory a small shared
library, ``libntm_blas.so``, in which each Fortran BLAS name that PyTensor declares is a jump to
SciPy's renamed function (so its calling convention is OpenBLAS's own), and returns the flags
that link it. :func:`linked` sets ``blas__ldflags`` to them only while the project compiles its
own functions (:func:`ntm.accel.accelerated`), and only where PyTensor found no BLAS of its
own: the user's configuration, and every function compiled outside, stay as they were.

Nothing is linked when PyTensor has a BLAS (``blas__ldflags`` not empty: the user's, or one
PyTensor found), or when any step fails (no C++ compiler, no SciPy OpenBLAS, a platform
other than Linux on x86-64 or AArch64). OpenBLAS's threads are OpenBLAS's:
``OPENBLAS_NUM_THREADS`` (the example scripts set 1, see :mod:`utils`).

The products are OpenBLAS's either way (NumPy's are), and OpenBLAS adds :math:`\alpha AB` to
:math:`C` after forming it, as the fallback does: a training run repeats to the bit with and
without it.
"""
import ctypes
import glob
import hashlib
import importlib.util
import inspect
import os
import platform
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import pytensor

__all__ = ["linked", "scipy_openblas_ldflags", "scipy_openblas_library",
           "build_forwarding_library", "fortran_blas_names"]

# scipy_openblas_ldflags's answer per compile directory and compiler
_flags = {}

#: SciPy's prefix for the names of its OpenBLAS's functions.
PREFIX = "scipy_"

# One jump per name: the arguments stay where the caller put them, whatever the signature.
_TRAMPOLINES = {
    "x86_64": '__asm__(".globl {name}\\n.type {name}, @function\\n{name}:\\n'
              '\\tjmp {target}@PLT\\n");',
    "aarch64": '__asm__(".globl {name}\\n.type {name}, %function\\n{name}:\\n'
               '\\tb {target}\\n");',
}
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def scipy_openblas_library():
    """The path of the OpenBLAS library bundled with SciPy's wheel (32-bit integers), or
    ``None`` (SciPy not installed, or built against another BLAS)."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = list(spec.submodule_search_locations)[0]
    libraries = os.path.join(os.path.dirname(package), "scipy.libs")
    # NumPy's is "libscipy_openblas64_" (64-bit integers): not what PyTensor's C code passes
    found = [path for path in sorted(glob.glob(os.path.join(libraries, "libscipy_openblas*.so*")))
             if "openblas64" not in os.path.basename(path)]
    return found[0] if found else None


def _blas_headers_module():
    """PyTensor's module of BLAS declarations (it moved in PyTensor 3.1)."""
    for name in ("pytensor.tensor.blas.c_code.blas_headers", "pytensor.tensor.blas_headers"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise RuntimeError("PyTensor's BLAS declarations were not found")


def fortran_blas_names():
    """The Fortran BLAS functions PyTensor's C code declares (``sgemm_``, ``dgemv_``, ...)."""
    source = inspect.getsource(_blas_headers_module())
    return sorted(set(re.findall(r"\b([sdcz][a-z0-9]+_)\s*\(", source)))


def build_forwarding_library(library, names, directory, cxx=None):
    """Build ``directory/libntm_blas.so``: each of ``names`` that ``library`` exports as
    ``scipy_<name>`` becomes a function jumping to it; returns the names forwarded.

    Written to a temporary file, then renamed: a process that finds the library finds it whole.
    Raises ``RuntimeError`` for a machine without trampolines or when the compiler fails.
    """
    machine = _MACHINES.get(platform.machine().lower())
    if machine is None or not sys.platform.startswith("linux"):
        raise RuntimeError(f"no BLAS forwarding for {sys.platform} on {platform.machine()}")
    exported = ctypes.CDLL(library)
    forwarded = [name for name in names if hasattr(exported, PREFIX + name)]
    if not forwarded:
        raise RuntimeError(f"{library} exports none of the BLAS functions as {PREFIX}<name>")
    source = "\n".join(_TRAMPOLINES[machine].format(name=name, target=PREFIX + name)
                       for name in forwarded)
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        source_path = os.path.join(scratch, "ntm_blas.c")
        with open(source_path, "w") as stream:
            stream.write(source + "\n")
        built = os.path.join(scratch, "libntm_blas.so")
        library_dir = os.path.dirname(os.path.abspath(library))
        command = [cxx or pytensor.config.cxx, "-x", "c", "-shared", "-fPIC", "-o", built,
                   source_path, f"-L{library_dir}", f"-l:{os.path.basename(library)}",
                   f"-Wl,-rpath,{library_dir}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building the BLAS forwarding library failed:\n{result.stderr}")
        os.replace(built, os.path.join(directory, "libntm_blas.so"))
    return forwarded


def scipy_openblas_ldflags():
    """The ``blas__ldflags`` that link PyTensor's C code to SciPy's OpenBLAS (building the
    forwarding library the first time), or ``None`` where that cannot be done here."""
    if not pytensor.config.cxx:
        return None
    key = (pytensor.config.compiledir, pytensor.config.cxx)
    if key in _flags:
        return _flags[key]
    _flags[key] = None
    library = scipy_openblas_library()
    if library is None:
        return None
    try:
        names = fortran_blas_names()
    except RuntimeError:
        return None
    stat = os.stat(library)
    identity = "\0".join([os.path.realpath(library), str(stat.st_size), str(stat.st_mtime_ns),
                          pytensor.config.cxx, platform.machine(), *names])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    directory = os.path.join(pytensor.config.compiledir, "ntm-blas", digest)
    if not os.path.exists(os.path.join(directory, "libntm_blas.so")):
        try:
            build_forwarding_library(library, names, directory)
        except (OSError, RuntimeError):
            return None  # PyTensor goes on without a BLAS, as it would without ntm
    _flags[key] = f"-L{directory} -lntm_blas -Wl,-rpath,{directory}"
    return _flags[key]


@contextmanager
def linked():
    """While it lasts, PyTensor's C code is linked to SciPy's OpenBLAS where PyTensor has no
    BLAS of its own (``blas__ldflags`` empty); yields the flags in force."""
    current = pytensor.config.blas__ldflags
    flags = None if current else scipy_openblas_ldflags()
    if flags is None:
        yield current
        return
    with pytensor.config.change_flags(blas__ldflags=flags):
        yield flags
