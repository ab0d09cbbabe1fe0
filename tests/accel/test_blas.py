"""PyTensor's C code linked to SciPy's OpenBLAS (ntm.blas): the forwarding library, the
products compiled against it, and when it is left alone."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from ntm import blas

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

requires_openblas = pytest.mark.skipif(
    blas.scipy_openblas_library() is None or not pytensor.config.cxx,
    reason="needs SciPy's bundled OpenBLAS and a C++ compiler")


def test_fortran_names_are_pytensors_declarations():
    names = blas.fortran_blas_names()
    for name in ("sgemm_", "dgemm_", "sgemv_", "dgemv_", "sger_", "dger_", "sdot_", "ddot_"):
        assert name in names
    assert all(name.endswith("_") and name[0] in "sdcz" for name in names)


@requires_openblas
def test_forwarding_library_computes_fortran_blas(tmp_path):
    library = blas.scipy_openblas_library()
    forwarded = blas.build_forwarding_library(library, ["ddot_", "dgemm_", "not_a_blas_"],
                                              str(tmp_path))
    assert forwarded == ["ddot_", "dgemm_"]  # names the library does not export are left out
    assert os.listdir(tmp_path) == ["libntm_blas.so"]  # the scratch directory is gone
    lib = ctypes.CDLL(str(tmp_path / "libntm_blas.so"))
    rng = np.random.RandomState(0)
    x, y = rng.randn(7), rng.randn(7)
    c_int, c_double = ctypes.c_int, ctypes.c_double
    double_p = ctypes.POINTER(c_double)
    lib.ddot_.restype = c_double
    n, one = c_int(7), c_int(1)
    dot = lib.ddot_(ctypes.byref(n), x.ctypes.data_as(double_p), ctypes.byref(one),
                    y.ctypes.data_as(double_p), ctypes.byref(one))
    np.testing.assert_allclose(dot, np.dot(x, y), rtol=1e-13)
    # C <- alpha A B + beta C, column-major (Fortran) arrays
    a, b, c = (np.asfortranarray(rng.randn(*shape)) for shape in ((3, 4), (4, 5), (3, 5)))
    expected = 0.5 * a @ b + 2.0 * c
    m, k, cols = c_int(3), c_int(4), c_int(5)
    alpha, beta = c_double(0.5), c_double(2.0)
    no = ctypes.c_char(b"N")
    lib.dgemm_(ctypes.byref(no), ctypes.byref(no), ctypes.byref(m), ctypes.byref(cols),
               ctypes.byref(k), ctypes.byref(alpha), a.ctypes.data_as(double_p), ctypes.byref(m),
               b.ctypes.data_as(double_p), ctypes.byref(k), ctypes.byref(beta),
               c.ctypes.data_as(double_p), ctypes.byref(m), ctypes.c_size_t(1),
               ctypes.c_size_t(1))
    np.testing.assert_allclose(c, expected, rtol=1e-13)


@requires_openblas
def test_import_links_the_forwarding_library():
    if os.environ.get("NTM_BLAS", "1") == "0" or blas._user_set_ldflags():
        pytest.skip("the environment turns the linking off")
    assert blas.LINKED is not None
    assert pytensor.config.blas__ldflags == blas.LINKED
    assert "-lntm_blas" in blas.LINKED
    assert blas.link_scipy_openblas() == blas.LINKED  # once per process


@requires_openblas
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_compiled_against_it_match_numpy(dtype):
    """Gemm (C + A B), Dot22, Gemv (y + A x) and Ger (C + x y^T) in the C backend, against
    NumPy."""
    rng = np.random.RandomState(1)
    a, b, c = (pt.matrix(name, dtype=dtype) for name in "abc")
    x, y = pt.vector("x", dtype=dtype), pt.vector("y", dtype=dtype)
    # exp(c): an intermediate result the product may add to in place, as in the NTM's step
    outputs = [pt.exp(c) + pt.dot(a, b), pt.dot(2 * a, b), pt.dot(a, x) + 2 * y[:3],
               c + pt.outer(y[:3], y)]
    function = pytensor.function([a, b, c, x, y], outputs, mode="CVM")
    ops = {type(node.op).__name__ for node in function.maker.fgraph.toposort()}
    assert {"Gemm", "Dot22", "CGemv", "CGer"} <= ops, ops
    a_, b_, c_, x_, y_ = (rng.randn(*shape).astype(dtype)
                          for shape in ((3, 4), (4, 5), (3, 5), (4,), (5,)))
    expected = [np.exp(c_) + a_ @ b_, (2 * a_) @ b_, a_ @ x_ + 2 * y_[:3],
                c_ + np.outer(y_[:3], y_)]
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for result, wanted in zip(function(a_, b_, c_, x_, y_), expected):
        np.testing.assert_allclose(result, wanted, rtol=tolerance, atol=tolerance)


def _run(code, **environment):
    """``code``'s output in a fresh Python, NTM_BLAS and PYTENSOR_FLAGS as given."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("NTM_BLAS", "PYTENSOR_FLAGS")}
    env.update(environment)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=True).stdout.strip()


@requires_openblas
def test_left_alone_when_the_user_chose():
    code = "import ntm, pytensor; print(repr(ntm.blas.LINKED), repr(pytensor.config.blas__ldflags))"
    linked = _run(code)
    assert linked.startswith("'-L") and "-lntm_blas" in linked
    assert _run(code, NTM_BLAS="0").startswith("None ")
    assert _run(code, PYTENSOR_FLAGS="blas__ldflags=-lmyblas") == "None '-lmyblas'"


@requires_openblas
@pytest.mark.slow
def test_ntm_gradients_bit_for_bit_as_without_it():
    """The small NTM's output and every parameter's gradient (float32, C backend, batch 4)
    are the same bits whether PyTensor's products call OpenBLAS through the forwarding
    library or fall back to NumPy (``blas__ldflags=""``)."""
    if blas.LINKED is None:
        pytest.skip("the environment turns the linking off")
    from ntm.lasagne import layers
    from tests.small_ntm import binary_sequences, small_ntm

    with pytensor.config.change_flags(floatX="float32"):
        l_input, l_ntm = small_ntm()
        output = layers.get_output(l_ntm)
        params = layers.get_all_params(l_ntm, trainable=True)
        cost = (output ** 2).sum()
        outputs = [output] + pytensor.grad(cost, params)
        results = {}
        for ldflags in (blas.LINKED, ""):
            with pytensor.config.change_flags(blas__ldflags=ldflags):
                function = pytensor.function([l_input.input_var], outputs, mode="CVM")
                names = {type(node.op).__name__ for node in function.maker.fgraph.toposort()}
                assert "Scan" in names
                results[ldflags] = function(binary_sequences((4, 7, 3)))
    for linked, fallback in zip(results[blas.LINKED], results[""]):
        assert linked.dtype == np.float32
        np.testing.assert_array_equal(linked, fallback)
