r"""The fused kernels on several cores: their batch split between OpenMP threads.

The C code of the ops in :mod:`ntm.accel.memory_kernels` and
:mod:`ntm.accel.addressing_kernels` loops over the batch (the addressing over batch x heads),
and each item's arithmetic depends on that item only. :data:`C_SUPPORT`'s ``ntm_for_chunks(items, work_per_item, body)`` cuts that loop
into one contiguous chunk per thread; every item is computed by the same code as in one
thread, so results are bit for bit the same whatever the number of threads.

How many threads a call takes:

- **Set explicitly** (:func:`set_threads`, or :func:`threads` for a block): that many, at most
  one per item, for every call.
- **Automatic** (the default): one thread, unless the call's work (items x work per item, in
  values touched) is at least :data:`AUTO_PARALLEL_WORK` per thread, a call long enough that
  waking and waiting for threads costs little beside it (a memory read at a batch of a
  hundred and more for a 128 x 20 memory). Even then the call site times itself and keeps to
  one thread when splitting is not faster (below). The number of threads is then OpenMP's:
  ``OMP_NUM_THREADS`` if set, else the cores this process may use.

Why one thread below that: a training step calls the kernels hundreds of times with other
operations between them, and at the sizes the NTM trains with (batch 16, memory 128 x 20)
each call is short. Split, each call may be a little faster on its own, but the step as a
whole is not: OpenMP's idle threads spin between the calls, holding the other cores (where
two cores are hyperthreads of one, they slow the main thread's own work; with another
process on the other core, every split call waits for a descheduled thread), and waking them
again costs time at every call. On 2-core machines of two processors two threads made a
batch-16 step several times slower than one thread, and were never clearly faster (the
performance page of the documentation has the measurements). Timing each call site, as is
still done above the threshold, cannot see that cost: it falls on the step's other
operations, not on the kernel.

Each call site that may split times itself, for each power of 2 of the work: one thread, then
split, then whichever was faster, trying the other again after 16 calls (after twice as many
each time it loses, up to 4,096). GNU OpenMP's threads wait for work spinning for a while; a
process that shares its cores may set ``GOMP_SPINCOUNT`` (:data:`GOMP_SPINCOUNT` is what the
example scripts set) before the first kernel runs.

The kernels are compiled with ``-fopenmp`` when the C++ compiler supports it (checked once
per compiler, the answer kept in PyTensor's compile directory) and :data:`OPENMP_ENABLED`
is true; without OpenMP they run on one thread whatever the setting.
"""
import hashlib
import os
import tempfile
import time
from contextlib import contextmanager

import numpy as np
import pytensor

__all__ = ["set_threads", "get_threads", "threads", "last_call_threads", "available_threads",
           "ThreadChoice", "openmp_flags", "OPENMP_ENABLED", "C_SUPPORT", "AUTO_PARALLEL_WORK",
           "GOMP_SPINCOUNT"]

#: whether the kernels may be compiled with OpenMP.
OPENMP_ENABLED = True

#: In the automatic setting, the least work (values touched by one call) per thread: a call
#: of less runs on one thread.
AUTO_PARALLEL_WORK = 1 << 18

#: How long (in spins) GNU OpenMP's idle threads should wait for work before they sleep, for
#: a process that sets ``GOMP_SPINCOUNT`` (the example scripts do): OpenMP's default, 300,000,
#: kept a thread spinning long enough between kernels to take a core from the main thread
#: when another process held the other one; 100,000 is as fast on free cores.
GOMP_SPINCOUNT = "100000"

# What the compiled kernels read at every call (they find this array once, by importing
# this module): [0] the setting, 0 for automatic, else the number of threads; they write in
# [1] the number of threads their last call could take (the automatic setting's timing may
# still keep it to one).
_SETTING = np.zeros(2, dtype=np.intc)

_FLAGS = ["-fopenmp"]
_checked = {}


def _int_at_least(value, minimum):
    """Whether ``value`` is an integer (not a bool) of at least ``minimum``."""
    return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
            and value >= minimum)


def set_threads(count):
    """Set how many threads the kernels' calls take, for the whole process.

    Parameters
    ----------
    count : int or None
        ``None`` (or 0): automatic, the default (one thread below :data:`AUTO_PARALLEL_WORK`
        per thread, see the module docstring); ``n >= 1``: ``n`` threads for every call (at
        most one per item), e.g. ``1`` to keep a process on one core whatever its calls.

    Returns
    -------
    int or None
        The previous setting.
    """
    if count is not None and not _int_at_least(count, 0):
        raise ValueError(f"set_threads: count must be None (automatic) or an int >= 1, "
                         f"got {count!r}")
    previous = get_threads()
    _SETTING[0] = int(count or 0)
    return previous


def last_call_threads():
    """How many threads the kernels' last call could take (1 when it ran on one; in the
    automatic setting, the call site's timing may still have kept a call of more to one)."""
    return max(int(_SETTING[1]), 1)


def get_threads():
    """The kernels' thread setting: ``None`` when automatic, else the number of threads."""
    return int(_SETTING[0]) or None


@contextmanager
def threads(count):
    """:func:`set_threads` for the time of a ``with`` block, the previous setting restored
    after it."""
    previous = set_threads(count)
    try:
        yield
    finally:
        set_threads(previous)



def available_threads():
    """The threads a split call takes: ``OMP_NUM_THREADS`` when it is set to a number, else
    the cores this process may use; 1 where the kernels are built without OpenMP."""
    if not OPENMP_ENABLED or not pytensor.config.cxx:
        return 1
    setting = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


class ThreadChoice:
    r"""Chooses the kernels' threads for a loop of like steps (a training loop) by timing the
    steps themselves.

    The automatic setting decides per call and cannot see what threads cost the rest of a
    step (the module docstring says why), and which setting is the fastest for a whole step
    depends on the processor and on what else the machine runs: on 2 cores, splitting every
    call of a batch-16 step has been measured both faster than the automatic setting and, with
    another process on the other core, tens of times slower (the documentation's performance
    page has the figures). This compares them where it matters.

    A trial takes the steps in turns with each setting (a change of load during it then
    falls on every setting): one step each that is not timed (it pays what a setting costs
    once: starting or waking OpenMP's threads), then up to ``trial_steps`` each; a setting
    whose fastest step so far is more than ``DROP_RATIO`` times another's median takes no
    more of its steps, so that a setting that waits for descheduled threads costs two steps, not
    ``trial_steps``. The setting
    whose median time per unit of work is the lowest,

    .. math:: s^* = \arg\min_s \operatorname{median}_{k \in \text{trial}(s)} t_k / w_k,

    serves the following steps. A new trial starts every ``retry_every`` steps, or as soon
    as the median of the last ``WATCHED_STEPS`` steps is more than ``WATCH_RATIO`` times what
    the trial measured for the setting: the machine's load changed. The kernels' results do
    not depend on their threads, so neither a trial nor the choice changes what a step
    computes.

    A setting made by :func:`set_threads` or :func:`threads` before the choice is built is
    the user's: the choice then keeps it and times nothing. So it does with one setting to
    compare (one core, ``OMP_NUM_THREADS=1``, no OpenMP).

    Parameters
    ----------
    settings : sequence of (int or None), optional
        The settings compared (``None``: automatic). Default: automatic and
        :func:`available_threads` threads for every call.
    trial_steps : int
        Steps timed with each setting in a trial, at most (after one that is not).
    retry_every : int
        Steps between the end of a trial and the next.
    clock : callable
        Returns seconds (``time.perf_counter``).

    Examples
    --------
    >>> choice = ThreadChoice()
    >>> for x, y in batches:                          # doctest: +SKIP
    ...     with choice.step(work=x.shape[1]):        # the sequence's length
    ...         train(x, y)
    >>> choice.chosen                                 # doctest: +SKIP
    2
    """

    #: A setting whose fastest step in a trial exceeds another's median this many times is
    #: dropped from it.
    DROP_RATIO = 3.0
    #: The chosen setting's recent steps that are watched, and how many times slower than in
    #: its trial their median may be before a new trial.
    WATCHED_STEPS, WATCH_RATIO = 5, 1.5

    def __init__(self, settings=None, trial_steps=10, retry_every=2000, clock=time.perf_counter):
        if not _int_at_least(trial_steps, 1):
            raise ValueError(f"ThreadChoice: trial_steps must be an int >= 1, got "
                             f"{trial_steps!r}")
        if not _int_at_least(retry_every, 1):
            raise ValueError(f"ThreadChoice: retry_every must be an int >= 1, got "
                             f"{retry_every!r}")
        if get_threads() is not None:  # the user's setting
            settings = [get_threads()]
        elif settings is None:
            every_core = available_threads()
            settings = [None] + ([every_core] if every_core > 1 else [])
        else:
            settings = list(dict.fromkeys(settings))
            for setting in settings:
                if setting is not None and not _int_at_least(setting, 1):
                    raise ValueError(f"ThreadChoice: settings must be None (automatic) or "
                                     f"ints >= 1, got {setting!r}")
            if not settings:
                raise ValueError("ThreadChoice: settings is empty")
        self.settings = tuple(settings)
        self.trial_steps = trial_steps
        self.retry_every = retry_every
        self.clock = clock
        #: The setting the steps take between trials (the first of ``settings`` until the
        #: first trial ends).
        self.chosen = self.settings[0]
        #: Each setting's median seconds per unit of work in the last trial (those dropped
        #: from it: their median when they were).
        self.measured = {}
        #: How many trials have ended.
        self.trials = 0
        self._queue, self._times, self._recent, self._warming = [], {}, [], set()
        self._until_trial = 0 if len(self.settings) > 1 else None
        self._start_trial_if_due()

    def _start_trial_if_due(self):
        if self._until_trial is not None and self._until_trial <= 0 and not self._queue:
            # In turns, so that a change of load during the trial falls on every setting; one
            # more step each, the first, which is not timed: it pays what a setting costs
            # once (starting OpenMP's threads, waking them, warming the caches).
            self._queue = [setting for _ in range(self.trial_steps + 1)
                           for setting in self.settings]
            self._times = {setting: [] for setting in self.settings}
            self._warming = set(self.settings)

    @property
    def trying(self):
        """Whether the next step is timed for a trial."""
        return bool(self._queue)

    @contextmanager
    def step(self, work=1.0):
        """One step, with the setting the choice gives it.

        Parameters
        ----------
        work : float
            The step's amount of work in any unit the loop's steps share (the sequence length
            for steps of one batch size): trials compare seconds per unit.
        """
        if not work > 0:
            raise ValueError(f"ThreadChoice.step: work must be > 0, got {work!r}")
        setting = self._queue[0] if self._queue else self.chosen
        previous = set_threads(setting)
        started = self.clock()
        try:
            yield setting
        finally:
            elapsed = self.clock() - started
            set_threads(previous)
        # Only a step that completed counts.
        if self._queue:
            self._trial_step(setting, elapsed / work)
        elif self._until_trial is not None:
            self._watch(elapsed / work)

    def _trial_step(self, setting, seconds_per_unit):
        self._queue.pop(0)
        if setting in self._warming:
            self._warming.discard(setting)
        else:
            self._times[setting].append(seconds_per_unit)
        medians = {s: float(np.median(t)) for s, t in self._times.items() if t}
        for s, times in self._times.items():
            # Its fastest step, so that one step that waited for another process does not
            # drop it.
            if times and any(min(times) > self.DROP_RATIO * other
                             for o, other in medians.items() if o != s):
                self._queue = [queued for queued in self._queue if queued != s]
        if not self._queue and medians:
            self.measured = medians
            self.chosen = min(medians, key=medians.__getitem__)
            self.trials += 1
            self._until_trial = self.retry_every
            self._recent = []

    def _watch(self, seconds_per_unit):
        self._until_trial -= 1
        self._recent = (self._recent + [seconds_per_unit])[-self.WATCHED_STEPS:]
        if len(self._recent) == self.WATCHED_STEPS and \
                np.median(self._recent) > self.WATCH_RATIO * self.measured[self.chosen]:
            self._until_trial = 0
        self._start_trial_if_due()

    def describe(self, unit="unit of work"):
        """One line: the setting chosen and, after a trial, each setting's median time per
        ``unit``."""
        if not self.measured:
            return f"kernel threads: {_setting_name(self.chosen)}"
        times = ", ".join(f"{_setting_name(s)} {1e3 * t:.3g} ms"
                          for s, t in self.measured.items())
        return f"kernel threads: {_setting_name(self.chosen)} (per {unit}: {times})"


def _setting_name(setting):
    return "automatic" if setting is None else str(setting)


C_SUPPORT = r"""
#ifdef _OPENMP
#include <omp.h>
#include <time.h>

static inline double ntm_now_ns() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e9 * (double)t.tv_sec + (double)t.tv_nsec;
}

/* The process's thread setting, ntm.accel.kernel_threads._SETTING ([0]: 0 automatic, else
   the number of threads; [1]: what the last call could take), found once; automatic where
   it cannot be found. */
static int* ntm_thread_setting() {
    static int automatic[2] = {0, 0};
    static int* setting = NULL;
    if (setting == NULL) {
        setting = automatic;
        PyObject* module = PyImport_ImportModule("ntm.accel.kernel_threads");
        PyObject* array = module ? PyObject_GetAttrString(module, "_SETTING") : NULL;
        if (array && PyArray_Check(array) && PyArray_TYPE((PyArrayObject*)array) == NPY_INT
                && PyArray_SIZE((PyArrayObject*)array) == 2
                && PyArray_IS_C_CONTIGUOUS((PyArrayObject*)array))
            setting = (int*)PyArray_DATA((PyArrayObject*)array);  /* reference kept */
        else
            Py_XDECREF(array);
        Py_XDECREF(module);
        PyErr_Clear();
    }
    return setting;
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
   results. With a number of threads set, the chunks are always used; in the automatic
   setting, only when the work (items x work_per_item values) is at least %(auto_work)d per
   thread and, at this call site, the chunks have been measured to be faster than one
   thread (they are not when other processes hold the cores: a thread waits for a
   descheduled one). */
template <typename Body>
static void ntm_for_chunks(npy_intp items, npy_intp work_per_item, Body body) {
#ifdef _OPENMP
    int* const state = ntm_thread_setting();
    const int setting = state[0];
    npy_intp threads = setting > 0 ? setting : omp_get_max_threads();
    if (threads > items) threads = items;
    if (setting <= 0) {  /* automatic: at most one thread per %(auto_work)d values of work */
        const npy_intp enough = items * work_per_item / %(auto_work)d;
        if (threads > enough) threads = enough;
    }
    state[1] = threads > 1 ? (int)threads : 1;
    if (setting > 0 && threads > 1) {
        #pragma omp parallel num_threads(threads)
        {
            const npy_intp t = omp_get_thread_num(), n = omp_get_num_threads();
            const npy_intp first = items * t / n, last = items * (t + 1) / n;
            if (last > first) body(first, last - first);
        }
        return;
    }
    if (threads > 1) {
        /* one record per call site (each passes its own lambda type) and power of 2 of the
           work */
        static ntm_split_record records[64];
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
""" % {"auto_work": AUTO_PARALLEL_WORK, "first_retry": 16, "max_retry": 4096}


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
