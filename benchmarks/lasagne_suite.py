"""Run Lasagne's own test suite against ``ntm.lasagne``.

Lasagne's tests import ``lasagne`` and ``theano``.  This tool runs them
unchanged, in one pytest process, with

- ``lasagne`` (and every ``lasagne.*`` module) bound to ``ntm.lasagne``;
- ``theano`` bound to ``pytensor`` and ``theano.tensor`` to ``pytensor.tensor``,
  plus the few Theano-only names the tests touch: ``theano.Variable`` (a
  :class:`pytensor.graph.basic.Variable` whose ``owner`` defaults to ``None``),
  ``theano.tensor.Variable``, ``theano.gof.graph.is_same_graph``,
  ``theano.scan_module.scan_utils.equal_computations`` and
  ``theano.sandbox.cuda`` (no CUDA: the GPU-only tests skip as on CPU Lasagne);
- ``mock`` bound to :mod:`unittest.mock` when the ``mock`` package is absent.

The test files are copied to a temporary directory first, and one mechanical
rewrite is applied to the copy: NumPy (1.23 and later) no longer indexes an
array with a *list* of slices, which Lasagne's reference implementations of
convolution do (``output[slices]``); the copy indexes with the tuple instead.
The tool prints every rewrite it made.

Usage::

    python -m benchmarks.lasagne_suite PATH/TO/lasagne/tests [--mode MODE]
        [--list-failures] [-k EXPR] [--runslow]

It prints, per test file and in total, how many tests passed, failed, raised
an error (in setup or collection) or were skipped, and the share of the tests
that ran (passed, failed or errored) that passed.
"""
import argparse
import collections
import importlib
import os
import pkgutil
import re
import shutil
import sys
import tempfile
import types

__all__ = ["install_aliases", "copy_with_rewrites", "main"]

# NumPy >= 1.23 rejects a list of slices as an index; Lasagne's tests build
# one in their NumPy reference code.  (pattern, replacement, what it fixes)
_REWRITES = [
    (re.compile(r"output\[slices\]"), "output[tuple(slices)]",
     "list of slices used as an index"),
    (re.compile(r"output\[\[slice\(None, None, factor\) for factor in factors\]\]"),
     "output[tuple(slice(None, None, factor) for factor in factors)]",
     "list of slices used as an index"),
]


def _module(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


class _Proxy(types.ModuleType):
    """A module that answers with its own attributes first, then ``target``'s."""

    def __init__(self, name, target, **extra):
        super().__init__(name)
        self.__dict__["_target"] = target
        self.__dict__.update(extra)

    def __getattr__(self, attr):
        return getattr(self.__dict__["_target"], attr)


def install_aliases():
    """Bind ``lasagne``, ``theano`` (and ``mock``) in ``sys.modules``."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.basic import Variable, equal_computations

    import ntm.lasagne

    # every module of ntm.lasagne, under Lasagne's name
    sys.modules["lasagne"] = ntm.lasagne
    for info in pkgutil.walk_packages(ntm.lasagne.__path__, "ntm.lasagne."):
        module = importlib.import_module(info.name)
        sys.modules["lasagne" + info.name[len("ntm.lasagne"):]] = module

    class TheanoVariable(Variable):
        """Theano's ``Variable(type, owner=None, index=None, name=None)``."""

        def __init__(self, type, owner=None, index=None, name=None):
            super().__init__(type, owner, index, name)

    def is_same_graph(var1, var2, givens=None):
        """Theano's ``is_same_graph`` for graphs without ``givens``."""
        if givens:
            raise NotImplementedError("is_same_graph: givens are not supported")
        return equal_computations([var1], [var2])

    tensor = _Proxy("theano.tensor", pt, Variable=Variable)
    cuda = _module("theano.sandbox.cuda", cuda_enabled=False,
                   dnn=_module("theano.sandbox.cuda.dnn",
                               dnn_available=lambda: False))
    sandbox = _module("theano.sandbox", cuda=cuda)
    graph = _module("theano.gof.graph", is_same_graph=is_same_graph)
    gof = _module("theano.gof", graph=graph)
    scan_utils = _module("theano.scan_module.scan_utils",
                         equal_computations=equal_computations)
    scan_module = _module("theano.scan_module", scan_utils=scan_utils)
    theano = _Proxy("theano", pytensor, tensor=tensor, Variable=TheanoVariable,
                    sandbox=sandbox, gof=gof, scan_module=scan_module)
    for module in (theano, tensor, sandbox, cuda, cuda.dnn, gof, graph,
                   scan_module, scan_utils):
        sys.modules[module.__name__] = module

    try:
        import mock  # noqa: F401
    except ImportError:
        import unittest.mock
        sys.modules["mock"] = unittest.mock


def copy_with_rewrites(source, destination):
    """Copy the test files and apply ``_REWRITES``; return what was changed."""
    shutil.copytree(source, destination,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    changes = []
    for folder, _, files in os.walk(destination):
        for filename in sorted(files):
            if not filename.endswith(".py"):
                continue
            path = os.path.join(folder, filename)
            with open(path) as handle:
                text = handle.read()
            for pattern, replacement, reason in _REWRITES:
                text, count = pattern.subn(replacement, text)
                if count:
                    changes.append((os.path.relpath(path, destination),
                                    count, reason))
            with open(path, "w") as handle:
                handle.write(text)
    return changes


class _Tally:
    """pytest plugin counting outcomes per test file."""

    def __init__(self):
        self.counts = collections.defaultdict(collections.Counter)
        self.failures = []

    def pytest_runtest_logreport(self, report):
        filename = report.nodeid.split("::")[0]
        if report.when == "call":
            outcome = report.outcome  # passed, failed or skipped
        elif report.failed:
            outcome = "errors"  # in setup or teardown
        elif report.skipped and report.when == "setup":
            outcome = "skipped"
        else:
            return
        self.counts[filename][outcome] += 1
        if outcome in ("failed", "errors"):
            message = getattr(report.longrepr, "reprcrash", None)
            message = message.message if message else str(report.longrepr)
            self.failures.append((report.nodeid, outcome,
                                  message.strip().splitlines()[0][:160]
                                  if message.strip() else ""))

    def pytest_collectreport(self, report):
        if report.failed:
            self.counts[report.nodeid or "(collection)"]["errors"] += 1
            self.failures.append((report.nodeid, "collection error",
                                  str(report.longrepr).strip().splitlines()[-1][:160]))


def _print_summary(tally, list_failures):
    keys = ("passed", "failed", "errors", "skipped")
    total = collections.Counter()
    print("\n%-42s %7s %7s %7s %7s" % (("file",) + keys))
    for filename in sorted(tally.counts):
        counts = tally.counts[filename]
        total.update(counts)
        print("%-42s %7d %7d %7d %7d" % ((filename,) + tuple(counts[k] for k in keys)))
    print("%-42s %7d %7d %7d %7d" % (("total",) + tuple(total[k] for k in keys)))
    ran = total["passed"] + total["failed"] + total["errors"]
    share = 100.0 * total["passed"] / ran if ran else 0.0
    print("\n%d passed, %d failed, %d errors, %d skipped; %.1f%% of the %d tests "
          "that ran passed" % (total["passed"], total["failed"], total["errors"],
                               total["skipped"], share, ran))
    if list_failures and tally.failures:
        print("\nnot passed:")
        for nodeid, outcome, message in tally.failures:
            print("  %s [%s] %s" % (nodeid, outcome, message))
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lasagne_suite",
        description="Run Lasagne's test suite against ntm.lasagne.")
    parser.add_argument("path", help="Lasagne's lasagne/tests directory")
    parser.add_argument("--mode", default="FAST_COMPILE",
                        help="PyTensor mode for the compiled functions "
                             "(default: FAST_COMPILE)")
    parser.add_argument("--list-failures", action="store_true",
                        help="print every test that did not pass, with its message")
    parser.add_argument("-k", dest="keyword", default=None,
                        help="only run tests matching this pytest expression")
    parser.add_argument("--runslow", action="store_true",
                        help="also run the tests Lasagne marks slow")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.path):
        parser.error("path: %r is not a directory (expected Lasagne's "
                     "lasagne/tests)" % args.path)
    if not any(name.startswith("test_") for name in os.listdir(args.path)):
        parser.error("path: %r holds no test_*.py files" % args.path)

    import pytest
    import pytensor
    pytensor.config.mode = args.mode
    install_aliases()

    with tempfile.TemporaryDirectory(prefix="lasagne-suite-") as workdir:
        tests = os.path.join(workdir, "tests")
        changes = copy_with_rewrites(args.path, tests)
        for path, count, reason in changes:
            print("rewrote %s: %d x %s" % (path, count, reason))
        with open(os.path.join(workdir, "pytest.ini"), "w") as handle:
            handle.write("[pytest]\n")
        pytest_args = [tests, "-q", "-p", "no:cacheprovider",
                       "--rootdir", workdir, "-c",
                       os.path.join(workdir, "pytest.ini")]
        if args.keyword:
            pytest_args += ["-k", args.keyword]
        if args.runslow:
            pytest_args.append("--runslow")
        tally = _Tally()
        pytest.main(pytest_args, plugins=[tally])
    _print_summary(tally, args.list_failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
