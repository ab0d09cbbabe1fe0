r"""The fused kernels on several cores: their batch split between OpenMP threads.

The C code of the ops in :mod:`ntm.memory_kernels` and :mod:`ntm.addressing_kernels` loops
over the batch (the addressing over batch x heads), and each item's arithmetic depends on that
item only. :data:`C_SUPPORT`'s ``ntm_for_chunks(items, work_per_item, body)`` cuts that loop
into one contiguous chunk per thread; every item is computed by the same code as in one
thread, so results are bit for bit the same whatever the number of threads. A call whose work
(items x work per item, in values touched) is under :data:`MIN_PARALLEL_WORK` stays on one
thread: waking a second one costs a few microseconds, more than a batch-1 step's kernel.

The kernels are compiled with ``-fopenmp`` when the C++ compiler supports it (checked once
per compiler, the answer kept in PyTensor's compile directory), unless the environment
variable ``NTM_OPENMP`` is ``0``. The number of threads is OpenMP's: ``OMP_NUM_THREADS`` if
set, else the cores this process may use (at most one per item). ``OMP_NUM_THREADS=1`` keeps
a run on one core, e.g. when several trainings share a machine.
"""
import hashlib
import os
import tempfile

import pytensor

__all__ = ["openmp_flags", "OPENMP_ENABLED", "C_SUPPORT", "MIN_PARALLEL_WORK"]

#: whether the kernels may be compiled with OpenMP (environment variable ``NTM_OPENMP``).
OPENMP_ENABLED = os.environ.get("NTM_OPENMP", "1").strip().lower() not in (
    "0", "off", "false", "no")

#: the smallest work (values touched by one call) that is split between threads.
MIN_PARALLEL_WORK = 16384

_FLAGS = ["-fopenmp"]
_checked = {}

C_SUPPORT = r"""
#ifdef _OPENMP
#include <omp.h>
#endif

/* Calls body(first, count) on contiguous chunks of [0, items), one chunk per OpenMP thread
   when the work (items x work_per_item values) pays for waking threads, else once on the
   whole range. Every item is computed by the same code either way: same results. */
template <typename Body>
static void ntm_for_chunks(npy_intp items, npy_intp work_per_item, Body body) {
#ifdef _OPENMP
    npy_intp threads = items * work_per_item >= %(min_work)d ? omp_get_max_threads() : 1;
    if (threads > items) threads = items;
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        {
            const npy_intp t = omp_get_thread_num(), n = omp_get_num_threads();
            const npy_intp first = items * t / n, last = items * (t + 1) / n;
            if (last > first) body(first, last - first);
        }
        return;
    }
#endif
    body(0, items);
}
""" % {"min_work": MIN_PARALLEL_WORK}


def _compiler_supports_openmp(directory):
    """Whether PyTensor's C++ compiler builds and runs an OpenMP program; the answer is kept
    in ``directory`` per compiler and flags (a check costs 0.3 s)."""
    from pytensor.link.c.cmodule import GCC_compiler

    identity = f"{pytensor.config.cxx}\0{pytensor.config.gcc__cxxflags}\0{' '.join(_FLAGS)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = os.path.join(directory, f"ntm-openmp-{digest}")
    try:
        with open(path) as stream:
            return stream.read().strip() == "1"
    except OSError:
        pass
    try:
        built, ran = GCC_compiler.try_flags(
            _FLAGS, preamble="#include <omp.h>",
            body="return omp_get_max_threads() > 0 ? 0 : 1;", try_run=True)
        supported = bool(built and ran)
    except Exception:  # any failure of the check means: do not use it
        supported = False
    try:  # written whole, then renamed: a process reading it never sees half
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".tmp-ntm-openmp-", dir=directory)
        with os.fdopen(handle, "w") as stream:
            stream.write("1" if supported else "0")
        os.replace(temporary, path)
    except OSError:
        pass  # asked again next time
    return supported


def openmp_flags():
    """The compiler flags that turn OpenMP on for the kernels: ``["-fopenmp"]``, or ``[]``
    when ``NTM_OPENMP`` is off, there is no C++ compiler or it has no OpenMP."""
    if not OPENMP_ENABLED or not pytensor.config.cxx:
        return []
    key = (pytensor.config.cxx, pytensor.config.compiledir)
    if key not in _checked:
        _checked[key] = _compiler_supports_openmp(pytensor.config.compiledir)
    return list(_FLAGS) if _checked[key] else []
