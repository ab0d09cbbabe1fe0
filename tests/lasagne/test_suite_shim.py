"""benchmarks/lasagne_suite.py: Lasagne-style tests run against ntm.lasagne through its import
shim, and its counts; it runs in a subprocess, since it binds ``lasagne`` and ``theano``."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LASAGNE_STYLE_TESTS = '''
import numpy as np
import pytest
import theano
import theano.tensor as T
import lasagne
from mock import Mock


def test_lasagne_is_ntm_lasagne():
    from lasagne.layers.dense import DenseLayer
    assert DenseLayer.__module__ == "ntm.lasagne.layers.dense"
    assert lasagne.layers.DenseLayer is DenseLayer


def test_theano_is_pytensor():
    x = T.matrix()
    assert theano.function([x], x * 2)(np.ones((1, 1)))[0, 0] == 2
    assert theano.gof.graph.is_same_graph(x.sum(), x.sum())
    assert isinstance(theano.Variable("a type"), theano.tensor.Variable)


def test_list_of_slices_is_rewritten():
    output = np.zeros((3, 4))
    slices = [slice(None), slice(1, 2)]
    output = output[slices]
    assert output.shape == (3, 1)


def test_gpu_modules_are_absent():
    from theano.sandbox import cuda
    assert not cuda.cuda_enabled and Mock() is not None
    with pytest.raises(ImportError):
        import lasagne.layers.dnn  # noqa: F401


def test_that_fails():
    assert lasagne.nonlinearities.rectify(np.array([-1.0]))[0] == 1.0


@pytest.mark.skip(reason="skipped on purpose")
def test_skipped():
    pass
'''


def run_shim(*args):
    return subprocess.run([sys.executable, "-m", "benchmarks.lasagne_suite", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_shim_runs_lasagne_style_tests_and_counts(tmp_path):
    (tmp_path / "test_style.py").write_text(LASAGNE_STYLE_TESTS)
    result = run_shim(str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "rewrote test_style.py: 1 x list of slices used as an index" in result.stdout
    assert ("4 passed, 1 failed, 0 errors, 1 skipped; 80.0% of the 5 tests that ran passed"
            in result.stdout), result.stdout
    # the test files themselves are left as they were
    assert "output[slices]" in (tmp_path / "test_style.py").read_text()
    # the aliases live in the shim's process only
    assert "theano" not in sys.modules and "lasagne" not in sys.modules


def test_shim_rejects_a_path_without_tests(tmp_path):
    result = run_shim(str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "is not a directory" in result.stderr and "Traceback" not in result.stderr
    result = run_shim(str(tmp_path))
    assert result.returncode == 2 and "no test_*.py files" in result.stderr
