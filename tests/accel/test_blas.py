"""PyTensor's C code linked to SciPy's OpenBLAS (ntm.accel.blas): the forwarding library, the
products compiled against it, and that it is linked only where asked and left alone
elsewhere."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import ntm.accel
from ntm.accel import blas

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
def test_the_flags_link_the_forwarding_library_built_once():
    flags = blas.scipy_openblas_ldflags()
    assert flags is not None and "-lntm_blas" in flags
    (directory,) = [part[2:] for part in flags.split() if part.startswith("-L")]
    assert os.path.isfile(os.path.join(directory, "libntm_blas.so"))
    assert directory.startswith(str(pytensor.config.compiledir))
    assert blas.scipy_openblas_ldflags() == flags  # once per compile directory


@requires_openblas
def test_linked_sets_the_flags_only_while_it_lasts():
    flags = blas.scipy_openblas_ldflags()
    with pytensor.config.change_flags(blas__ldflags=""):
        with blas.linked() as in_force:
            assert in_force == flags == pytensor.config.blas__ldflags
        assert pytensor.config.blas__ldflags == ""
        with ntm.accel.accelerated("CVM"):  # the switch links it for the C backend ...
            assert pytensor.config.blas__ldflags == flags
        assert pytensor.config.blas__ldflags == ""
        with ntm.accel.accelerated("NUMBA"):  # ... not for Numba, which has its own
            assert pytensor.config.blas__ldflags == ""


def test_a_blas_of_pytensors_own_is_left_alone():
    with pytensor.config.change_flags(blas__ldflags="-lmyblas"):
        with blas.linked() as in_force:
            assert in_force == "-lmyblas" == pytensor.config.blas__ldflags
        with ntm.accel.accelerated("CVM"):
            assert pytensor.config.blas__ldflags == "-lmyblas"


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
    with blas.linked() as flags:
        assert flags  # SciPy's OpenBLAS, or the one PyTensor found
        function = pytensor.function([a, b, c, x, y], outputs, mode="CVM")
    ops = {type(node.op).__name__ for node in function.maker.fgraph.toposort()}
    assert {"Gemm", "Dot22", "CGemv"} <= ops, ops
    if pytensor.__version__.startswith("3.0."):  # later, the outer product is elementwise
        assert "CGer" in ops, ops
    a_, b_, c_, x_, y_ = (rng.randn(*shape).astype(dtype)
                          for shape in ((3, 4), (4, 5), (3, 5), (4,), (5,)))
    expected = [np.exp(c_) + a_ @ b_, (2 * a_) @ b_, a_ @ x_ + 2 * y_[:3],
                c_ + np.outer(y_[:3], y_)]
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for result, wanted in zip(function(a_, b_, c_, x_, y_), expected):
        np.testing.assert_allclose(result, wanted, rtol=tolerance, atol=tolerance)


def _run(code, **environment):
    """``code``'s output in a fresh Python, PYTENSOR_FLAGS as given."""
    env = {key: value for key, value in os.environ.items() if key != "PYTENSOR_FLAGS"}
    env.update(environment)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=True).stdout.strip()


@requires_openblas
def test_importing_the_library_links_nothing():
    code = ("import pytensor; before = pytensor.config.blas__ldflags; "
            "import ntm, ntm.accel, ntm.lasagne; "
            "print(repr(before), repr(pytensor.config.blas__ldflags))")
    before, after = _run(code).split()
    assert after == before and "ntm_blas" not in after
    assert _run(code, PYTENSOR_FLAGS="blas__ldflags=-lmyblas") == "'-lmyblas' '-lmyblas'"


@requires_openblas
@pytest.mark.slow
def test_ntm_gradients_bit_for_bit_as_without_it():
    """The small NTM's output and every parameter's gradient (float32, accelerated C backend,
    batch 4) are the same bits whether PyTensor's products call OpenBLAS through the
    forwarding library or fall back to NumPy (``blas__ldflags=""``)."""
    from ntm.lasagne import layers
    from tests.small_ntm import binary_sequences, small_ntm

    linked_flags = blas.scipy_openblas_ldflags()
    with pytensor.config.change_flags(floatX="float32"):
        l_input, l_ntm = small_ntm()
        params = layers.get_all_params(l_ntm, trainable=True)
        results = {}
        with ntm.accel.accelerated("CVM") as mode:
            output = layers.get_output(l_ntm)
            outputs = [output] + pytensor.grad((output ** 2).sum(), params)
            for ldflags in (linked_flags, ""):
                with pytensor.config.change_flags(blas__ldflags=ldflags):
                    function = pytensor.function([l_input.input_var], outputs, mode=mode)
                names = {type(node.op).__name__ for node in function.maker.fgraph.toposort()}
                assert "Scan" in names
                results[ldflags] = function(binary_sequences((4, 7, 3)))
    assert len(results[linked_flags]) == len(results[""]) == 1 + len(params)
    for linked, fallback in zip(results[linked_flags], results[""]):
        assert linked.dtype == np.float32
        np.testing.assert_array_equal(linked, fallback)
