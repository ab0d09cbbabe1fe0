"""Parallel compilation of C modules: same modules, same results, registered in the cache.

Each case runs a small script in a fresh process with its own empty PyTensor compile directory,
so that there are modules to compile and the user's cache is left alone.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ntm import compilation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A scan (its inner function is linked by a nested linker) and its gradient, with constants
# that make the modules this test's own.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {root!r})
    import numpy as np
    import pytensor
    import pytensor.tensor as pt
    from ntm import compilation

    x = pt.matrix("x")
    w = pt.matrix("w")

    def step(x_t, h, w):
        return pt.tanh(pt.dot(h, w) * 0.8125 + x_t) + pt.exp(-abs(x_t)) * 0.0625

    h = pytensor.scan(step, sequences=[x], outputs_info=[pt.zeros((x.shape[1],))],
                         non_sequences=[w], return_updates=False)
    cost = (h ** 2).sum()
    outputs = [cost, pytensor.grad(cost, w)]
    if os.environ.get("FAIL_THREADS"):
        def fail(self, linker, job):
            raise RuntimeError("no compiler in this thread")
        compilation._Prebuilder._compile = fail
    with compilation.parallel_compilation() as report:
        extra = {{}}
        if os.environ.get("SUGGEST"):
            import time, warnings
            prebuilder = compilation._state.prebuilder
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if os.environ["SUGGEST"] == "blank":
                    # As PyTensor's rewriting does for moments: no compiler configured.
                    with pytensor.config.change_flags(cxx=""):
                        compilation.compile_fused_ops_early(outputs, "CVM")
                        time.sleep(0.5)
                        extra["while_blank"] = report.suggested + report.failed
                else:
                    compilation.compile_fused_ops_early(outputs, "CVM")
                while prebuilder.suggested or prebuilder.suggesting:  # all guesses built first
                    time.sleep(0.02)
            extra["warnings"] = [str(w.message) for w in caught]
        function = pytensor.function([x, w], outputs, mode="CVM")
    rng = np.random.default_rng(0)
    xs, ws = rng.normal(size=(5, 3)), rng.normal(size=(3, 3)) * 0.5
    cost_value, grad_value = function(xs, ws)
    print(json.dumps({{"cost": float(cost_value), "grad": grad_value.tolist(),
                      "xs": xs.tolist(), "ws": ws.tolist(), "report": vars(report),
                      **extra}}))
""")


def _run(compiledir, workers, **environment):
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir},floatX=float64",
               NTM_PARALLEL_COMPILE=str(workers), **environment)
    completed = subprocess.run([sys.executable, "-c", SCRIPT.format(root=ROOT)], env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _modules(compiledir):
    """Operations' module directories of the compile directory, and those without a cache
    entry (PyTensor's own extensions, ``cutils_ext`` and ``lazylinker_ext``, are not counted)."""
    found, unregistered = set(), set()
    for root, dirs, files in os.walk(compiledir):
        if "mod.cpp" in files and os.path.basename(root).startswith("tmp"):
            found.add(os.path.basename(root))
            if "key.pkl" not in files:
                unregistered.add(os.path.basename(root))
    return found, unregistered


def _reference(xs, ws):
    """The script's cost and gradient in NumPy (backpropagation through time by hand)."""
    xs, ws = np.asarray(xs), np.asarray(ws)
    h = np.zeros(xs.shape[1])
    hs, pre = [h], []
    for x_t in xs:
        a = h @ ws * 0.8125 + x_t
        h = np.tanh(a) + np.exp(-np.abs(x_t)) * 0.0625
        pre.append(a)
        hs.append(h)
    cost = sum((h ** 2).sum() for h in hs[1:])
    grad, dh = np.zeros_like(ws), np.zeros(xs.shape[1])
    for t in reversed(range(len(xs))):
        dh = dh + 2 * hs[t + 1]
        da = dh * (1 - np.tanh(pre[t]) ** 2)
        grad += np.outer(hs[t], da) * 0.8125
        dh = ws @ da * 0.8125
    return cost, grad


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    compiledir = tmp_path_factory.mktemp("compiledir")
    return compiledir, _run(compiledir, 2)


def test_threads_build_every_module_and_pytensor_takes_them(parallel_run):
    compiledir, result = parallel_run
    report = result["report"]
    assert report["workers"] == 2
    assert report["built"] > 0 and report["failed"] == 0
    assert report["taken"] == report["built"] and report["unused"] == 0
    assert report["precompiled_header"]  # g++ here
    # The forward scan's step and its gradient's: rewritten ahead, their modules queued early,
    # and the same modules as the steps' own (every module built was taken).
    assert report["early_steps"] == 2
    found, unregistered = _modules(compiledir)
    assert len(found) >= report["taken"] and not unregistered


def test_results_match_numpy(parallel_run):
    _, result = parallel_run
    cost, grad = _reference(result["xs"], result["ws"])
    np.testing.assert_allclose(result["cost"], cost, rtol=1e-12)
    np.testing.assert_allclose(result["grad"], grad, rtol=1e-10, atol=1e-12)


def test_a_second_process_finds_every_module_in_the_cache(parallel_run):
    compiledir, first = parallel_run
    before, _ = _modules(compiledir)
    second = _run(compiledir, 2)
    assert second["report"]["built"] == 0
    assert _modules(compiledir)[0] == before
    assert second["cost"] == first["cost"] and second["grad"] == first["grad"]


def test_same_modules_and_results_one_at_a_time(parallel_run, tmp_path):
    compiledir, parallel = parallel_run
    serial = _run(tmp_path, 1)
    assert serial["report"] == dict(workers=1, built=0, taken=0, failed=0, suggested=0,
                                    unused=0, early_steps=0, precompiled_header=False)
    assert len(_modules(tmp_path)[0]) == len(_modules(compiledir)[0])
    assert serial["cost"] == parallel["cost"] and serial["grad"] == parallel["grad"]


def test_pytensor_compiles_what_the_threads_could_not(tmp_path, parallel_run):
    _, parallel = parallel_run
    result = _run(tmp_path, 2, FAIL_THREADS="1")
    assert result["report"]["built"] == 0 and result["report"]["taken"] == 0
    found, unregistered = _modules(tmp_path)
    assert found and not unregistered
    assert result["cost"] == parallel["cost"] and result["grad"] == parallel["grad"]


def test_guessed_modules_are_taken_or_removed_and_change_no_result(parallel_run, tmp_path):
    _, parallel = parallel_run
    result = _run(tmp_path, 2, SUGGEST="1")
    report = result["report"]
    # Guesses from the graph before rewriting (its subtensors, allocations, shapes...): some
    # survive rewriting and are taken, the others are removed; nothing else goes unused.
    assert report["suggested"] > report["unused"]
    assert report["taken"] + report["unused"] == report["built"] and report["failed"] == 0
    found, unregistered = _modules(tmp_path)
    assert len(found) == len(_modules(parallel_run[0])[0]) and not unregistered
    assert result["cost"] == parallel["cost"] and result["grad"] == parallel["grad"]
    assert result["warnings"] == []


def test_no_guess_is_generated_while_no_compiler_is_configured(parallel_run, tmp_path):
    _, parallel = parallel_run
    result = _run(tmp_path, 2, SUGGEST="blank")
    report = result["report"]
    # Nothing generated (or compiled with arguments for no compiler) while config.cxx was
    # blank; everything once it was set again, with no warning about an unknown compiler.
    assert result["while_blank"] == 0
    assert report["suggested"] > report["unused"] and report["failed"] == 0
    assert result["warnings"] == []
    assert result["cost"] == parallel["cost"] and result["grad"] == parallel["grad"]


def test_default_workers_from_the_environment(monkeypatch):
    monkeypatch.setenv(compilation.ENVIRONMENT_VARIABLE, "3")
    assert compilation.default_workers() == 3
    monkeypatch.setenv(compilation.ENVIRONMENT_VARIABLE, "many")
    with pytest.raises(ValueError, match="NTM_PARALLEL_COMPILE"):
        compilation.default_workers()
    monkeypatch.delenv(compilation.ENVIRONMENT_VARIABLE)
    assert compilation.default_workers() >= 1


@pytest.mark.parametrize("workers", [-1, 1.5, "2", True])
def test_bad_worker_counts_fail_early(workers):
    with pytest.raises(ValueError, match="workers"):
        with compilation.parallel_compilation(workers):
            pass


def test_one_worker_or_nesting_changes_nothing():
    from pytensor.link.vm import VMLinker

    original = VMLinker.make_all
    with compilation.parallel_compilation(1) as report:
        assert VMLinker.make_all is original and report.workers == 1
    with compilation.parallel_compilation(2) as outer:
        patched = VMLinker.make_all
        assert patched is not original and outer.workers == 2
        with compilation.parallel_compilation(2) as inner:
            assert VMLinker.make_all is patched and inner.workers == 1
    assert VMLinker.make_all is original


# The small NTM's output and gradient: its fused ops' modules are started before rewriting.
EARLY_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import pytensor
    import pytensor.tensor as pt
    from ntm import compilation
    from ntm.lasagne import layers
    from tests.small_ntm import small_ntm

    l_input, l_ntm = small_ntm()
    cost = pt.sum(pt.sqr(layers.get_output(l_ntm)))
    outputs = [cost] + pytensor.grad(cost, layers.get_all_params(l_ntm, trainable=True))
    counts = {{"outside": compilation.compile_fused_ops_early(outputs, "CVM")}}
    with compilation.parallel_compilation(2) as report:
        for mode in ("NUMBA", "FAST_COMPILE", "CVM"):
            counts[mode] = compilation.compile_fused_ops_early(outputs, mode)
        counts["again"] = compilation.compile_fused_ops_early(outputs, "CVM")
        if {link!r}:
            pytensor.function([l_input.input_var], outputs, mode="CVM")
    print(json.dumps({{"counts": counts, "report": vars(report)}}))
""")


def _run_early(compiledir, link):
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir},floatX=float64")
    script = EARLY_SCRIPT.format(root=ROOT, link=link)
    completed = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_fused_ops_modules_start_early_only_for_c_thunks_in_the_context(tmp_path):
    counts = _run_early(tmp_path, link=False)["counts"]
    # memory write and read, similarity, addressing, and the gradient of each
    assert counts == {"outside": 0, "NUMBA": 0, "FAST_COMPILE": 0, "CVM": 8, "again": 0}


@pytest.mark.slow
def test_the_modules_started_early_are_the_ones_pytensor_links(tmp_path):
    result = _run_early(tmp_path, link=True)
    report = result["report"]
    assert result["counts"]["CVM"] == 8
    assert report["failed"] == 0 and report["built"] > 8
    # None built for nothing but guesses made in idle time.
    assert report["taken"] + report["unused"] == report["built"]
    assert report["unused"] <= report["suggested"]
    found, unregistered = _modules(tmp_path)
    assert len(found) >= report["taken"] and not unregistered


class _FlakyCompiler:
    """A compiler that finds no ``g++`` for its first ``misses`` calls, as a compiler thread
    does while PyTensor's rewriting has set ``config.cxx`` to "" for a moment."""

    def __init__(self, misses):
        self.misses, self.calls = misses, 0

    def compile_str(self, module_name, src_code, location, **kwargs):
        from pytensor.link.c.exceptions import MissingGXX

        self.calls += 1
        if self.calls <= self.misses:
            # The setting read when checked, or when run.
            if self.calls % 2:
                raise MissingGXX("g++ not available! We can't compile c code.")
            raise PermissionError(13, "Permission denied", "")
        return os.path.join(location, module_name + ".so")


class _FakeLinker:
    def __init__(self, compiler):
        self.compiler = compiler

    def c_compiler(self):
        return self.compiler

    def get_dynamic_module(self):
        class Module:
            code_hash = "m0"
        return Module()


def test_a_compiler_thread_runs_the_compiler_read_when_the_phase_began():
    from pytensor.link.c import cmodule

    original = cmodule.output_subprocess_Popen
    with compilation.parallel_compilation(2):
        compilation._state.compile_only = True  # as in a compiler thread's build
        try:
            # The command as built while rewriting had blanked config.cxx.
            _, _, status = cmodule.output_subprocess_Popen(["", "--version"])
        finally:
            compilation._state.compile_only = False
        assert status == 0
        with pytest.raises(OSError):  # PyTensor's own compilation is left as it is
            cmodule.output_subprocess_Popen(["", "--version"])
    assert cmodule.output_subprocess_Popen is original


@pytest.mark.parametrize("cxx, misses, succeeds", [("g++", 3, True), ("", 1, False)])
def test_a_compiler_thread_tries_again_when_the_compiler_setting_is_blank(cxx, misses,
                                                                           succeeds):
    import shutil

    report = compilation.CompilationReport()
    prebuilder = compilation._Prebuilder(1, report)
    try:
        prebuilder.cxx = cxx  # as read when the compilation phase began
        compiler = _FlakyCompiler(misses)
        job = ("/* not a PyTensor module */", (), (), (), ())
        if succeeds:
            built = prebuilder._compile(_FakeLinker(compiler), job)
            assert built.endswith("m0.so") and compiler.calls == misses + 1
            assert (report.built, report.failed) == (1, 0)
            shutil.rmtree(os.path.dirname(built), ignore_errors=True)
        else:
            from pytensor.link.c.exceptions import MissingGXX
            with pytest.raises(MissingGXX):
                prebuilder._compile(_FakeLinker(compiler), job)
            assert compiler.calls == 1 and (report.built, report.failed) == (0, 1)
    finally:
        prebuilder.pool.shutdown()
