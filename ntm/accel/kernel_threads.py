r"""The fused kernels on several cores: their batch split between OpenMP threads.

The C code of the ops in :mod:`ntm.accel.memory_kernels` and :mod:`ntm.accel.addressing_kernels` loops
over the batch (the addressing over batch x heads), and each item's arithmetic depends on that
item only. :data:`C_SUPPORT`'s ``ntm_for_chunks(items, work_per_item, body)`` cuts that loop
into one contiguous chunk per thread; every item is computed by the same code as in one
thread, so results are bit for bit the same whatever the number of threads. A call whose work
(items x work per item, in values touched) is under :data:`MIN_PARALLEL_WORK` per thread
stays on fewer threads, or one: waking a thread costs a few microseconds, more than a
batch-1 step's kernel.

Each call site also times itself, for each power of 2 of the work: one thread, then split,
then whichever was faster, trying the other again after 16 calls (after twice as many each
time it loses, up to 4,096). Split calls wait for every thread, so when other processes hold
the cores they can be several times slower than one thread, and the site falls back to one
thread until a try finds the cores free again. GNU
OpenMP's threads wait for work spinning for a while; a process that shares its cores may set
``GOMP_SPINCOUNT`` (:data:`GOMP_SPINCOUNT` is what the example scripts set) before the first
kernel runs.

The kernels are compiled with ``-fopenmp`` when the C++ compiler supports it (checked once
per compiler, the answer kept in PyTensor's compile directory) and :data:`OPENMP_ENABLED`
is true. The number of threads is OpenMP's: ``OMP_NUM_THREADS`` if
set, else the cores this process may use (at most one per item). ``OMP_NUM_THREADS=1`` keeps
a run on one core, e.g. when several trainings share a machine.
"""
import hashlib
import os
import tempfile

import pytensor

__all__ = ["openmp_flags", "OPENMP_ENABLED", "C_SUPPORT", "MIN_PARALLEL_WORK", "GOMP_SPINCOUNT"]

#: whether the kernels may be compiled with OpenMP.
OPENMP_ENABLED = True

#: the least work (values touched by one call) per thread: a call of less stays on one.
MIN_PARALLEL_WORK = 8192

#: How long (in spins) GNU OpenMP's idle threads should wait for work before they sleep, for
#: a process that sets ``GOMP_SPINCOUNT`` (the example scripts do): OpenMP's default, 300,000,
#: keeps a thread spinning long enough between kernels to take a core from the main thread
#: when another process holds the other cores; 100,000 is as fast on free cores.
GOMP_SPINCOUNT = "100000"

_FLAGS = ["-fopenmp"]
_checked = {}

C_SUPPORT = r"""
#ifdef _OPENMP
#include <omp.h>
#include <time.h>

static inline double ntm_now_ns() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e9 * (double)t.tv_sec + (double)t.tv_nsec;
}

/* One call site's record: nanoseconds per value of work on one thread and split between
   threads, and the trial under way. Each way is first measured by a trial of 8 calls, the
   last 4 of which count (the first wake the threads and warm the caches); the way in use is
   followed by a moving average of its calls (in full: a split call that waited for a
   descheduled thread counts, for that is what other processes on the cores cost); the other
   way is tried again after until_retry calls. */
struct ntm_split_record {
    double one = 0, split = 0, trial_sum = 0;
    int trying = -1, trial_left = 0;
    npy_intp until_retry = 0, retry_interval = %(first_retry)d;
};
#endif

/* Calls body(first, count) on contiguous chunks of [0, items), one chunk per OpenMP thread,
   or once on the whole range. Every item is computed by the same code either way: same
   results. The chunks are used when the work (items x work_per_item values) pays for waking
   threads and when, at this call site, they have been measured to be faster than one thread
   (they are not when other processes hold the cores: a thread waits for a descheduled one). */
template <typename Body>
static void ntm_for_chunks(npy_intp items, npy_intp work_per_item, Body body) {
#ifdef _OPENMP
    /* one record per call site (each passes its own lambda type) and power of 2 of the work */
    static ntm_split_record records[64];
    /* at most one thread per item and per %(min_work)d values of work */
    const npy_intp enough = items * work_per_item / %(min_work)d;
    npy_intp threads = omp_get_max_threads();
    if (threads > items) threads = items;
    if (threads > enough) threads = enough;
    if (threads > 1) {
        ntm_split_record& record =
            records[63 - __builtin_clzll((unsigned long long)(items * work_per_item))];
        if (record.trying < 0) {
            int way = -1;
            if (record.one == 0) way = 0;
            else if (record.split == 0) way = 1;
            else if (--record.until_retry <= 0) way = record.split < record.one ? 0 : 1;
            if (way >= 0) { record.trying = way; record.trial_left = 8; record.trial_sum = 0; }
        }
        const bool split = record.trying >= 0 ? record.trying == 1 : record.split < record.one;
        const double start = ntm_now_ns();
        if (split) {
            #pragma omp parallel num_threads(threads)
            {
                const npy_intp t = omp_get_thread_num(), n = omp_get_num_threads();
                const npy_intp first = items * t / n, last = items * (t + 1) / n;
                if (last > first) body(first, last - first);
            }
        } else {
            body(0, items);
        }
        const double per_value = (ntm_now_ns() - start) / ((double)items * work_per_item);
        double& measured = split ? record.split : record.one;
        if (record.trying >= 0) {
            if (--record.trial_left < 4) record.trial_sum += per_value;
            if (record.trial_left == 0) {
                const double other = split ? record.one : record.split;
                const bool retried = measured > 0 && other > 0;
                measured = record.trial_sum / 4;
                if (retried)  /* still the slower way: wait twice as long before the next try */
                    record.retry_interval = measured > other
                        ? (record.retry_interval < %(max_retry)d ? 2 * record.retry_interval
                                                                 : %(max_retry)d)
                        : %(first_retry)d;
                record.until_retry = record.retry_interval;
                record.trying = -1;
            }
        } else {
            measured = 0.9 * measured + 0.1 * per_value;
        }
        return;
    }
#endif
    body(0, items);
}
""" % {"min_work": MIN_PARALLEL_WORK, "first_retry": 16, "max_retry": 4096}


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
    when :data:`OPENMP_ENABLED` is false, there is no C++ compiler or it has no OpenMP."""
    if not OPENMP_ENABLED or not pytensor.config.cxx:
        return []
    key = (pytensor.config.cxx, pytensor.config.compiledir)
    if key not in _checked:
        _checked[key] = _compiler_supports_openmp(pytensor.config.compiledir)
    return list(_FLAGS) if _checked[key] else []
