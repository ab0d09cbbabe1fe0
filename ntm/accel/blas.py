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
``sgemm_``. :func:`link_scipy_openblas`, called on ``import ntm``, builds once per compile
directory a small shared library, ``libntm_blas.so``, in which each Fortran BLAS name that
PyTensor declares is a jump to SciPy's renamed function (so its calling convention is
OpenBLAS's own), and sets ``blas__ldflags`` to link it. Copy model, one thread
(``OMP_NUM_THREADS=1 python benchmarks/train_step.py --modes CVM``): about 12% off every
training step, batch 1 and 16 (see the README's *Speed*).

Nothing is changed when the user has set ``blas__ldflags`` (``PYTENSOR_FLAGS`` or
``.pytensorrc``: PyTensor's own choice of BLAS stays theirs), when the environment variable
``NTM_BLAS`` is ``0``, or when any step fails (no C++ compiler, no SciPy OpenBLAS, a platform
other than Linux on x86-64 or AArch64): PyTensor then searches for a BLAS as it does without
:mod:`ntm`. :data:`LINKED` says which happened. OpenBLAS's threads are OpenBLAS's:
``OPENBLAS_NUM_THREADS`` (the example scripts set 1, see :mod:`utils`).

The products are OpenBLAS's either way (NumPy's are), and OpenBLAS adds :math:`\alpha AB` to
:math:`C` after forming it, as the fallback does: the copy example's training run repeats to the
bit with and without this module (``models/copy.npz`` unchanged).
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

import pytensor

__all__ = ["link_scipy_openblas", "scipy_openblas_library", "build_forwarding_library",
           "fortran_blas_names", "LINKED", "ENABLED"]

#: whether :mod:`ntm` may link PyTensor to SciPy's OpenBLAS (environment variable ``NTM_BLAS``).
ENABLED = os.environ.get("NTM_BLAS", "1").strip().lower() not in ("0", "off", "false", "no")

#: the ``blas__ldflags`` :func:`link_scipy_openblas` set, or ``None`` where it set nothing.
LINKED = None

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


def fortran_blas_names():
    """The Fortran BLAS functions PyTensor's C code declares (``sgemm_``, ``dgemv_``, ...)."""
    from pytensor.tensor import blas_headers

    source = inspect.getsource(blas_headers)
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


def _user_set_ldflags():
    """Whether ``blas__ldflags`` was given in ``PYTENSOR_FLAGS`` or a ``.pytensorrc``."""
    # PyTensor reads its flags when the setting is first used (is_default then says whether
    # the value was the user's), and until then they wait in the flags or the config file.
    setting = type(pytensor.config).__dict__["blas__ldflags"]
    if hasattr(setting, "val"):
        return not setting.is_default
    try:
        pytensor.config.fetch_val_for_key("blas__ldflags")
    except KeyError:
        return False
    return True


def link_scipy_openblas():
    """Set PyTensor's ``blas__ldflags`` to link SciPy's OpenBLAS (see the module docstring);
    returns the flags, or ``None`` where it changed nothing."""
    global LINKED
    if LINKED is not None:
        return LINKED
    if not ENABLED or not pytensor.config.cxx or _user_set_ldflags():
        return None
    library = scipy_openblas_library()
    if library is None:
        return None
    names = fortran_blas_names()
    stat = os.stat(library)
    identity = "\0".join([os.path.realpath(library), str(stat.st_size), str(stat.st_mtime_ns),
                          pytensor.config.cxx, platform.machine(), *names])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    directory = os.path.join(pytensor.config.compiledir, "ntm-blas", digest)
    if not os.path.exists(os.path.join(directory, "libntm_blas.so")):
        try:
            build_forwarding_library(library, names, directory)
        except (OSError, RuntimeError):
            return None  # PyTensor searches for a BLAS as it would without ntm
    LINKED = f"-L{directory} -lntm_blas -Wl,-rpath,{directory}"
    pytensor.config.blas__ldflags = LINKED
    return LINKED
