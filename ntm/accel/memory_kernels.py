r"""The memory-sized computations of an NTM step as single operations, with their gradients.

At every time step an NTM touches its whole :math:`N \times M` memory a few times: the write
(erase and add), the read and the cosine similarity of every key with every row. Written as
ordinary tensor expressions, each is several elementwise operations, reductions and
broadcasts, and their gradients many more, each one pass over a ``(batch, N, M)`` array. With
a batch of 16 those passes, not the controller, are most of a training step.

Here each is one ``Op`` that makes one pass over the memory, and so is its gradient:

:class:`CosineSimilarity`
    :math:`K[b, h, n] = \dfrac{k_{bh} \cdot M_{bn}}{\lVert k_{bh} \rVert \lVert M_{bn} \rVert
    + \epsilon}`, gradient :class:`CosineSimilarityGrad`:

    .. math::
        D = \lVert k \rVert \lVert M_n \rVert + \epsilon, \quad P = k \cdot M_n, \quad
        a = G / D, \quad c = G P / D^2 \\
        \partial k_h = \sum_n a_{hn} M_n - \Big(\sum_n c_{hn} \lVert M_n \rVert\Big)
        \frac{k_h}{\lVert k_h \rVert}, \qquad
        \partial M_n = \sum_h a_{hn} k_h - \Big(\sum_h c_{hn} \lVert k_h \rVert\Big)
        \frac{M_n}{\lVert M_n \rVert}

    (a zero vector's direction :math:`x / \lVert x \rVert` is taken as 0).

:class:`MemoryWrite`
    :math:`M'[n, m] = M[n, m] \prod_h (1 - w_h[n] e_h[m]) + \sum_h w_h[n] a_h[m]`, gradient
    :class:`MemoryWriteGrad`, with :math:`\pi_h[n, m] = \prod_{h' \neq h}(1 - w_{h'}[n]
    e_{h'}[m])` and :math:`q_h = G \odot M \odot \pi_h`:

    .. math::
        \partial M = G \odot \prod_h (1 - w_h e_h^\top), \quad
        \partial w_h[n] = \sum_m \big(G[n, m] a_h[m] - q_h[n, m] e_h[m]\big), \\
        \partial e_h[m] = -\sum_n q_h[n, m] w_h[n], \quad
        \partial a_h[m] = \sum_n G[n, m] w_h[n].

:class:`MemoryRead`
    :math:`r_h = \sum_n w_h[n] M_n`, gradient :class:`MemoryReadGrad`:
    :math:`\partial w_h[n] = G_h \cdot M_n`, :math:`\partial M_n = \sum_h w_h[n] G_h`.

Every op has three implementations computing the same loops: C code for PyTensor's C backend
(``CVM``, ``C``), a Numba function for ``NUMBA``, and NumPy (``perform``) for the Python linker.
Tests check each against an independent NumPy computation and finite differences.

The C code is compiled for the memory's row width where the graph knows it, and for one or two
keys. Rows are short (tens of values), so a sum along each row, reduced horizontally, costs
more than its arithmetic: where the compiler targets AVX2, the single-precision kernels keep
each row's sums in vectors and reduce eight rows' vectors together (the similarities' dot
products and squares, the read and write weightings' gradients), and keep the keys, the erase
and add vectors and their gradients in vector registers for a whole pass. Elsewhere, and in
double precision, the same loops are left to the compiler.

The heads use these ops inside :func:`ntm.accel.accelerated` (through
:class:`ntm.accel.fused.FusedImplementation`); elsewhere they build the same equations from
ordinary tensor operations (:mod:`ntm.implementation`), which any backend, JAX included, can
compile.
"""
import hashlib
import os

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.link.c.op import COp
from pytensor.scalar import upcast

from . import kernel_threads

__all__ = ["CosineSimilarity", "CosineSimilarityGrad", "MemoryWrite", "MemoryWriteGrad",
           "MemoryRead", "MemoryReadGrad", "SumInOrder"]


def source_version(*paths):
    """An int that changes with the files at ``paths``: the version under which PyTensor caches
    the C modules and Numba functions of the kernels defined there (so that an edited kernel is
    never taken from a cache)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as source:
            digest.update(source.read())
    return int(digest.hexdigest()[:12], 16)


SOURCE_VERSION = source_version(__file__)

#: version of the kernels' C code, which both modules' ops share
C_VERSION = source_version(__file__, *(os.path.join(os.path.dirname(__file__), name)
                                       for name in ("addressing_kernels.py", "kernel_threads.py")))


def _as_float_tensors(who, names, values, ndims):
    """The inputs as tensors of one float dtype, or a TypeError/ValueError naming the argument."""
    tensors = [pt.as_tensor_variable(v) for v in values]
    for name, tensor, ndim in zip(names, tensors, ndims):
        if tensor.type.ndim != ndim:
            raise ValueError(f"{who}: {name} must have {ndim} dimensions, got {tensor.type.ndim}")
    dtype = upcast(*[t.dtype for t in tensors])
    if not dtype.startswith("float"):
        dtype = pytensor.config.floatX
    if dtype not in ("float32", "float64"):
        raise TypeError(f"{who}: expected float32 or float64 inputs, got {dtype}")
    return [pt.cast(t, dtype) for t in tensors], dtype


def _batched_node(op, names, values, x_axis, y_axis):
    """The node of ``op`` on two 3-D inputs ``x`` and ``y`` (batch first) whose output is
    ``(batch, x.shape[x_axis], y.shape[y_axis])``."""
    (x, y), dtype = _as_float_tensors(type(op).__name__, names, values, (3, 3))
    batch = x.type.shape[0] if x.type.shape[0] is not None else y.type.shape[0]
    shape = (batch, x.type.shape[x_axis], y.type.shape[y_axis])
    return Apply(op, [x, y], [pt.tensor(dtype=dtype, shape=shape)])


# --------------------------------------------------------------------------------------------
# C helpers shared by the ops: contiguous copies of the inputs and checked output allocation.

_C_SUPPORT = r"""
/* A C-contiguous version of `x` (a new reference), or NULL with an exception set. */
static PyArrayObject* ntm_contiguous(PyArrayObject* x) {
    return (PyArrayObject*)PyArray_FROM_OF((PyObject*)x,
                                           NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
}

/* Make *out a C-contiguous array of shape dims and x's dtype (reused when it already is). */
static int ntm_prepare_output(PyArrayObject** out, int nd, npy_intp* dims, PyArrayObject* like) {
    int reuse = *out != NULL && PyArray_NDIM(*out) == nd && PyArray_IS_C_CONTIGUOUS(*out)
                && PyArray_TYPE(*out) == PyArray_TYPE(like);
    for (int i = 0; reuse && i < nd; ++i) reuse = PyArray_DIMS(*out)[i] == dims[i];
    if (reuse) return 0;
    Py_XDECREF(*out);
    *out = (PyArrayObject*)PyArray_EMPTY(nd, dims, PyArray_TYPE(like), 0);
    return *out == NULL ? -1 : 0;
}

/* Each kernel takes the memory's row width W as a template constant WC where the node's
   type knows it (0 otherwise): the loops over a row are then unrolled and vectorised whole.
   Kernels are kept out of the generated executor function: inlined there, they lose their
   registers to its many variables and are not vectorised. */
#define NTMK_NOINLINE __attribute__((noinline))

/* kernel<T, WC>(...) when the row width W (a variable where it is called) is WC, else
   kernel<T, 0>(...), the same code for any width. */
#define NTM_BY_WIDTH(WC, kernel, ...) do { \
        if ((WC) > 0 && W == (WC)) kernel<T, WC>(__VA_ARGS__); \
        else kernel<T, 0>(__VA_ARGS__); \
    } while (0)

/* Row primitives on restrict-qualified pointers, so that the compiler vectorises them. */
template <typename T>
static inline T ntm_dot(const T* __restrict__ x, const T* __restrict__ y, npy_intp n) {
    T sum = 0;
    for (npy_intp i = 0; i < n; ++i) sum += x[i] * y[i];
    return sum;
}

template <typename T>  /* y += alpha x */
static inline void ntm_axpy(T alpha, const T* __restrict__ x, T* __restrict__ y, npy_intp n) {
    for (npy_intp i = 0; i < n; ++i) y[i] += alpha * x[i];
}

/* (NTM_NO_ROWS_AT_ONCE: the loops left to the compiler, as on other processors.) */
#if defined(__AVX2__) && defined(__FMA__) && !defined(NTM_NO_ROWS_AT_ONCE)
#include <immintrin.h>
/* Single-precision rows eight at a time: each row's sum kept in its own vector over the row,
   then the eight vectors reduced together (three rounds of pairwise sums), instead of one
   horizontal reduction per row, which costs more than the row's arithmetic for rows of tens
   of values. */
#define NTM_ROWS_AT_ONCE 8

static inline __m256 ntm_sum8(const __m256* s) {
    const __m256 t0 = _mm256_hadd_ps(s[0], s[1]), t1 = _mm256_hadd_ps(s[2], s[3]);
    const __m256 t2 = _mm256_hadd_ps(s[4], s[5]), t3 = _mm256_hadd_ps(s[6], s[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                         _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* The mask of a row's last vector: its lanes below W % 8 set, or all of them when W is a
   multiple of 8. */
static inline __m256i ntm_tail_mask(npy_intp W) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(W % 8 ? (int)(W % 8) : 8), lanes);
}

/* Vector v of NV covering a row at p: the last one loaded under the tail mask (the lanes past
   the row read as 0, and nothing past it is touched). */
static inline __m256 ntm_load_part(const float* p, int v, int NV, __m256i tail) {
    return v + 1 < NV ? _mm256_loadu_ps(p + 8 * v) : _mm256_maskload_ps(p + 8 * v, tail);
}

/* The first `count` (1 to 8) lanes of x stored at out; not a masked store, which some
   processors (AMD's) run as microcode. */
static inline void ntm_store_lanes(float* __restrict__ out, __m256 x, int count) {
    if (count == 8) { _mm256_storeu_ps(out, x); return; }
    __m128 part = _mm256_castps256_ps128(x);
    if (count >= 4) {
        _mm_storeu_ps(out, part);
        out += 4, count -= 4;
        part = _mm256_extractf128_ps(x, 1);
    }
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, part);
    for (int i = 0; i < count; ++i) out[i] = lanes[i];
}

/* Vector v of NV covering a row of W values at p, stored (the last one only up to W). */
static inline void ntm_store_part(float* p, __m256 x, int v, int NV, npy_intp W) {
    ntm_store_lanes(p + 8 * v, x, v + 1 < NV ? 8 : (int)(W - 8 * v));
}

/* out[j] = x . rows[j] for the 8 rows at rows (row j at rows + j W), or with `squares`
   rows[j] . rows[j] (x unused). */
template <int WC>
static inline void ntm_dots8(const float* __restrict__ rows, const float* __restrict__ x,
                             bool squares, npy_intp W_, __m256i tail, float* __restrict__ out) {
    const npy_intp W = WC ? WC : W_;
    __m256 s[8];
    for (int j = 0; j < 8; ++j) {
        const float* r = rows + j * W;
        __m256 acc = _mm256_setzero_ps();
        npy_intp m = 0;
        for (; m + 8 <= W; m += 8) {
            const __m256 v = _mm256_loadu_ps(r + m);
            acc = _mm256_fmadd_ps(v, squares ? v : _mm256_loadu_ps(x + m), acc);
        }
        if (m < W) {
            const __m256 v = _mm256_maskload_ps(r + m, tail);
            acc = _mm256_fmadd_ps(v, squares ? v : _mm256_maskload_ps(x + m, tail), acc);
        }
        s[j] = acc;
    }
    _mm256_storeu_ps(out, ntm_sum8(s));
}

/* The second pass of the cosine similarity's gradient over single-precision rows of a width
   WC known when compiling, for HC keys: dM_n = sum_h a_hn k_h - s_n M_n and dk_h += a_hn M_n,
   with the keys and their gradients in vector registers for the whole pass. */
template <int WC, int HC>
static inline void ntm_cosine_grad_rows8(const float* __restrict__ kb,
                                         const float* __restrict__ Mb,
                                         const float* __restrict__ a,
                                         const float* __restrict__ s, float* __restrict__ dMb,
                                         float* __restrict__ dk, npy_intp N) {
    constexpr int W = WC > 0 ? WC : 1, H = HC > 0 ? HC : 1, NV = (W + 7) / 8;
    const __m256i tail = ntm_tail_mask(W);
    __m256 keys[H][NV], grads[H][NV];
    for (int h = 0; h < H; ++h)
        for (int v = 0; v < NV; ++v) {
            keys[h][v] = ntm_load_part(kb + h * W, v, NV, tail);
            grads[h][v] = _mm256_setzero_ps();
        }
    for (npy_intp n = 0; n < N; ++n) {
        const float* row = Mb + n * W;
        float* drow = dMb + n * W;
        const __m256 minus_s = _mm256_set1_ps(-s[n]);
        __m256 an[H];
        for (int h = 0; h < H; ++h) an[h] = _mm256_set1_ps(a[h * N + n]);
        for (int v = 0; v < NV; ++v) {
            const __m256 r = ntm_load_part(row, v, NV, tail);
            __m256 d = _mm256_mul_ps(minus_s, r);
            for (int h = 0; h < H; ++h) {
                d = _mm256_fmadd_ps(an[h], keys[h][v], d);
                grads[h][v] = _mm256_fmadd_ps(an[h], r, grads[h][v]);
            }
            ntm_store_part(drow, d, v, NV, W);
        }
    }
    for (int h = 0; h < H; ++h)
        for (int v = 0; v < NV; ++v)
            ntm_store_part(dk + h * W, grads[h][v], v, NV, W);
}

/* ntm_write_grad_one over single-precision rows of a width WC known when compiling: each row's
   weighting gradient summed in a vector, eight rows' vectors reduced together; the erase and
   add gradients in vector registers for the whole pass. */
template <int WC>
static inline void ntm_write_grad_rows8(const float* __restrict__ Mb,
                                        const float* __restrict__ w, const float* __restrict__ e,
                                        const float* __restrict__ a,
                                        const float* __restrict__ Gb, float* __restrict__ dMb,
                                        float* __restrict__ dw, float* __restrict__ de,
                                        float* __restrict__ da, npy_intp N) {
    constexpr int W = WC > 0 ? WC : 1, NV = (W + 7) / 8;
    const __m256i tail = ntm_tail_mask(W);
    const __m256 one = _mm256_set1_ps(1.0f);
    /* the erase and add gradients in two sets, of the even and the odd rows, so that each
       addition waits for the one two rows before */
    __m256 ev[NV], av[NV], dev[2][NV], dav[2][NV];
    for (int v = 0; v < NV; ++v) {
        ev[v] = ntm_load_part(e, v, NV, tail);
        av[v] = ntm_load_part(a, v, NV, tail);
        dev[0][v] = dav[0][v] = dev[1][v] = dav[1][v] = _mm256_setzero_ps();
    }
    for (npy_intp n = 0; n < N; n += 8) {
        const int count = N - n < 8 ? (int)(N - n) : 8;
        __m256 sums[8];
        for (int j = 0; j < 8; ++j) {
            sums[j] = _mm256_setzero_ps();
            if (j >= count) continue;
            const float* row = Mb + (n + j) * W;
            const float* g = Gb + (n + j) * W;
            float* drow = dMb + (n + j) * W;
            const __m256 wn = _mm256_set1_ps(w[n + j]);
            for (int v = 0; v < NV; ++v) {
                const __m256 r = ntm_load_part(row, v, NV, tail);
                const __m256 gv = ntm_load_part(g, v, NV, tail);
                const __m256 q = _mm256_mul_ps(gv, r);
                /* dM = g (1 - w e), dw += g a - q e, de -= q w, da += g w */
                ntm_store_part(drow, _mm256_mul_ps(gv, _mm256_fnmadd_ps(wn, ev[v], one)), v, NV,
                               W);
                sums[j] = _mm256_fnmadd_ps(q, ev[v], _mm256_fmadd_ps(gv, av[v], sums[j]));
                dev[j % 2][v] = _mm256_fnmadd_ps(q, wn, dev[j % 2][v]);
                dav[j % 2][v] = _mm256_fmadd_ps(gv, wn, dav[j % 2][v]);
            }
        }
        ntm_store_lanes(dw + n, ntm_sum8(sums), count);
    }
    for (int v = 0; v < NV; ++v) {
        ntm_store_part(de, _mm256_add_ps(dev[0][v], dev[1][v]), v, NV, W);
        ntm_store_part(da, _mm256_add_ps(dav[0][v], dav[1][v]), v, NV, W);
    }
}
#endif

/* The keys of a cosine similarity are compiled for their number HC (a template constant) up to
   two, as many as one kind of head, or the similarities of two kinds merged into one call
   (ntm.accel.rewrites.merge_similarities), usually have; HC = 0 is the same code for any
   number H. A row's sums and the keys' gradients then stay in registers over the row. */
#define NTM_BY_KEYS(kernel, ...) do { \
        if (H == 1) kernel<T, WC, 1>(__VA_ARGS__); \
        else if (H == 2) kernel<T, WC, 2>(__VA_ARGS__); \
        else kernel<T, WC, 0>(__VA_ARGS__); \
    } while (0)

/* A row's square and its dot products with the H keys at kb, in one pass over the row. */
template <typename T, int WC, int HC>
static inline T ntm_row_sums(const T* __restrict__ kb, const T* __restrict__ row, npy_intp H,
                             npy_intp W, T* __restrict__ dots, npy_intp stride) {
    if (HC == 0) {
        for (npy_intp h = 0; h < H; ++h) dots[h * stride] = ntm_dot(kb + h * W, row, W);
        return ntm_dot(row, row, W);
    }
    T square = 0, sums[HC > 0 ? HC : 1] = {};
    for (npy_intp m = 0; m < W; ++m) {
        square += row[m] * row[m];
        for (npy_intp h = 0; h < HC; ++h) sums[h] += kb[h * W + m] * row[m];
    }
    for (npy_intp h = 0; h < HC; ++h) dots[h * stride] = sums[h];
    return square;
}

/* Every row's square (squares[n]) and dot product with each of the H keys at kb
   (dots[h N + n]). */
template <typename T, int WC, int HC>
static inline void ntm_rows_sums(const T* __restrict__ kb, const T* __restrict__ Mb,
                                 npy_intp H, npy_intp N, npy_intp W, T* __restrict__ dots,
                                 T* __restrict__ squares) {
    npy_intp n = 0;
#ifdef NTM_ROWS_AT_ONCE
    if (sizeof(T) == sizeof(float)) {
        const float* k = reinterpret_cast<const float*>(kb);
        const float* rows = reinterpret_cast<const float*>(Mb);
        const __m256i tail = ntm_tail_mask(W);
        for (; n + NTM_ROWS_AT_ONCE <= N; n += NTM_ROWS_AT_ONCE) {
            ntm_dots8<WC>(rows + n * W, rows, true, W, tail,
                          reinterpret_cast<float*>(squares + n));
            for (npy_intp h = 0; h < H; ++h)
                ntm_dots8<WC>(rows + n * W, k + h * W, false, W, tail,
                              reinterpret_cast<float*>(dots + h * N + n));
        }
    }
#endif
    for (; n < N; ++n) squares[n] = ntm_row_sums<T, WC, HC>(kb, Mb + n * W, H, W, dots + n, N);
}

/* S[b, h, n] = K[b, h] . M[b, n] / (|K[b, h]| |M[b, n]| + eps): one pass over the rows for
   their sums, then the quotients, vectorised over the rows (scratch: N + H values). */
template <typename T, int WC, int HC>
static NTMK_NOINLINE void ntm_cosine_keys(const T* __restrict__ K, const T* __restrict__ M,
                                          T* __restrict__ S, npy_intp B, npy_intp H_,
                                          npy_intp N, npy_intp W_, T eps,
                                          T* __restrict__ scratch) {
    const npy_intp W = WC ? WC : W_;  /* constants where the node knows them */
    const npy_intp H = HC ? HC : H_;
    T* __restrict__ squares = scratch;
    T* __restrict__ knorm = scratch + N;
    for (npy_intp b = 0; b < B; ++b) {
        const T* __restrict__ kb = K + b * H * W;
        const T* __restrict__ Mb = M + b * N * W;
        T* __restrict__ Sb = S + b * H * N;
        for (npy_intp h = 0; h < H; ++h) knorm[h] = std::sqrt(ntm_dot(kb + h * W, kb + h * W, W));
        ntm_rows_sums<T, WC, HC>(kb, Mb, H, N, W, Sb, squares);
        for (npy_intp h = 0; h < H; ++h) {
            T* __restrict__ Sh = Sb + h * N;
            const T kn = knorm[h];
            for (npy_intp n = 0; n < N; ++n) Sh[n] = Sh[n] / (kn * std::sqrt(squares[n]) + eps);
        }
    }
}

template <typename T, int WC>
static void ntm_cosine(const T* K, const T* M, T* S, npy_intp B, npy_intp H, npy_intp N,
                       npy_intp W, T eps, T* scratch) {
    NTM_BY_KEYS(ntm_cosine_keys, K, M, S, B, H, N, W, eps, scratch);
}

/* Gradients of ntm_cosine given G = dL/dS (see the module docstring): one pass over the rows
   for their sums, the coefficients vectorised over the rows, then a second pass for the rows'
   and the keys' gradients (scratch: (H + 2) N + 2 H values). */
template <typename T, int WC, int HC>
static NTMK_NOINLINE void ntm_cosine_grad_keys(const T* __restrict__ K, const T* __restrict__ M,
                                               const T* __restrict__ G, T* __restrict__ dK,
                                               T* __restrict__ dM, npy_intp B, npy_intp H_,
                                               npy_intp N, npy_intp W_, T eps,
                                               T* __restrict__ scratch) {
    const npy_intp W = WC ? WC : W_;  /* constants where the node knows them */
    const npy_intp H = HC ? HC : H_;
    T* __restrict__ a = scratch;                   /* (H, N): dot products, then G / D */
    T* __restrict__ rnorm = scratch + H * N;       /* |M_n| */
    T* __restrict__ rcoef = scratch + (H + 1) * N; /* sum_h c_hn |k_h|, then over |M_n| */
    T* __restrict__ knorm = scratch + (H + 2) * N;
    T* __restrict__ kcoef = knorm + H;             /* sum_n c_hn |M_n| */
    /* the keys' gradients summed in local rows (kept in registers) when H and W are
       constants */
    T local[HC > 0 && WC > 0 ? HC * WC : 1];
    for (npy_intp b = 0; b < B; ++b) {
        const T* __restrict__ kb = K + b * H * W;
        const T* __restrict__ Mb = M + b * N * W;
        const T* __restrict__ Gb = G + b * H * N;
        T* __restrict__ dMb = dM + b * N * W;
        T* __restrict__ dk = HC > 0 && WC > 0 ? local : dK + b * H * W;
        for (npy_intp h = 0; h < H; ++h) knorm[h] = std::sqrt(ntm_dot(kb + h * W, kb + h * W, W));
        ntm_rows_sums<T, WC, HC>(kb, Mb, H, N, W, a, rnorm);
        for (npy_intp n = 0; n < N; ++n) rnorm[n] = std::sqrt(rnorm[n]);
        for (npy_intp h = 0; h < H; ++h) {  /* c = G P / D^2, a = G / D */
            const T* __restrict__ Gh = Gb + h * N;
            T* __restrict__ ah = a + h * N;
            const T kn = knorm[h];
            T coef = 0;
            for (npy_intp n = 0; n < N; ++n) {
                const T den = kn * rnorm[n] + eps;
                const T c = Gh[n] * ah[n] / (den * den);
                ah[n] = Gh[n] / den;
                coef += c * rnorm[n];
                rcoef[n] = h == 0 ? c * kn : rcoef[n] + c * kn;
            }
            kcoef[h] = coef;
        }
        for (npy_intp n = 0; n < N; ++n) rcoef[n] = rnorm[n] > 0 ? rcoef[n] / rnorm[n] : 0;
#ifdef NTM_ROWS_AT_ONCE
        if (sizeof(T) == sizeof(float) && HC > 0 && WC > 0 && WC <= 32) {
            ntm_cosine_grad_rows8<WC, HC>(
                reinterpret_cast<const float*>(kb), reinterpret_cast<const float*>(Mb),
                reinterpret_cast<const float*>(a), reinterpret_cast<const float*>(rcoef),
                reinterpret_cast<float*>(dMb), reinterpret_cast<float*>(dk), N);
        } else
#endif
        {
        for (npy_intp i = 0; i < H * W; ++i) dk[i] = 0;
        for (npy_intp n = 0; n < N; ++n) {
            const T* __restrict__ row = Mb + n * W;
            T* __restrict__ drow = dMb + n * W;
            const T sn = rcoef[n];
            for (npy_intp m = 0; m < W; ++m) {
                T sum = 0;
                for (npy_intp h = 0; h < H; ++h) {
                    sum += a[h * N + n] * kb[h * W + m];
                    dk[h * W + m] += a[h * N + n] * row[m];
                }
                drow[m] = sum - sn * row[m];
            }
        }
        }
        for (npy_intp h = 0; h < H; ++h)
            if (knorm[h] > 0) ntm_axpy(-kcoef[h] / knorm[h], kb + h * W, dk + h * W, W);
        if (HC > 0 && WC > 0)
            for (npy_intp i = 0; i < H * W; ++i) dK[b * H * W + i] = dk[i];
    }
}

template <typename T, int WC>
static void ntm_cosine_grad(const T* K, const T* M, const T* G, T* dK, T* dM, npy_intp B,
                            npy_intp H, npy_intp N, npy_intp W, T eps, T* scratch) {
    NTM_BY_KEYS(ntm_cosine_grad_keys, K, M, G, dK, dM, B, H, N, W, eps, scratch);
}

/* ntm_write for one write head */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_write_one(const T* __restrict__ M, const T* __restrict__ Wt,
                          const T* __restrict__ E, const T* __restrict__ A, T* __restrict__ O,
                          npy_intp B, npy_intp N, npy_intp W_) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
    for (npy_intp b = 0; b < B; ++b) {
        const T* __restrict__ e = E + b * W;
        const T* __restrict__ a = A + b * W;
        for (npy_intp n = 0; n < N; ++n) {
            const T w = Wt[b * N + n];
            const T* __restrict__ row = M + (b * N + n) * W;
            T* __restrict__ out = O + (b * N + n) * W;
            for (npy_intp m = 0; m < W; ++m) out[m] = row[m] * (1 - w * e[m]) + w * a[m];
        }
    }
}

/* O = M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_write(const T* M, const T* Wt, const T* E, const T* A,
                                 T* __restrict__ O,
                      npy_intp B, npy_intp H, npy_intp N, npy_intp W_) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
    if (H == 1) {
        ntm_write_one<T, WC>(M, Wt, E, A, O, B, N, W);
        return;
    }
    for (npy_intp b = 0; b < B; ++b) {
        for (npy_intp n = 0; n < N; ++n) {
            const T* __restrict__ row = M + (b * N + n) * W;
            T* __restrict__ out = O + (b * N + n) * W;
            for (npy_intp m = 0; m < W; ++m) out[m] = row[m];
            for (npy_intp h = 0; h < H; ++h) {  /* erase */
                const T w = Wt[(b * H + h) * N + n];
                const T* __restrict__ e = E + (b * H + h) * W;
                for (npy_intp m = 0; m < W; ++m) out[m] *= 1 - w * e[m];
            }
            for (npy_intp h = 0; h < H; ++h)  /* add */
                ntm_axpy(Wt[(b * H + h) * N + n], A + (b * H + h) * W, out, W);
        }
    }
}

/* ntm_write_grad for one write head: one loop over each row. */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_write_grad_one(const T* __restrict__ M, const T* __restrict__ Wt,
                               const T* __restrict__ E, const T* __restrict__ A,
                               const T* __restrict__ G, T* __restrict__ dM, T* __restrict__ dW,
                               T* __restrict__ dE, T* __restrict__ dA, npy_intp B, npy_intp N,
                               npy_intp W_) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
#ifdef NTM_ROWS_AT_ONCE
    if (sizeof(T) == sizeof(float) && WC > 0 && WC <= 32) {
        for (npy_intp b = 0; b < B; ++b)
            ntm_write_grad_rows8<WC>(
                reinterpret_cast<const float*>(M + b * N * W),
                reinterpret_cast<const float*>(Wt + b * N),
                reinterpret_cast<const float*>(E + b * W),
                reinterpret_cast<const float*>(A + b * W),
                reinterpret_cast<const float*>(G + b * N * W),
                reinterpret_cast<float*>(dM + b * N * W),
                reinterpret_cast<float*>(dW + b * N), reinterpret_cast<float*>(dE + b * W),
                reinterpret_cast<float*>(dA + b * W), N);
        return;
    }
#endif
    for (npy_intp b = 0; b < B; ++b) {
        const T* __restrict__ e = E + b * W;
        const T* __restrict__ a = A + b * W;
        /* the erase and add gradients summed in local rows (kept in registers) when W is a
           constant */
        T local_de[WC > 0 ? WC : 1], local_da[WC > 0 ? WC : 1];
        T* __restrict__ de = WC > 0 ? local_de : dE + b * W;
        T* __restrict__ da = WC > 0 ? local_da : dA + b * W;
        for (npy_intp m = 0; m < W; ++m) de[m] = da[m] = 0;
        for (npy_intp n = 0; n < N; ++n) {
            const T w = Wt[b * N + n];
            const T* __restrict__ row = M + (b * N + n) * W;
            const T* __restrict__ g = G + (b * N + n) * W;
            T* __restrict__ drow = dM + (b * N + n) * W;
            T dw = 0;
            for (npy_intp m = 0; m < W; ++m) {
                const T q = g[m] * row[m];
                drow[m] = g[m] * (1 - w * e[m]);
                dw += g[m] * a[m] - q * e[m];
                de[m] -= q * w;
                da[m] += g[m] * w;
            }
            dW[b * N + n] = dw;
        }
        if (WC > 0)
            for (npy_intp m = 0; m < W; ++m) { dE[b * W + m] = de[m]; dA[b * W + m] = da[m]; }
    }
}

/* Gradients of ntm_write given G = dL/dO (see the module docstring); q and keep are scratch
   rows of W values. */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_write_grad(const T* M, const T* Wt, const T* E, const T* A, const T* G,
                           T* __restrict__ dM, T* __restrict__ dW, T* __restrict__ dE,
                           T* __restrict__ dA, npy_intp B, npy_intp H, npy_intp N, npy_intp W_,
                           T* __restrict__ q, T* __restrict__ keep) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
    if (H == 1) {
        ntm_write_grad_one<T, WC>(M, Wt, E, A, G, dM, dW, dE, dA, B, N, W);
        return;
    }
    memset(dE, 0, sizeof(T) * B * H * W);
    memset(dA, 0, sizeof(T) * B * H * W);
    for (npy_intp b = 0; b < B; ++b) {
        for (npy_intp n = 0; n < N; ++n) {
            const T* __restrict__ row = M + (b * N + n) * W;
            const T* __restrict__ g = G + (b * N + n) * W;
            T* __restrict__ drow = dM + (b * N + n) * W;
            for (npy_intp m = 0; m < W; ++m) keep[m] = 1;
            for (npy_intp h = 0; h < H; ++h) {
                const T w = Wt[(b * H + h) * N + n];
                const T* __restrict__ e = E + (b * H + h) * W;
                for (npy_intp m = 0; m < W; ++m) keep[m] *= 1 - w * e[m];
            }
            for (npy_intp m = 0; m < W; ++m) drow[m] = g[m] * keep[m];
            for (npy_intp h = 0; h < H; ++h) {
                const T w = Wt[(b * H + h) * N + n];
                const T* __restrict__ e = E + (b * H + h) * W;
                /* q = g * M * prod_{h' != h} (1 - w_h' e_h') */
                for (npy_intp m = 0; m < W; ++m) q[m] = g[m] * row[m];
                for (npy_intp j = 0; j < H; ++j) {
                    if (j == h) continue;
                    const T wj = Wt[(b * H + j) * N + n];
                    const T* __restrict__ ej = E + (b * H + j) * W;
                    for (npy_intp m = 0; m < W; ++m) q[m] *= 1 - wj * ej[m];
                }
                dW[(b * H + h) * N + n] = ntm_dot(g, A + (b * H + h) * W, W) - ntm_dot(q, e, W);
                ntm_axpy(-w, q, dE + (b * H + h) * W, W);
                ntm_axpy(w, g, dA + (b * H + h) * W, W);
            }
        }
    }
}

/* R[b, h] = sum_n Wt[b, h, n] M[b, n] */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_read(const T* Wt, const T* M, T* __restrict__ R, npy_intp B, npy_intp H,
                     npy_intp N, npy_intp W_) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
    if (WC > 0 && H == 1) {
        /* the read vector summed in registers, in two sums (even and odd rows) so that each
           addition waits for the one two rows before */
        for (npy_intp b = 0; b < B; ++b) {
            T even[WC > 0 ? WC : 1] = {}, odd[WC > 0 ? WC : 1] = {};
            const T* __restrict__ Mb = M + b * N * W;
            const T* __restrict__ w = Wt + b * N;
            npy_intp n = 0;
            for (; n + 2 <= N; n += 2)
                for (npy_intp m = 0; m < W; ++m) {
                    even[m] += w[n] * Mb[n * W + m];
                    odd[m] += w[n + 1] * Mb[(n + 1) * W + m];
                }
            if (n < N)
                for (npy_intp m = 0; m < W; ++m) even[m] += w[n] * Mb[n * W + m];
            for (npy_intp m = 0; m < W; ++m) R[b * W + m] = even[m] + odd[m];
        }
        return;
    }
    memset(R, 0, sizeof(T) * B * H * W);
    for (npy_intp b = 0; b < B; ++b)
        for (npy_intp n = 0; n < N; ++n)
            for (npy_intp h = 0; h < H; ++h)
                ntm_axpy(Wt[(b * H + h) * N + n], M + (b * N + n) * W, R + (b * H + h) * W, W);
}

/* dM_n = sum_h w_h[n] G_h for one batch entry, in a function of its own so that the
   compiler sees its pointers restrict-qualified and vectorises the rows. */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_read_grad_memory(const T* __restrict__ Wb,
                                               const T* __restrict__ Gb, T* __restrict__ dMb,
                                               npy_intp H, npy_intp N, npy_intp W_) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
    for (npy_intp n = 0; n < N; ++n) {
        T* __restrict__ drow = dMb + n * W;
        const T w = Wb[n];
        for (npy_intp m = 0; m < W; ++m) drow[m] = w * Gb[m];
        for (npy_intp h = 1; h < H; ++h) {
            const T wh = Wb[h * N + n];
            const T* __restrict__ g = Gb + h * W;
            for (npy_intp m = 0; m < W; ++m) drow[m] += wh * g[m];
        }
    }
}

/* Gradients of ntm_read given G = dL/dR: the weightings' (dot products with the rows,
   single-precision rows eight at a time), then the memory's. */
template <typename T, int WC>
static NTMK_NOINLINE void ntm_read_grad(const T* Wt, const T* M, const T* G, T* __restrict__ dW,
                          T* __restrict__ dM, npy_intp B, npy_intp H, npy_intp N, npy_intp W_) {
    const npy_intp W = WC ? WC : W_;  /* a constant where the node knows it */
    for (npy_intp b = 0; b < B; ++b) {
        const T* Mb = M + b * N * W;
        for (npy_intp h = 0; h < H; ++h) {
            const T* g = G + (b * H + h) * W;
            T* dWh = dW + (b * H + h) * N;
            npy_intp n = 0;
#ifdef NTM_ROWS_AT_ONCE
            if (sizeof(T) == sizeof(float)) {
                const __m256i tail = ntm_tail_mask(W);
                for (; n + NTM_ROWS_AT_ONCE <= N; n += NTM_ROWS_AT_ONCE)
                    ntm_dots8<WC>(reinterpret_cast<const float*>(Mb + n * W),
                                  reinterpret_cast<const float*>(g), false, W, tail,
                                  reinterpret_cast<float*>(dWh + n));
            }
#endif
            for (; n < N; ++n) dWh[n] = ntm_dot(g, Mb + n * W, W);
        }
        ntm_read_grad_memory<T, WC>(Wt + b * H * N, G + b * H * W, dM + b * N * W, H, N, W);
    }
}
"""


#: The widest memory row whose width the kernels are compiled for as a constant.
MAX_CONSTANT_WIDTH = 64


def _row_width(memory):
    """The memory's row width where its type knows it (and it is at most
    :data:`MAX_CONSTANT_WIDTH`), else 0: the kernels' template constant ``WC``."""
    width = memory.type.shape[-1]
    return int(width) if width is not None and 0 < width <= MAX_CONSTANT_WIDTH else 0


def _c_contiguous_inputs(names, fail, cleanup):
    """C that replaces each input by a contiguous version (new references ``c_<name>``)."""
    lines = [f"PyArrayObject* c_{n} = NULL;" for n in names]
    for n, var in names.items():
        lines.append(f"c_{n} = ntm_contiguous({var}); if (!c_{n}) {{ {cleanup} {fail} }}")
    return "\n".join(lines)


def _c_pointers(inputs=(), outputs=()):
    """C declarations of the typed data pointers of arrays: ``const T* name`` for each
    ``(name, array)`` of ``inputs``, ``T* name`` for each of ``outputs``."""
    lines = [f"const T* {name} = (const T*)PyArray_DATA({array});" for name, array in inputs]
    lines += [f"T* {name} = (T*)PyArray_DATA({array});" for name, array in outputs]
    return "\n".join(lines)


def _c_release(names):
    return " ".join(f"Py_XDECREF(c_{n});" for n in names)


def _c_shapes(who, layout, release, fail, extra=None):
    """C that names every dimension and fails with a ValueError unless the inputs agree.

    ``layout`` maps an input's C name (``c_<name>``) to ``(what it is, its dimensions)``, each
    dimension a one-letter C variable: its first appearance defines it
    (``const npy_intp B = PyArray_DIMS(c_mem)[0];``), every later one is checked against it.
    ``extra`` is one more C condition that must hold.
    """
    defined, declarations, conditions, described = set(), [], [], []
    for name, (what, dims) in layout.items():
        for axis, dim in enumerate(dims):
            size = f"PyArray_DIMS(c_{name})[{axis}]"
            if dim in defined:
                conditions.append(f"{size} != {dim}")
            else:
                defined.add(dim)
                declarations.append(f"const npy_intp {dim} = {size};")
        described.append(f"{what} ({', '.join(dims)})")
    if extra:
        conditions.append(f"!({extra})")
    message = f"{who}: {', '.join(described)} do not match"
    check = (f"if ({' || '.join(conditions)}) {{ PyErr_SetString(PyExc_ValueError, "
             f"\"{message}\"); {release} {fail} }}" if conditions else "")
    return "\n".join(declarations + [check])


# What each op's C code checks: C name -> (what it is, dimensions); M is called W in C.
_COSINE_LAYOUT = {"k": ("keys", "BHW"), "mem": ("memory", "BNW")}
_WRITE_LAYOUT = {"mem": ("memory", "BNW"), "w": ("weights", "BHN"), "e": ("erase", "BHW"),
                 "a": ("add", "BHW")}
_READ_LAYOUT = {"w": ("weights", "BHN"), "mem": ("memory", "BNW")}


class _MemoryOp(COp):
    """Shared plumbing: C headers and support code, cache versions."""

    __props__ = ()

    def c_headers(self, **kwargs):
        return ["<cmath>", "<string.h>"]

    def c_support_code(self, **kwargs):
        # A list: a linker that puts several ops in one module includes each part once.
        return [kernel_threads.C_SUPPORT, _C_SUPPORT]

    def c_compile_args(self, **kwargs):
        # Let the compiler reorder sums so that the loops over a row are vectorised; the
        # batch is split between threads where OpenMP is available (ntm.accel.kernel_threads).
        return ["-fno-math-errno", "-fassociative-math", "-fno-signed-zeros",
                "-fno-trapping-math"] + kernel_threads.openmp_flags()

    def c_code_cache_version(self):
        return (C_VERSION,)


class _GradientOp(_MemoryOp):
    """An op computing the gradients of a forward op with respect to each of its inputs, from
    those inputs and the output's gradient (the last input): every gradient has the shape of
    its input. ``input_names`` and ``input_ndims`` describe the inputs."""

    input_names = ()
    input_ndims = ()

    def make_node(self, *inputs):
        inputs, dtype = _as_float_tensors(type(self).__name__, self.input_names, inputs,
                                          self.input_ndims)
        return Apply(self, inputs, [pt.tensor(dtype=dtype, shape=x.type.shape)
                                    for x in inputs[:-1]])

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        return list(shapes[:-1])

    def pullback(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, i, x, f"second derivatives ({type(self).__name__})")
                for i, x in enumerate(inputs)]


# --------------------------------------------------------------------------------------------
# Cosine similarity


class CosineSimilarity(_MemoryOp):
    r"""Cosine similarity of each key with each memory row, in one pass over the memory.

    ``CosineSimilarity(eps)(keys, memory)``: keys ``(batch, heads, M)``, memory
    ``(batch, N, M)`` -> ``(batch, heads, N)``, :math:`k \cdot M_n / (\lVert k \rVert
    \lVert M_n \rVert + \epsilon)`.
    """

    __props__ = ("eps",)

    def __init__(self, eps=1e-6):
        self.eps = float(eps)

    def make_node(self, keys, memory):
        # (batch, heads, N): the keys' first two axes, the memory's second
        return _batched_node(self, ("keys", "memory"), (keys, memory), 1, 1)

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        keys, memory = shapes
        return [(keys[0], keys[1], memory[1])]

    def perform(self, node, inputs, outputs):
        keys, memory = inputs
        _check_batch("CosineSimilarity", keys, memory)
        dots = np.einsum("bhm,bnm->bhn", keys, memory)
        key_norms = np.sqrt(np.sum(keys * keys, axis=-1))
        row_norms = np.sqrt(np.sum(memory * memory, axis=-1))
        denominator = key_norms[:, :, None] * row_norms[:, None, :] + keys.dtype.type(self.eps)
        outputs[0][0] = (dots / denominator).astype(keys.dtype, copy=False)

    def pullback(self, inputs, outputs, output_grads):
        keys, memory = inputs
        return CosineSimilarityGrad(self.eps)(keys, memory, output_grads[0])

    def c_code(self, node, name, inputs, outputs, sub):
        keys, memory = inputs
        (out,) = outputs
        fail = sub["fail"]
        names = {"k": keys, "mem": memory}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{out} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("CosineSimilarity", _COSINE_LAYOUT, release, fail)}
        npy_intp dims[3] = {{B, H, N}};
        if (ntm_prepare_output(&{out}, 3, dims, c_k) != 0) {{ {release} {fail} }}
        {_c_pointers((("K", "c_k"), ("M", "c_mem")), (("S", out),))}
        ntm_for_chunks(B, H * N * W, [&](npy_intp b, npy_intp count) {{
            T* scratch = (T*)malloc(sizeof(T) * (N + H > 0 ? N + H : 1));
            NTM_BY_WIDTH({_row_width(node.inputs[1])}, ntm_cosine, K + b * H * W, M + b * N * W,
                         S + b * H * N, count, H, N, W, (T){self.eps!r}, scratch);
            free(scratch);
        }});
        {release}
        }}
        """


class CosineSimilarityGrad(_GradientOp):
    """The gradients ``(d keys, d memory)`` of :class:`CosineSimilarity` given the output's
    gradient (equations in the module docstring)."""

    __props__ = ("eps",)
    input_names, input_ndims = ("keys", "memory", "output_grad"), (3, 3, 3)

    def __init__(self, eps=1e-6):
        self.eps = float(eps)

    def perform(self, node, inputs, outputs):
        keys, memory, grad = inputs
        _check_batch("CosineSimilarityGrad", keys, memory)
        if grad.shape != (keys.shape[0], keys.shape[1], memory.shape[1]):
            raise ValueError(f"CosineSimilarityGrad: the gradient {grad.shape} must have the "
                             "shape of the similarities")
        dtype = keys.dtype
        eps = dtype.type(self.eps)
        key_norms = np.sqrt(np.sum(keys * keys, axis=-1))            # (b, h)
        row_norms = np.sqrt(np.sum(memory * memory, axis=-1))        # (b, n)
        dots = np.einsum("bhm,bnm->bhn", keys, memory)
        denominator = key_norms[:, :, None] * row_norms[:, None, :] + eps
        a = grad / denominator
        c = grad * dots / (denominator * denominator)
        key_directions = keys / np.where(key_norms > 0, key_norms, 1)[:, :, None]
        row_directions = memory / np.where(row_norms > 0, row_norms, 1)[:, :, None]
        d_keys = (np.einsum("bhn,bnm->bhm", a, memory)
                  - np.einsum("bhn,bn->bh", c, row_norms)[:, :, None] * key_directions)
        d_memory = (np.einsum("bhn,bhm->bnm", a, keys)
                    - np.einsum("bhn,bh->bn", c, key_norms)[:, :, None] * row_directions)
        outputs[0][0] = d_keys.astype(dtype, copy=False)
        outputs[1][0] = d_memory.astype(dtype, copy=False)

    def c_code(self, node, name, inputs, outputs, sub):
        keys, memory, grad = inputs
        d_keys, d_memory = outputs
        fail = sub["fail"]
        names = {"k": keys, "mem": memory, "g": grad}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{d_keys} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("CosineSimilarityGrad", dict(_COSINE_LAYOUT, g=("gradient", "BHN")), release,
                   fail)}
        if (ntm_prepare_output(&{d_keys}, 3, PyArray_DIMS(c_k), c_k) != 0
                || ntm_prepare_output(&{d_memory}, 3, PyArray_DIMS(c_mem), c_k) != 0) {{
            {release} {fail}
        }}
        {_c_pointers((("K", "c_k"), ("M", "c_mem"), ("G", "c_g")),
                     (("dK", d_keys), ("dM", d_memory)))}
        ntm_for_chunks(B, H * N * W, [&](npy_intp b, npy_intp count) {{
            const npy_intp scratch_size = (H + 2) * N + 2 * H;
            T* scratch = (T*)malloc(sizeof(T) * (scratch_size > 0 ? scratch_size : 1));
            NTM_BY_WIDTH({_row_width(node.inputs[1])}, ntm_cosine_grad, K + b * H * W,
                         M + b * N * W, G + b * H * N, dK + b * H * W, dM + b * N * W, count,
                         H, N, W, (T){self.eps!r}, scratch);
            free(scratch);
        }});
        {release}
        }}
        """


# --------------------------------------------------------------------------------------------
# Write


class MemoryWrite(_MemoryOp):
    r"""Erase then add, for every write head at once, in one pass over the memory.

    ``MemoryWrite()(memory, weights, erase, add)``: memory ``(batch, N, M)``, weights
    ``(batch, heads, N)``, erase and add ``(batch, heads, M)`` -> ``(batch, N, M)``,
    :math:`M \odot \prod_h (1 - w_h e_h^\top) + \sum_h w_h a_h^\top`.
    """

    def make_node(self, memory, weights, erase, add):
        inputs, dtype = _as_float_tensors("MemoryWrite", ("memory", "weights", "erase", "add"),
                                          (memory, weights, erase, add), (3, 3, 3, 3))
        return Apply(self, inputs, [pt.tensor(dtype=dtype, shape=inputs[0].type.shape)])

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        return [shapes[0]]

    def perform(self, node, inputs, outputs):
        memory, weights, erase, add = inputs
        _check_write("MemoryWrite", memory, weights, erase, add)
        keep = np.prod(1 - weights[:, :, :, None] * erase[:, :, None, :], axis=1)
        added = np.einsum("bhn,bhm->bnm", weights, add)
        outputs[0][0] = (memory * keep + added).astype(memory.dtype, copy=False)

    def pullback(self, inputs, outputs, output_grads):
        return MemoryWriteGrad()(*inputs, output_grads[0])

    def c_code(self, node, name, inputs, outputs, sub):
        memory, weights, erase, add = inputs
        (out,) = outputs
        fail = sub["fail"]
        names = {"mem": memory, "w": weights, "e": erase, "a": add}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{out} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("MemoryWrite", _WRITE_LAYOUT, release, fail)}
        if (ntm_prepare_output(&{out}, 3, PyArray_DIMS(c_mem), c_mem) != 0) {{ {release} {fail} }}
        {_c_pointers((("M", "c_mem"), ("Wt", "c_w"), ("E", "c_e"), ("A", "c_a")),
                     (("O", out),))}
        ntm_for_chunks(B, H * N * W, [&](npy_intp b, npy_intp count) {{
            NTM_BY_WIDTH({_row_width(node.inputs[0])}, ntm_write, M + b * N * W, Wt + b * H * N, E + b * H * W, A + b * H * W,
                         O + b * N * W, count, H, N, W);
        }});
        {release}
        }}
        """


class MemoryWriteGrad(_GradientOp):
    """The gradients ``(d memory, d weights, d erase, d add)`` of :class:`MemoryWrite` given the
    output's gradient (equations in the module docstring)."""

    input_names = ("memory", "weights", "erase", "add", "output_grad")
    input_ndims = (3, 3, 3, 3, 3)

    def perform(self, node, inputs, outputs):
        memory, weights, erase, add, grad = inputs
        _check_write("MemoryWriteGrad", memory, weights, erase, add)
        if grad.shape != memory.shape:
            raise ValueError(f"MemoryWriteGrad: the gradient {grad.shape} must have the "
                             f"memory's shape {memory.shape}")
        factors = 1 - weights[:, :, :, None] * erase[:, :, None, :]     # (b, h, n, m)
        num_heads = weights.shape[1]
        others = np.stack([np.prod(np.delete(factors, h, axis=1), axis=1)
                           for h in range(num_heads)], axis=1)        # (b, h, n, m)
        q = (grad * memory)[:, None] * others
        d_memory = grad * np.prod(factors, axis=1)
        d_weights = (np.einsum("bnm,bhm->bhn", grad, add)
                     - np.einsum("bhnm,bhm->bhn", q, erase))
        d_erase = -np.einsum("bhnm,bhn->bhm", q, weights)
        d_add = np.einsum("bnm,bhn->bhm", grad, weights)
        for i, value in enumerate((d_memory, d_weights, d_erase, d_add)):
            outputs[i][0] = value.astype(memory.dtype, copy=False)

    def c_code(self, node, name, inputs, outputs, sub):
        memory, weights, erase, add, grad = inputs
        d_memory, d_weights, d_erase, d_add = outputs
        fail = sub["fail"]
        names = {"mem": memory, "w": weights, "e": erase, "a": add, "g": grad}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{d_memory} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("MemoryWriteGrad", dict(_WRITE_LAYOUT, g=("gradient", "BNW")), release, fail)}
        if (ntm_prepare_output(&{d_memory}, 3, PyArray_DIMS(c_mem), c_mem) != 0
                || ntm_prepare_output(&{d_weights}, 3, PyArray_DIMS(c_w), c_mem) != 0
                || ntm_prepare_output(&{d_erase}, 3, PyArray_DIMS(c_e), c_mem) != 0
                || ntm_prepare_output(&{d_add}, 3, PyArray_DIMS(c_a), c_mem) != 0) {{
            {release} {fail}
        }}
        {_c_pointers((("M", "c_mem"), ("Wt", "c_w"), ("E", "c_e"), ("A", "c_a"), ("G", "c_g")),
                     (("dM", d_memory), ("dWt", d_weights), ("dE", d_erase), ("dA", d_add)))}
        ntm_for_chunks(B, H * N * W, [&](npy_intp b, npy_intp count) {{
            T* scratch = (T*)malloc(sizeof(T) * 2 * (W > 0 ? W : 1));
            NTM_BY_WIDTH({_row_width(node.inputs[0])}, ntm_write_grad, M + b * N * W, Wt + b * H * N, E + b * H * W, A + b * H * W,
                              G + b * N * W, dM + b * N * W, dWt + b * H * N, dE + b * H * W,
                              dA + b * H * W, count, H, N, W, scratch, scratch + W);
            free(scratch);
        }});
        {release}
        }}
        """


# --------------------------------------------------------------------------------------------
# Read


class MemoryRead(_MemoryOp):
    r"""Every read head's read vector, in one pass over the memory.

    ``MemoryRead()(weights, memory)``: weights ``(batch, heads, N)``, memory ``(batch, N, M)``
    -> ``(batch, heads, M)``, :math:`r_h = \sum_n w_h[n] M_n`.
    """

    def make_node(self, weights, memory):
        # (batch, heads, M): the weightings' first two axes, the memory's third
        return _batched_node(self, ("weights", "memory"), (weights, memory), 1, 2)

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        weights, memory = shapes
        return [(weights[0], weights[1], memory[2])]

    def perform(self, node, inputs, outputs):
        weights, memory = inputs
        _check_read("MemoryRead", weights, memory)
        outputs[0][0] = np.matmul(weights, memory).astype(memory.dtype, copy=False)

    def pullback(self, inputs, outputs, output_grads):
        return MemoryReadGrad()(*inputs, output_grads[0])

    def c_code(self, node, name, inputs, outputs, sub):
        weights, memory = inputs
        (out,) = outputs
        fail = sub["fail"]
        names = {"w": weights, "mem": memory}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{out} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("MemoryRead", _READ_LAYOUT, release, fail)}
        npy_intp dims[3] = {{B, H, W}};
        if (ntm_prepare_output(&{out}, 3, dims, c_mem) != 0) {{ {release} {fail} }}
        {_c_pointers((("Wt", "c_w"), ("M", "c_mem")), (("R", out),))}
        ntm_for_chunks(B, H * N * W, [&](npy_intp b, npy_intp count) {{
            NTM_BY_WIDTH({_row_width(node.inputs[1])}, ntm_read, Wt + b * H * N, M + b * N * W, R + b * H * W, count, H, N, W);
        }});
        {release}
        }}
        """


class MemoryReadGrad(_GradientOp):
    r"""The gradients ``(d weights, d memory)`` of :class:`MemoryRead` given the output's
    gradient :math:`G`: :math:`\partial w_h[n] = G_h \cdot M_n`,
    :math:`\partial M_n = \sum_h w_h[n] G_h`."""

    input_names, input_ndims = ("weights", "memory", "output_grad"), (3, 3, 3)

    def perform(self, node, inputs, outputs):
        weights, memory, grad = inputs
        _check_read("MemoryReadGrad", weights, memory)
        if grad.shape != (weights.shape[0], weights.shape[1], memory.shape[2]):
            raise ValueError(f"MemoryReadGrad: the gradient {grad.shape} must have the shape "
                             "of the read vectors")
        outputs[0][0] = np.matmul(grad, memory.transpose(0, 2, 1)).astype(memory.dtype,
                                                                           copy=False)
        outputs[1][0] = np.matmul(weights.transpose(0, 2, 1), grad).astype(memory.dtype,
                                                                            copy=False)

    def c_code(self, node, name, inputs, outputs, sub):
        weights, memory, grad = inputs
        d_weights, d_memory = outputs
        fail = sub["fail"]
        names = {"w": weights, "mem": memory, "g": grad}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{d_memory} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("MemoryReadGrad", dict(_READ_LAYOUT, g=("gradient", "BHW")), release, fail)}
        if (ntm_prepare_output(&{d_weights}, 3, PyArray_DIMS(c_w), c_mem) != 0
                || ntm_prepare_output(&{d_memory}, 3, PyArray_DIMS(c_mem), c_mem) != 0) {{
            {release} {fail}
        }}
        {_c_pointers((("Wt", "c_w"), ("M", "c_mem"), ("G", "c_g")),
                     (("dWt", d_weights), ("dM", d_memory)))}
        ntm_for_chunks(B, H * N * W, [&](npy_intp b, npy_intp count) {{
            NTM_BY_WIDTH({_row_width(node.inputs[1])}, ntm_read_grad, Wt + b * H * N, M + b * N * W, G + b * H * W, dWt + b * H * N,
                             dM + b * N * W, count, H, N, W);
        }});
        {release}
        }}
        """


# --------------------------------------------------------------------------------------------
# The sum of a memory's gradients


class SumInOrder(_MemoryOp):
    r"""The sum of several arrays of one shape, :math:`((x_0 + x_1) + x_2) + \dots`, in one pass.

    ``SumInOrder()(x0, x1, ...)``: two or more arrays of the same shape, batch first (at least
    one axis) -> their sum, added left to right as PyTensor's elementwise ``Add`` adds them, so
    the same values bit for bit. PyTensor's C code for ``Add`` walks any strides with three
    nested loops, which the compiler does not vectorise; this op loops once over contiguous
    values (vectorised), its batch split between threads like the other kernels: for the four
    memory-sized gradients that an NTM's backward step adds (the read's, both similarities',
    the next step's; ``PYTENSOR_FLAGS=profile=True python benchmarks/train_step.py --profile
    CVM --batch-sizes 16 --lengths 20`` shows its time in the scan's profile).
    :data:`ntm.accel.rewrites.sum_in_order` puts it in
    place of such an ``Add`` in the C backends.

    ``SumInOrder(inplace=k)``, ``k`` 0 or 1, writes the sum over input ``k`` (PyTensor's
    inplace rewrites choose it where nothing else reads that input): one array less to bring
    into the cache.
    """

    __props__ = ("inplace",)

    def __init__(self, inplace=None):
        self.inplace = None if inplace is None else int(inplace)
        if self.inplace is not None:
            self.destroy_map = {0: [self.inplace]}

    def make_node(self, *arrays):
        if len(arrays) < 2:
            raise TypeError(f"SumInOrder: expected two or more arrays, got {len(arrays)}")
        if self.inplace not in (None, 0, 1):
            raise ValueError(f"SumInOrder: inplace={self.inplace}, expected 0 or 1 (the first "
                             "sum's inputs) or None")
        arrays = [pt.as_tensor_variable(x) for x in arrays]
        first = arrays[0]
        if first.type.ndim < 1 or first.type.dtype not in ("float32", "float64"):
            raise TypeError(f"SumInOrder: expected float32 or float64 arrays with at least one "
                            f"axis, got {first.type}")
        for i, x in enumerate(arrays[1:], start=1):
            if x.type.ndim != first.type.ndim or x.type.dtype != first.type.dtype:
                raise TypeError(f"SumInOrder: array {i} is {x.type}, array 0 {first.type}: "
                                "expected the same dtype and number of axes")
        shape = tuple(next((x.type.shape[axis] for x in arrays if x.type.shape[axis] is not None),
                           None) for axis in range(first.type.ndim))
        return Apply(self, arrays, [pt.tensor(dtype=first.type.dtype, shape=shape)])

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        return [shapes[0]]

    def perform(self, node, inputs, outputs):
        shapes = {x.shape for x in inputs}
        if len(shapes) != 1:
            raise ValueError(f"SumInOrder: the arrays' shapes {[x.shape for x in inputs]} differ")
        total = inputs[0] + inputs[1]
        for x in inputs[2:]:
            total += x
        if self.inplace is not None:
            inputs[self.inplace][...] = total
            total = inputs[self.inplace]
        outputs[0][0] = total

    def pullback(self, inputs, outputs, output_grads):
        return [output_grads[0]] * len(inputs)

    def c_compile_args(self, **kwargs):
        # Not the other ops' reordering of sums: the additions keep PyTensor's order.
        return kernel_threads.openmp_flags()

    def c_support_code_apply(self, node, name):
        # The loop in a function of its own, with restrict-qualified parameters (the compiler
        # takes restrict into account there, not on local pointers), so that it is vectorised.
        # Written in place, input k is read through the sum's pointer, at the same index.
        count, k = len(node.inputs), self.inplace
        terms = [i for i in range(count) if i != k]
        parameters = ", ".join(f"const T* __restrict__ a{i}" for i in terms)
        total = " + ".join("sum[i]" if i == k else f"a{i}[i]" for i in range(count))
        return f"""
        template <typename T>
        static NTMK_NOINLINE void ntm_sum_{name}(T* __restrict__ sum, {parameters}, npy_intp size) {{
            for (npy_intp i = 0; i < size; ++i) sum[i] = {total};
        }}
        """

    def c_code(self, node, name, inputs, outputs, sub):
        (out,) = outputs
        fail = sub["fail"]
        count, ndim, k = len(inputs), node.inputs[0].type.ndim, self.inplace
        names = {f"x{i}": x for i, x in enumerate(inputs)}
        release = _c_release(names)
        same = " || ".join(
            f"PyArray_NDIM(c_x{i}) != {ndim} || !PyArray_CompareLists(PyArray_DIMS(c_x{i}), "
            f"PyArray_DIMS(c_x0), {ndim})" for i in range(1, count))
        pointers = _c_pointers([(f"p{i}", f"c_x{i}") for i in range(count)], [("o", out)])
        arguments = ", ".join(f"p{i} + begin" for i in range(count) if i != k)
        if k is None:
            output = f"ntm_prepare_output(&{out}, {ndim}, PyArray_DIMS(c_x0), c_x0) != 0"
        else:  # c_x{k} is the input itself when it is contiguous, else a copy: either will do
            output = f"(Py_XDECREF({out}), Py_INCREF(c_x{k}), {out} = c_x{k}, 0)"
        return f"""
        {{
        typedef dtype_{out} T;
        {_c_contiguous_inputs(names, fail, release)}
        if ({same}) {{
            PyErr_SetString(PyExc_ValueError, "SumInOrder: the arrays' shapes differ");
            {release} {fail}
        }}
        if ({output}) {{ {release} {fail} }}
        {pointers}
        const npy_intp items = PyArray_DIMS(c_x0)[0];
        const npy_intp item_size = items ? PyArray_SIZE(c_x0) / items : 0;
        ntm_for_chunks(items, {count + 1} * item_size, [&](npy_intp b, npy_intp n) {{
            const npy_intp begin = b * item_size;
            ntm_sum_{name}<T>(o + begin, {arguments}, n * item_size);
        }});
        {release}
        }}
        """


def _check_batch(who, keys, memory):
    if keys.shape[0] != memory.shape[0] or keys.shape[2] != memory.shape[2]:
        raise ValueError(f"{who}: keys {keys.shape} (B, H, M) and memory {memory.shape} "
                         "(B, N, M) do not match")


def _check_write(who, memory, weights, erase, add):
    B, N, W = memory.shape
    H = weights.shape[1]
    if weights.shape != (B, H, N) or erase.shape != (B, H, W) or add.shape != (B, H, W):
        raise ValueError(f"{who}: memory {memory.shape} (B, N, M), weights {weights.shape} "
                         f"(B, H, N), erase {erase.shape} and add {add.shape} (B, H, M) do not "
                         "match")


def _check_read(who, weights, memory):
    if weights.shape[0] != memory.shape[0] or weights.shape[2] != memory.shape[1]:
        raise ValueError(f"{who}: weights {weights.shape} (B, H, N) and memory {memory.shape} "
                         "(B, N, M) do not match")


# --------------------------------------------------------------------------------------------
# Numba implementations (registered when PyTensor's Numba backend can be imported).


def _register_numba():
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
    except ImportError:  # Numba not installed: the other backends still work
        return False

    @numba_basic.numba_njit
    def row_dot(x, y, zero):
        """The dot product of two rows (``zero`` of their dtype)."""
        total = zero
        for m in range(x.shape[0]):
            total += x[m] * y[m]
        return total

    @numba_basic.register_funcify_default_op_cache_key(CosineSimilarity)
    def _cosine(op, node, **kwargs):
        eps = op.eps

        @numba_basic.numba_njit
        def cosine_contiguous(keys, memory):
            B, H, W = keys.shape
            N = memory.shape[1]
            if memory.shape[0] != B or memory.shape[2] != W:
                raise ValueError("CosineSimilarity: keys (B, H, M) and memory (B, N, M) do not "
                                 "match")
            zero = np.zeros(1, dtype=keys.dtype)[0]
            eps_ = np.full(1, eps, dtype=keys.dtype)[0]
            out = np.empty((B, H, N), dtype=keys.dtype)
            knorm = np.empty(H, dtype=keys.dtype)
            for b in range(B):
                for h in range(H):
                    knorm[h] = np.sqrt(row_dot(keys[b, h], keys[b, h], zero))
                for n in range(N):
                    row = memory[b, n]
                    rnorm = np.sqrt(row_dot(row, row, zero))
                    for h in range(H):
                        out[b, h, n] = row_dot(keys[b, h], row, zero) / (knorm[h] * rnorm + eps_)
            return out

        @numba_basic.numba_njit
        def cosine(keys, memory):
            # C-contiguous arrays: the loops index them without strides
            return cosine_contiguous(np.ascontiguousarray(keys), np.ascontiguousarray(memory))

        return cosine, SOURCE_VERSION

    @numba_basic.register_funcify_default_op_cache_key(CosineSimilarityGrad)
    def _cosine_grad(op, node, **kwargs):
        eps = op.eps

        @numba_basic.numba_njit
        def cosine_grad_contiguous(keys, memory, grad):
            B, H, W = keys.shape
            N = memory.shape[1]
            if (memory.shape[0] != B or memory.shape[2] != W or grad.shape[0] != B
                    or grad.shape[1] != H or grad.shape[2] != N):
                raise ValueError("CosineSimilarityGrad: keys (B, H, M), memory (B, N, M) and "
                                 "the gradient (B, H, N) do not match")
            zero = np.zeros(1, dtype=keys.dtype)[0]
            eps_ = np.full(1, eps, dtype=keys.dtype)[0]
            d_keys = np.zeros_like(keys)
            d_memory = np.empty(memory.shape, dtype=keys.dtype)
            knorm = np.empty(H, dtype=keys.dtype)
            kcoef = np.empty(H, dtype=keys.dtype)
            for b in range(B):
                for h in range(H):
                    knorm[h] = np.sqrt(row_dot(keys[b, h], keys[b, h], zero))
                    kcoef[h] = zero
                for n in range(N):
                    row = memory[b, n]
                    rnorm = np.sqrt(row_dot(row, row, zero))
                    rcoef = zero
                    for m in range(W):
                        d_memory[b, n, m] = zero
                    for h in range(H):
                        dot = row_dot(keys[b, h], row, zero)
                        g = grad[b, h, n]
                        den = knorm[h] * rnorm + eps_
                        a = g / den
                        c = g * dot / (den * den)
                        for m in range(W):
                            d_memory[b, n, m] += a * keys[b, h, m]
                            d_keys[b, h, m] += a * memory[b, n, m]
                        rcoef += c * knorm[h]
                        kcoef[h] += c * rnorm
                    if rnorm > 0:
                        scale = rcoef / rnorm
                        for m in range(W):
                            d_memory[b, n, m] -= scale * memory[b, n, m]
                for h in range(H):
                    if knorm[h] > 0:
                        scale = kcoef[h] / knorm[h]
                        for m in range(W):
                            d_keys[b, h, m] -= scale * keys[b, h, m]
            return d_keys, d_memory

        @numba_basic.numba_njit
        def cosine_grad(keys, memory, grad):
            # C-contiguous arrays: the loops index them without strides
            return cosine_grad_contiguous(np.ascontiguousarray(keys),
                                          np.ascontiguousarray(memory),
                                          np.ascontiguousarray(grad))

        return cosine_grad, SOURCE_VERSION

    @numba_basic.numba_njit
    def _check_write_shapes(memory, weights, erase, add):
        B, N, W = memory.shape
        H = weights.shape[1]
        if (weights.shape[0] != B or weights.shape[2] != N or erase.shape[0] != B
                or erase.shape[1] != H or erase.shape[2] != W or add.shape[0] != B
                or add.shape[1] != H or add.shape[2] != W):
            raise ValueError("MemoryWrite: memory (B, N, M), weights (B, H, N), erase and add "
                             "(B, H, M) do not match")

    @numba_basic.register_funcify_default_op_cache_key(MemoryWrite)
    def _write(op, node, **kwargs):
        @numba_basic.numba_njit
        def write_contiguous(memory, weights, erase, add):
            _check_write_shapes(memory, weights, erase, add)
            B, N, W = memory.shape
            H = weights.shape[1]
            out = memory.copy()
            for b in range(B):
                for n in range(N):
                    row = out[b, n]
                    for h in range(H):  # erase
                        w = weights[b, h, n]
                        e = erase[b, h]
                        for m in range(W):
                            row[m] *= 1 - w * e[m]
                    for h in range(H):  # add
                        w = weights[b, h, n]
                        a = add[b, h]
                        for m in range(W):
                            row[m] += w * a[m]
            return out

        @numba_basic.numba_njit
        def write(memory, weights, erase, add):
            # C-contiguous arrays: the loops index them without strides
            return write_contiguous(np.ascontiguousarray(memory), np.ascontiguousarray(weights),
                                    np.ascontiguousarray(erase), np.ascontiguousarray(add))

        return write, SOURCE_VERSION

    @numba_basic.register_funcify_default_op_cache_key(MemoryWriteGrad)
    def _write_grad(op, node, **kwargs):
        @numba_basic.numba_njit
        def write_grad_contiguous(memory, weights, erase, add, grad):
            _check_write_shapes(memory, weights, erase, add)
            if grad.shape != memory.shape:
                raise ValueError("MemoryWriteGrad: the gradient must have the memory's shape")
            B, N, W = memory.shape
            H = weights.shape[1]
            d_memory = np.empty(memory.shape, dtype=memory.dtype)
            d_weights = np.empty(weights.shape, dtype=memory.dtype)
            d_erase = np.zeros(erase.shape, dtype=memory.dtype)
            d_add = np.zeros(add.shape, dtype=memory.dtype)
            q = np.empty(W, dtype=memory.dtype)
            for b in range(B):
                for n in range(N):
                    row, g, drow = memory[b, n], grad[b, n], d_memory[b, n]
                    for m in range(W):
                        drow[m] = g[m]
                    for h in range(H):  # d memory = G * prod_h (1 - w_h e_h)
                        w = weights[b, h, n]
                        e = erase[b, h]
                        for m in range(W):
                            drow[m] *= 1 - w * e[m]
                    for h in range(H):
                        w = weights[b, h, n]
                        e, a = erase[b, h], add[b, h]
                        for m in range(W):  # q = G * M * prod_{j != h} (1 - w_j e_j)
                            q[m] = g[m] * row[m]
                        for j in range(H):
                            if j != h:
                                wj = weights[b, j, n]
                                ej = erase[b, j]
                                for m in range(W):
                                    q[m] *= 1 - wj * ej[m]
                        dw = q[0] - q[0]
                        de, da = d_erase[b, h], d_add[b, h]
                        for m in range(W):
                            dw += g[m] * a[m] - q[m] * e[m]
                            de[m] -= q[m] * w
                            da[m] += g[m] * w
                        d_weights[b, h, n] = dw
            return d_memory, d_weights, d_erase, d_add

        @numba_basic.numba_njit
        def write_grad(memory, weights, erase, add, grad):
            # C-contiguous arrays: the loops index them without strides
            return write_grad_contiguous(np.ascontiguousarray(memory),
                                         np.ascontiguousarray(weights),
                                         np.ascontiguousarray(erase), np.ascontiguousarray(add),
                                         np.ascontiguousarray(grad))

        return write_grad, SOURCE_VERSION

    @numba_basic.numba_njit
    def _check_read_shapes(weights, memory):
        if weights.shape[0] != memory.shape[0] or weights.shape[2] != memory.shape[1]:
            raise ValueError("MemoryRead: weights (B, H, N) and memory (B, N, M) do not match")

    @numba_basic.register_funcify_default_op_cache_key(MemoryRead)
    def _read(op, node, **kwargs):
        @numba_basic.numba_njit
        def read_contiguous(weights, memory):
            _check_read_shapes(weights, memory)
            B, N, W = memory.shape
            H = weights.shape[1]
            out = np.zeros((B, H, W), dtype=memory.dtype)
            for b in range(B):
                for n in range(N):
                    for h in range(H):
                        w = weights[b, h, n]
                        for m in range(W):
                            out[b, h, m] += w * memory[b, n, m]
            return out

        @numba_basic.numba_njit
        def read(weights, memory):
            # C-contiguous arrays: the loops index them without strides
            return read_contiguous(np.ascontiguousarray(weights), np.ascontiguousarray(memory))

        return read, SOURCE_VERSION

    @numba_basic.register_funcify_default_op_cache_key(MemoryReadGrad)
    def _read_grad(op, node, **kwargs):
        @numba_basic.numba_njit
        def read_grad_contiguous(weights, memory, grad):
            _check_read_shapes(weights, memory)
            B, N, W = memory.shape
            H = weights.shape[1]
            if grad.shape[0] != B or grad.shape[1] != H or grad.shape[2] != W:
                raise ValueError("MemoryReadGrad: the gradient must have the shape of the read "
                                 "vectors")
            zero = np.zeros(1, dtype=memory.dtype)[0]
            d_weights = np.empty(weights.shape, dtype=memory.dtype)
            d_memory = np.zeros(memory.shape, dtype=memory.dtype)
            for b in range(B):
                for n in range(N):
                    for h in range(H):
                        w = weights[b, h, n]
                        dot = zero
                        for m in range(W):
                            dot += grad[b, h, m] * memory[b, n, m]
                            d_memory[b, n, m] += w * grad[b, h, m]
                        d_weights[b, h, n] = dot
            return d_weights, d_memory

        @numba_basic.numba_njit
        def read_grad(weights, memory, grad):
            # C-contiguous arrays: the loops index them without strides
            return read_grad_contiguous(np.ascontiguousarray(weights),
                                        np.ascontiguousarray(memory), np.ascontiguousarray(grad))

        return read_grad, SOURCE_VERSION

    return True


_register_numba()
