"""Compiling a function's C modules in parallel.

On a machine whose PyTensor compile directory is empty, compiling the NTM's training function
is mostly the C compiler: one C++ module per distinct operation (about 125 for the copy
model, half a second each), which PyTensor builds one after another. Inside
:func:`parallel_compilation`, the linker first collects, for each function it links (scan's
inner functions included), the modules that are not in the cache yet, and has a pool of
threads run the compiler on them at once; PyTensor then links as usual, in its own order and
under its own lock, and where it would compile a module it takes the finished one instead
(moved into the directory it prepared, then imported, and registered in the cache exactly as
its own would be). A module is taken only when its source code and compiler arguments are
identical to what PyTensor asks for, and anything that goes wrong in the parallel part (a
compiler error, a PyTensor whose internals differ) falls back to PyTensor's own compilation,
which then reports the error as usual. Results are therefore the same modules, only sooner:
with ``w`` cores the compiler's share of the time divides by about ``w``. The threads also
read the headers every module starts with from a precompiled header (built once per
compiler and arguments, under the compile directory) and leave out debug information, which
together take about 40% off each module's compile time. So that the threads wait as little
as possible, the modules of the NTM's fused operations and, in idle time, guesses at others
are started before the graph is rewritten (:func:`compile_fused_ops_early`), and each scan's
step function is rewritten ahead when the scan's function is linked
(:meth:`_Prebuilder.submit_scan_steps`).

For the copy model on 2 cores, a machine's first compilation of the training function went
from 74 to 29 s (README, *Speed*).

Usage::

    with ntm.compilation.parallel_compilation():
        train = pytensor.function(inputs, outputs, updates=updates)

The environment variable ``NTM_PARALLEL_COMPILE`` sets the default number of threads (``0``
or ``1``: compile one module at a time, as PyTensor does); its default is the number of cores
this process may use.
"""
import collections
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["parallel_compilation", "compile_fused_ops_early", "CompilationReport",
           "default_workers", "ENVIRONMENT_VARIABLE", "PRECOMPILED_HEADERS"]

ENVIRONMENT_VARIABLE = "NTM_PARALLEL_COMPILE"

#: The headers PyTensor's C modules start with, in ``CLinker``'s order: all of them include
#: the first six, about half of them the C++ headers after these.
PRECOMPILED_HEADERS = ("<Python.h>", '"pytensor_mod_helper.h"', "<math.h>",
                       "<numpy/arrayobject.h>", "<numpy/arrayscalars.h>",
                       "<numpy/npy_math.h>", "<vector>", "<algorithm>")
# The prefixes of a module's source that get a precompiled header, longest first.
_HEADER_PREFIXES = tuple("".join(f"#include {header}\n" for header in PRECOMPILED_HEADERS[:n])
                         for n in (8, 6))
# Modules built by the threads carry no debug information (PyTensor's own compilation adds
# -g): a quarter of the compiler's time, and nothing a function needs.
_NO_DEBUG_INFORMATION = ["-g0"]

# Tries of a module whose compilation found no compiler configured, or ran "" as the compiler
# (see _Prebuilder.__init__).
_COMPILER_ATTEMPTS = 100

# One compilation phase at a time per process: the patches below are process-wide.
_phase_lock = threading.RLock()
_state = threading.local()


class _RewrittenOnly(Exception):
    """Stops the linking of a scan step's copy once its modules are queued."""


def default_workers():
    """Threads used by :func:`parallel_compilation`: ``$NTM_PARALLEL_COMPILE``, else the
    number of cores this process may run on."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if value:
        try:
            return max(0, int(value))
        except ValueError:
            raise ValueError(f"{ENVIRONMENT_VARIABLE} must be a whole number of threads, "
                             f"got {value!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class CompilationReport:
    """What :func:`parallel_compilation` did (filled in while the context lasts).

    Attributes
    ----------
    workers : int
        Compiler threads (1: the context changed nothing).
    built : int
        Modules the threads compiled.
    taken : int
        Of these, modules PyTensor took instead of compiling them itself.
    failed : int
        Modules the threads could not compile (PyTensor then compiled them, or reported why
        not).
    suggested : int
        Of the modules built, those compiled in idle time on a guess
        (:func:`compile_fused_ops_early`).
    unused : int
        Modules built that PyTensor did not ask for (removed at the end).
    early_steps : int
        Scans' step functions whose modules were queued as soon as the scan's function was
        linked (:meth:`_Prebuilder.submit_scan_steps`).
    precompiled_header : bool
        Whether a precompiled header was used.
    """
    workers: int = 1
    built: int = 0
    taken: int = 0
    failed: int = 0
    suggested: int = 0
    unused: int = 0
    early_steps: int = 0
    precompiled_header: bool = False


class _Prebuilder:
    """Compiles missing C modules on a thread pool and hands them to PyTensor's linker."""

    def __init__(self, workers, report):
        import pytensor
        from pytensor.link.c import cmodule
        from pytensor.link.c.basic import get_module_cache

        # The compiler, read here: PyTensor's rewriting sets ``config.cxx`` to "" for a moment
        # whenever it infers static shapes (``infer_static_shape``), process-wide, so that a
        # compiler thread reading it then finds no compiler (see _compile).
        self.cxx = pytensor.config.cxx

        self.cmodule = cmodule
        self.report = report
        self.cache = get_module_cache()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ntm-cxx")
        self.jobs = {}  # (source, compiler arguments) -> future of the built library's path
        self.headers = {}  # compiler arguments -> [lock, built, precompiled header or None]
        self.lock = threading.Lock()
        self.queued = 0  # jobs submitted to the pool and not started
        self.running = 0
        self.suggested = collections.deque()  # one-node graphs for idle time (suggest_nodes)
        self.suggesting = False  # a thread is on them
        # A suggestion starts only while fewer modules than this are queued or compiling: one
        # core is left to the process's own thread (rewriting meanwhile).
        self.busy_limit = max(1, workers - 1)
        self.closed = False
        self.closed_to_suggestions = False  # set when config changes cannot be guarded
        self.steps_seen = {}  # the scans' step graphs queued by submit_scan_steps, by id
        # Held while PyTensor's configuration changes (config.change_flags, patched during the
        # phase) and while a suggestion's module is generated.
        self.config_lock = threading.RLock()

    # -- the parallel part ------------------------------------------------------------------

    def submit_fgraph(self, fgraph):
        """Start compiling every module of ``fgraph``'s nodes that is not in the cache."""
        self.submit_nodes(fgraph.toposort())

    def submit_nodes(self, nodes):
        """Start compiling every module of ``nodes`` that is not in the cache."""
        for node in nodes:
            candidate = self._candidate(node)
            if candidate is not None:
                with self.lock:
                    if candidate[1] not in self.jobs:
                        self._submit(*candidate)

    def suggest_nodes(self, nodes):
        """Compile the modules of ``nodes`` that are not in the cache in the threads' idle
        time (modules that rewriting may or may not keep).

        These wait behind every module :meth:`submit_nodes` asks for, before or after, and
        only one thread fewer than the pool has takes them (the process's own thread is busy
        rewriting meanwhile): a guess that rewriting does not keep costs only time a core
        would have spent idle. Each operation is taken once per set of input types, and its
        module's source is generated in the thread, from a copy of the node (the graph
        itself is being rewritten meanwhile). A suggested module PyTensor later asks for is
        not compiled twice; one it never asks for is removed at the end.
        """
        from pytensor.graph.fg import FunctionGraph
        from pytensor.link.c.interface import CLinkerOp
        from pytensor.scan.op import Scan

        copies, seen = [], set()
        for node in nodes:
            if not isinstance(node.op, CLinkerOp) or isinstance(node.op, Scan):
                continue
            signature = (node.op, tuple(v.type for v in node.inputs),
                         tuple(v.type for v in node.outputs))
            try:
                if signature in seen:
                    continue
                seen.add(signature)
            except TypeError:  # an unhashable operation or type
                pass
            try:
                copies.append(FunctionGraph(node.inputs, node.outputs))  # clones the node
            except Exception:
                continue
        with self.lock:
            self.suggested.extend(copies)
        self._feed()

    def _candidate(self, node):
        """``(linker, job)`` for a node's module that is not in the cache, or None."""
        from pytensor.graph.fg import FunctionGraph
        from pytensor.link.c.interface import CLinkerOp
        from pytensor.scan.op import Scan

        if not isinstance(node.op, CLinkerOp) or isinstance(node.op, Scan):
            return None
        try:
            return self._fgraph_candidate(FunctionGraph(node.inputs, node.outputs))
        except Exception:
            return None

    def _fgraph_candidate(self, fgraph):
        """``(linker, job)`` for the module of a one-node graph, None when it is cached."""
        from pytensor.link.c.basic import CLinker

        try:
            linker = CLinker().accept(fgraph, no_recycling=[])
            key = linker.cmodule_key()
            if key in self.cache.entry_from_key:
                return None
            job = self._job(linker)
            if self.cmodule.get_module_hash(job[0], key) in self.cache.module_hash_to_key_data:
                return None
        except Exception:  # no C code for this node (e.g. a Python-only op): skip
            return None
        return linker, job

    def _submit(self, linker, job):
        """Queue a module's compilation (the caller holds the lock)."""
        self.queued += 1
        self.jobs[job] = self.pool.submit(self._run, linker, job)

    def _feed(self):
        """Start a thread on the suggested modules when one is free and nothing is queued."""
        with self.lock:
            if (self.closed or self.closed_to_suggestions or not self.suggested
                    or self.suggesting
                    or self.queued + self.running >= self.busy_limit):
                return
            self.suggesting = True
            self.queued += 1
            self.pool.submit(self._compile_suggestion)

    def _compile_suggestion(self):
        """In a pool thread: compile the next suggested module not in the cache, if no
        module asked for is waiting."""
        from concurrent.futures import Future

        import pytensor

        with self.lock:
            self.queued -= 1
            self.running += 1
        try:
            while True:
                with self.lock:
                    if self.closed or not self.suggested or self.queued:
                        return
                    fgraph = self.suggested.popleft()
                # The module's source and compiler arguments read PyTensor's configuration,
                # which rewriting changes for moments (config.cxx, see __init__): generate them
                # while no change can begin or end, and only while the compiler is set.
                with self.config_lock:
                    blank = pytensor.config.cxx != self.cxx
                    candidate = None if blank else self._fgraph_candidate(fgraph)
                if blank:
                    with self.lock:
                        self.suggested.appendleft(fgraph)
                    time.sleep(0.01)
                    continue
                if candidate is None:
                    continue
                linker, job = candidate
                with self.lock:
                    if job in self.jobs:
                        continue
                    future = self.jobs[job] = Future()
                    future.set_running_or_notify_cancel()
                try:
                    future.set_result(self._compile(linker, job))
                    with self.lock:
                        self.report.suggested += 1
                except BaseException as error:
                    future.set_exception(error)
                return
        finally:
            with self.lock:
                self.running -= 1
                self.suggesting = False
            self._feed()

    def submit_scan_steps(self, fgraph):
        """Start compiling the modules of the step functions of ``fgraph``'s scans.

        The linker builds a scan's step function (rewriting its graph, then linking it) only
        when it reaches the scan's node, after it has waited for the modules of the nodes
        before it; the step's modules would be the last in the queue, the threads idle while
        that graph is rewritten. Here a copy of each scan's step is rewritten at once, as the
        scan would (the same mode, the same rewrites, hence the same modules), and its modules
        are queued; linking the copy is cut short. The scan's own step is built later as
        usual and takes the finished modules.
        """
        from pytensor.scan.op import Scan

        for node in fgraph.toposort():
            op = node.op
            if not isinstance(op, Scan) or getattr(op, "_fn", None) is not None:
                continue
            with self.lock:
                if id(op.fgraph) in self.steps_seen:
                    continue
                self.steps_seen[id(op.fgraph)] = op.fgraph  # kept, so that its id stays its own
                self.report.early_steps += 1
            copy = op.clone()
            _state.rewrite_only = True
            try:
                copy.fn  # rewrites the copy's graph; make_all queues its modules, then stops
            except _RewrittenOnly:
                pass
            finally:
                _state.rewrite_only = False

    @staticmethod
    def _job(linker):
        """What identifies a module's build: its source and the compiler's arguments."""
        module = linker.get_dynamic_module()
        return (module.code(), tuple(linker.compile_args()), tuple(linker.libraries()),
                tuple(linker.header_dirs()), tuple(linker.lib_dirs()))

    def _run(self, linker, job):
        """In a pool thread: :meth:`_compile`, counted as running."""
        with self.lock:
            self.queued -= 1
            self.running += 1
        try:
            return self._compile(linker, job)
        finally:
            with self.lock:
                self.running -= 1
            self._feed()

    def _compile(self, linker, job):
        """Build one module in a directory of its own; returns the library's path."""
        from pytensor.link.c.exceptions import MissingGXX

        source, preargs, libraries, header_dirs, lib_dirs = job
        preargs = list(preargs) + _NO_DEBUG_INFORMATION
        preargs += self._precompiled_header(source, preargs, header_dirs)
        location = self.cmodule.dlimport_workdir(self.cache.dirname)
        _state.compile_only = True
        try:
            for attempt in range(_COMPILER_ATTEMPTS):
                try:
                    built = linker.c_compiler().compile_str(
                        module_name=linker.get_dynamic_module().code_hash, src_code=source,
                        location=location, include_dirs=list(header_dirs),
                        lib_dirs=list(lib_dirs), libs=list(libraries), preargs=preargs)
                    break
                except (MissingGXX, OSError):
                    # config.cxx was "" for a moment (see __init__), when compile_str checked
                    # it (MissingGXX) or when it ran it (OSError: "" is no program): try again
                    # shortly. A failing compilation of the code itself is a CompileError.
                    if not self.cxx or attempt == _COMPILER_ATTEMPTS - 1:
                        raise
                    time.sleep(0.02)
        except BaseException:
            shutil.rmtree(location, ignore_errors=True)
            with self.lock:
                self.report.failed += 1
            raise
        finally:
            _state.compile_only = False
        with self.lock:
            self.report.built += 1
        return built

    def _precompiled_header(self, source, preargs, header_dirs):
        """Compiler arguments that include :data:`PRECOMPILED_HEADERS` precompiled, or none.

        Every PyTensor module starts with the same includes of Python's, NumPy's and often
        C++'s headers, and parsing them is a third of the compiler's time or more. A module
        whose source starts with exactly these lines is compiled with ``-include`` of a header
        holding them, which the compiler reads precompiled when it was built with the same
        arguments (else it reads the header as text: the same module, only slower); the
        module's own includes of them then do nothing, so it is the same program.
        """
        prefix = next((p for p in _HEADER_PREFIXES if source.startswith(p)), None)
        if prefix is None:
            return []
        flags = (prefix, tuple(preargs), tuple(header_dirs))
        with self.lock:
            entry = self.headers.setdefault(flags, [threading.Lock(), False, None])
        with entry[0]:  # built once per set of arguments; other threads wait for it
            if not entry[1]:
                entry[1], entry[2] = True, self._build_header(*flags)
        if entry[2] is None:
            return []
        self.report.precompiled_header = True
        return ["-include", entry[2]]

    def _build_header(self, prefix, preargs, header_dirs):
        """Precompile the includes ``prefix`` for these compiler arguments; returns the
        header's path (its ``.gch`` next to it), or None when the compiler refuses."""
        import hashlib
        import subprocess

        digest = hashlib.sha256(repr((self.cxx, preargs, header_dirs,
                                      prefix)).encode()).hexdigest()[:24]
        directory = os.path.join(self.cache.dirname, "ntm-precompiled-headers", digest)
        header = os.path.join(directory, "ntm_modules.h")
        if os.path.exists(header + ".gch") and os.path.exists(header):
            return header
        os.makedirs(directory, exist_ok=True)
        suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(header + suffix, "w") as file:
                file.write(prefix)
            # The same arguments as PyTensor's own compilation (cmodule.GCC_compiler).
            include_dirs = [d for d in header_dirs if d] + self.cmodule.std_include_dirs()
            command = [self.cxx, "-g", *preargs, *(f"-I{d}" for d in include_dirs),
                       "-fvisibility=hidden", "-x", "c++-header", header + suffix,
                       "-o", header + ".gch" + suffix]
            if subprocess.run(command, capture_output=True).returncode != 0:
                return None
            # The compiled header first, so that a header present means its .gch is too.
            os.replace(header + ".gch" + suffix, header + ".gch")
            os.replace(header + suffix, header)
            return header
        except OSError:
            return None
        finally:
            for path in (header + suffix, header + ".gch" + suffix):
                if os.path.exists(path):
                    os.remove(path)

    # -- handing modules to PyTensor --------------------------------------------------------

    def take(self, linker, location):
        """The module PyTensor's ``compile_cmodule(location)`` would build, if prebuilt."""
        try:
            job = self._job(linker)
        except Exception:
            return None
        with self.lock:
            future = self.jobs.pop(job, None)
        if future is None:
            return None
        try:
            built = future.result()
        except Exception:  # PyTensor compiles it again and reports the error itself
            return None
        source_dir = os.path.dirname(built)
        for name in os.listdir(source_dir):
            os.replace(os.path.join(source_dir, name), os.path.join(location, name))
        os.rmdir(source_dir)
        module = self.cmodule.dlimport(os.path.join(location, os.path.basename(built)))
        with self.lock:
            self.report.taken += 1
        return module

    def close(self):
        """Wait for the pool and remove the modules nobody took."""
        with self.lock:
            self.closed = True
            self.suggested.clear()
            leftovers = list(self.jobs.values())
            self.jobs.clear()
        for future in leftovers:
            future.cancel()
        self.pool.shutdown(wait=True)
        for future in leftovers:
            if future.done() and not future.cancelled() and future.exception() is None:
                shutil.rmtree(os.path.dirname(future.result()), ignore_errors=True)
                self.report.unused += 1


def compile_fused_ops_early(variables, mode=None, suggest=True):
    """Inside :func:`parallel_compilation`, start compiling at once the C modules of the NTM's
    fused operations (:mod:`ntm.memory_kernels`, :mod:`ntm.addressing_kernels`) in the graph
    of ``variables``, scans' steps included, instead of after the graph is rewritten; and
    (``suggest``) those of its other operations but elementwise ones, whenever a thread has
    nothing else to do.

    Rewriting the training function's graph takes seconds of Python on one core, and the
    compiler threads have nothing to do until it ends; the fused ops' modules, the largest of
    the function, do not depend on it (rewriting leaves these operations as they are). Many
    structural operations (reshapes, joins and splits, subtensors, sums, allocations) come
    out of rewriting unchanged too: for the copy model, two thirds of them, about 10 s of
    the compiler's time, where elementwise operations are nearly all fused into new ones.
    Their modules are compiled only while the threads would otherwise wait
    (:meth:`_Prebuilder.suggest_nodes`), so that a guess that rewriting does not keep costs
    nothing but otherwise idle time. A module that rewriting does change is simply compiled
    again, as without this call.

    Parameters
    ----------
    variables : Variable or list of Variable
        The outputs (and update expressions) of the function about to be compiled.
    mode : str or Mode, optional
        Its mode (default: PyTensor's); nothing is compiled for a mode without C thunks
        (Numba, JAX, Python).
    suggest : bool, optional
        Also compile the other non-elementwise operations' modules in idle time (default).

    Returns
    -------
    int
        Fused operations' modules started (0 outside the context, with fewer than 2 threads,
        for a mode without C thunks, or when all of them are in the cache).
    """
    prebuilder = getattr(_state, "prebuilder", None)
    if prebuilder is None:
        return 0
    try:
        from pytensor.compile.mode import get_mode
        from pytensor.link.vm import VMLinker
        from pytensor.tensor.elemwise import Elemwise

        linker = get_mode(mode).linker
        if not isinstance(linker, VMLinker) or linker.c_thunks is False:
            return 0
        if not isinstance(variables, (list, tuple)):
            variables = [variables]
        nodes = _all_nodes(variables)
        fused = [node for node in nodes if type(node.op).__module__ in _FUSED_OP_MODULES]
        fused_set = set(fused)
        before = len(prebuilder.jobs)
        prebuilder.submit_nodes(fused)
        started = len(prebuilder.jobs) - before
        if suggest:
            prebuilder.suggest_nodes([node for node in nodes if node not in fused_set
                                      and not isinstance(node.op, Elemwise)])
        return started
    except Exception:  # compiling goes on as usual
        return 0


_FUSED_OP_MODULES = ("ntm.memory_kernels", "ntm.addressing_kernels")


def _all_nodes(variables):
    """The operations computing ``variables``, and those of the steps of their scans."""
    from pytensor.graph.traversal import applys_between
    from pytensor.scan.op import Scan

    found, seen, pending = [], set(), [list(variables)]
    while pending:
        outputs = pending.pop()
        for node in applys_between([], outputs):
            if node in seen:
                continue
            seen.add(node)
            found.append(node)
            if isinstance(node.op, Scan):
                pending.append(list(node.op.fgraph.outputs))
    return found


@contextmanager
def parallel_compilation(workers=None):
    """Within this context, functions compiled with PyTensor's C backend (``CVM``, ``C``,
    ``FAST_RUN`` and the other VM linkers) build their missing C modules in parallel.

    Parameters
    ----------
    workers : int, optional
        Compiler threads; default :func:`default_workers`. With fewer than 2, inside another
        use of this context, or while another thread is in one, nothing changes.

    Yields
    ------
    CompilationReport
        Filled in as functions are compiled.

    Notes
    -----
    While it lasts, the context replaces PyTensor's ``VMLinker.make_all``,
    ``CLinker.compile_cmodule`` and ``cmodule.dlimport`` with versions that call the originals
    (for the whole process: a function compiled meanwhile by another thread may also be given
    finished modules).
    """
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a whole number of threads >= 0, got {workers!r}")
    report = CompilationReport()
    if workers < 2 or not _phase_lock.acquire(blocking=False):
        yield report
        return
    try:
        if getattr(_state, "active", False):  # nested: the outer context does the work
            yield report
            return
        with _patched(workers, report):
            yield report
    finally:
        _phase_lock.release()


@contextmanager
def _patched(workers, report):
    try:
        from pytensor.link.c import cmodule
        from pytensor.link.c.basic import CLinker
        from pytensor.link.vm import VMLinker

        prebuilder = _Prebuilder(workers, report)
    except Exception:  # an unexpected PyTensor: compile as usual
        yield
        return
    report.workers = workers

    original_make_all = VMLinker.make_all
    original_compile = CLinker.compile_cmodule
    original_dlimport = cmodule.dlimport
    original_popen = cmodule.output_subprocess_Popen
    try:
        from pytensor.configparser import _ChangeFlagsDecorator as change_flags_type
        original_enter, original_exit = change_flags_type.__enter__, change_flags_type.__exit__
    except (ImportError, AttributeError):  # another PyTensor: no guesses (see _feed)
        change_flags_type = None
        prebuilder.closed_to_suggestions = True

    def make_all(self, *args, **kwargs):
        if self.c_thunks is not False:
            try:
                prebuilder.submit_fgraph(self.fgraph)
                prebuilder.submit_scan_steps(self.fgraph)
            except Exception:  # linking goes on as usual
                pass
        if getattr(_state, "rewrite_only", False):
            raise _RewrittenOnly  # a step's function built only for its modules: stop here
        return original_make_all(self, *args, **kwargs)

    def compile_cmodule(self, location=None):
        module = None
        if location is not None:
            try:
                module = prebuilder.take(self, location)
            except Exception:
                module = None
        return original_compile(self, location) if module is None else module

    def dlimport(fullpath, suffix=None):
        # The compiler threads only build the library; PyTensor imports it when it takes it.
        if getattr(_state, "compile_only", False):
            return fullpath
        return original_dlimport(fullpath, suffix)

    def output_subprocess_popen(command, *args, **kwargs):
        # A compiler thread's command names the compiler as config.cxx was when the command
        # was built, "" if rewriting had blanked it for a moment (see _Prebuilder.__init__):
        # run the one read when the phase began, rather than fail (PyTensor would print the
        # command as a compilation problem) and try again.
        if (getattr(_state, "compile_only", False) and command and command[0] == ""
                and prebuilder.cxx):
            command = [prebuilder.cxx, *command[1:]]
        return original_popen(command, *args, **kwargs)

    def change_flags_enter(self):
        with prebuilder.config_lock:
            return original_enter(self)

    def change_flags_exit(self, *args):
        with prebuilder.config_lock:
            return original_exit(self, *args)

    VMLinker.make_all = make_all
    CLinker.compile_cmodule = compile_cmodule
    cmodule.dlimport = dlimport
    cmodule.output_subprocess_Popen = output_subprocess_popen
    if change_flags_type is not None:
        change_flags_type.__enter__ = change_flags_enter
        change_flags_type.__exit__ = change_flags_exit
    _state.active = True
    _state.prebuilder = prebuilder
    try:
        yield
    finally:
        _state.active = False
        _state.prebuilder = None
        # First the threads, whose compilations still running need the patched dlimport.
        try:
            prebuilder.close()
        finally:
            VMLinker.make_all = original_make_all
            CLinker.compile_cmodule = original_compile
            cmodule.dlimport = original_dlimport
            cmodule.output_subprocess_Popen = original_popen
            if change_flags_type is not None:
                change_flags_type.__enter__ = original_enter
                change_flags_type.__exit__ = original_exit
