r"""A head's whole location addressing as one operation, with its gradient.

From the similarities :math:`K` of its key with every memory row (see
:mod:`ntm.accel.memory_kernels`), a head's new weighting is (paper section 3.3, see
:mod:`ntm.heads`)

.. math::
    w^c = \mathrm{softmax}(\beta K), \quad
    w^g = g\, w^c + (1 - g)\, w_{t-1}, \quad
    \tilde w[i] = \sum_k s[k]\, w^g[i - k + \lfloor S/2 \rfloor], \quad
    u = \tilde w + \epsilon, \quad
    w = \frac{u^\gamma}{\sum_j u_j^\gamma}

(indices modulo :math:`N`, or out-of-range terms dropped with zero padding). As tensor
expressions that is some thirty small operations per head and step, each a separate loop in
the C backend, and about three times as many in the gradient. :class:`Addressing` computes it
in one loop over the locations, and :class:`AddressingGrad` its gradient in one more, from
:math:`G = \partial L / \partial w`:

.. math::
    \partial v &= (G - \textstyle\sum_j G_j w_j) / V \quad (v = u^\gamma,\ V = \sum v) \\
    \partial\gamma &= \textstyle\sum_i \partial v_i\, v_i \log u_i, \qquad
    \partial\tilde w_i = \partial v_i\, \gamma\, v_i / u_i \\
    \partial w^g_j &= \textstyle\sum_k s[k]\, \partial\tilde w[j + k - \lfloor S/2 \rfloor],
    \qquad \partial s[k] = \sum_i \partial\tilde w_i\, w^g[i - k + \lfloor S/2 \rfloor] \\
    \partial g &= \textstyle\sum_n (w^c_n - w_{t-1,n})\, \partial w^g_n, \quad
    \partial w_{t-1} = (1 - g)\, \partial w^g, \quad \partial w^c = g\, \partial w^g \\
    \partial z &= w^c \odot (\partial w^c - \textstyle\sum_j w^c_j \partial w^c_j), \quad
    \partial\beta = \textstyle\sum_n \partial z_n K_n, \quad \partial K = \beta\, \partial z

(the sharpening's normalisation by :math:`\max u`, which only keeps :math:`u^\gamma` from
underflowing, is scale-free and has no gradient). With ``save_intermediates``, the forward op
also outputs :math:`w^c`, :math:`v` and :math:`V` per row, and the gradient
(``from_saved``) reads them instead of computing the exponentials and powers again: the same
values, so the same gradients bit for bit in C. C code for the C backend, a Numba function
for ``NUMBA`` and NumPy for the Python linker compute the same loops; the heads use them when
the accelerated implementation is in force (:func:`ntm.accel.accelerated`).
"""
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply

from ..heads import SHIFT_MODES
from .memory_kernels import (_as_float_tensors, _c_contiguous_inputs, _c_pointers, _c_release,
                             _c_shapes, _GradientOp, _MemoryOp, source_version)

__all__ = ["Addressing", "AddressingGrad"]

def _check_mode(who, shift_mode):
    if shift_mode not in SHIFT_MODES:
        raise ValueError(f"{who}: shift_mode must be one of {SHIFT_MODES}, got {shift_mode!r}")


_INPUT_NAMES = ("similarities", "beta", "gate", "shift", "gamma", "previous")
_INPUT_NDIMS = (3, 2, 2, 3, 2, 3)


def _numpy_forward(K, beta, gate, shift, gamma, previous, circular, eps):
    """Every intermediate of the addressing, ``(batch, heads, N)`` each (NumPy)."""
    N, S = K.shape[-1], shift.shape[-1]
    half = S // 2
    z = beta[:, :, None] * K
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    content = e / e.sum(axis=-1, keepdims=True)
    g = gate[:, :, None]
    gated = g * content + (1 - g) * previous
    shifted = np.zeros_like(gated)
    for k in range(S):
        offset = k - half
        if circular:
            shifted += shift[:, :, k, None] * np.roll(gated, offset, axis=-1)
        elif offset >= 0:
            shifted[..., offset:] += shift[:, :, k, None] * gated[..., :N - offset]
        else:
            shifted[..., :N + offset] += shift[:, :, k, None] * gated[..., -offset:]
    u = shifted + eps
    powered = (u / u.max(axis=-1, keepdims=True)) ** gamma[:, :, None]
    weights = powered / powered.sum(axis=-1, keepdims=True)
    return content, gated, u, weights


class Addressing(_MemoryOp):
    r"""``Addressing(shift_mode, eps, save_intermediates)(similarities, beta, gate, shift,
    gamma, previous)``: the new weightings ``(batch, heads, N)`` (equations in the module
    docstring).

    Parameters
    ----------
    shift_mode : {'circular', 'zero_pad'}
    eps : float
        Added to the shifted weighting before sharpening (``ntm.heads.SHARPEN_EPSILON``).
    save_intermediates : bool
        Also output, as a second output ``(batch, heads, 2 N + 1)``, what the gradient would
        otherwise compute again: per row the content weighting :math:`w^c`, the powers
        :math:`v = (u / \max u)^\gamma` and their sum :math:`V` (no gradient flows through
        it). The gradient then reads them (:class:`AddressingGrad` with ``from_saved``), which
        spares it an exponential and a power per location; a scan that outputs them keeps
        them for its backward pass (``ntm.layers``).

    Inputs: similarities and previous weightings ``(batch, heads, N)``; beta, gate and gamma
    ``(batch, heads)``; shift weightings ``(batch, heads, S)``.
    """

    __props__ = ("shift_mode", "eps", "save_intermediates")

    def __init__(self, shift_mode="circular", eps=1e-6, save_intermediates=False):
        _check_mode("Addressing", shift_mode)
        self.shift_mode, self.eps = shift_mode, float(eps)
        self.save_intermediates = bool(save_intermediates)

    def make_node(self, *inputs):
        inputs, dtype = _as_float_tensors("Addressing", _INPUT_NAMES, inputs, _INPUT_NDIMS)
        outputs = [pt.tensor(dtype=dtype, shape=inputs[0].type.shape)]
        if self.save_intermediates:
            batch, heads, N = inputs[0].type.shape
            outputs.append(pt.tensor(dtype=dtype, shape=(
                batch, heads, None if N is None else 2 * N + 1)))
        return Apply(self, inputs, outputs)

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        if not self.save_intermediates:
            return [shapes[0]]
        batch, heads, N = shapes[0]
        return [shapes[0], (batch, heads, 2 * N + 1)]

    def connection_pattern(self, node):
        # the saved intermediates are for the gradient only: nothing flows back through them
        return [[True] + [False] * (len(node.outputs) - 1) for _ in node.inputs]

    def perform(self, node, inputs, outputs):
        _check_shapes("Addressing", *inputs)
        K = inputs[0]
        content, _, u, weights = _numpy_forward(*inputs, self.shift_mode == "circular",
                                                K.dtype.type(self.eps))
        outputs[0][0] = weights.astype(K.dtype, copy=False)
        if self.save_intermediates:
            outputs[1][0] = _pack_saved(content, u, inputs[4]).astype(K.dtype, copy=False)

    def pullback(self, inputs, outputs, output_grads):
        if self.save_intermediates:
            return AddressingGrad(self.shift_mode, self.eps, from_saved=True)(
                *inputs, outputs[1], output_grads[0])
        return AddressingGrad(self.shift_mode, self.eps)(*inputs, output_grads[0])

    def c_code(self, node, name, inputs, outputs, sub):
        out = outputs[0]
        names = dict(zip(("K", "beta", "gate", "s", "gamma", "prev"), inputs))
        release = _c_release(names)
        fail = sub["fail"]
        circular = "true" if self.shift_mode == "circular" else "false"
        if self.save_intermediates:
            saved = outputs[1]
            prepare_saved = (f"npy_intp saved_dims[3] = {{B, H, 2 * N + 1}};\n"
                             f"if (ntm_prepare_output(&{saved}, 3, saved_dims, c_K) != 0) "
                             f"{{ {release} {fail} }}\n"
                             f"T* saved = (T*)PyArray_DATA({saved});")
            saved_row = "saved + r * (2 * N + 1)"
        else:
            prepare_saved, saved_row = "", "(T*)NULL"
        return f"""
        {{
        typedef dtype_{out} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("Addressing", _LAYOUT, release, fail, extra="S <= N")}
        if (ntm_prepare_output(&{out}, 3, PyArray_DIMS(c_K), c_K) != 0) {{ {release} {fail} }}
        {prepare_saved}
        {_c_pointers(((n, f"c_{n}") for n in names), (("w", out),))}
        ntm_for_chunks(B * H, 8 * N, [&](npy_intp r, npy_intp count) {{
            T* scratch = (T*)malloc(sizeof(T) * 3 * (N > 0 ? N : 1));
            ntm_addressing<T>(K + r * N, beta + r, gate + r, s + r * S, gamma + r, prev + r * N,
                              w + r * N, {saved_row}, count, N, S, {circular},
                              (T){self.eps!r}, scratch);
            free(scratch);
        }});
        {release}
        }}
        """

    def c_support_code(self, **kwargs):
        return super().c_support_code(**kwargs) + [C_EXP_LOG, _C_SUPPORT]


def _pack_saved(content, u, gamma):
    """What :class:`Addressing` saves per row, ``(batch, heads, 2 N + 1)``: the content
    weighting, :math:`v = (u / \\max u)^\\gamma` and :math:`V = \\sum v` (NumPy)."""
    powered = (u / u.max(axis=-1, keepdims=True)) ** gamma[:, :, None]
    return np.concatenate([content, powered, powered.sum(axis=-1, keepdims=True)], axis=-1)


class AddressingGrad(_GradientOp):
    """The gradients of :class:`Addressing` with respect to its six inputs, given the new
    weightings' gradient (equations in the module docstring).

    ``AddressingGrad(shift_mode, eps)(similarities, beta, gate, shift, gamma, previous, G)``
    computes the forward pass again; ``AddressingGrad(shift_mode, eps, from_saved=True)`` takes
    the forward pass's saved intermediates (``Addressing(..., save_intermediates=True)``'s
    second output) after ``previous``: ``(..., previous, saved, G)``.
    """

    __props__ = ("shift_mode", "eps", "from_saved")

    def __init__(self, shift_mode="circular", eps=1e-6, from_saved=False):
        _check_mode("AddressingGrad", shift_mode)
        self.shift_mode, self.eps = shift_mode, float(eps)
        self.from_saved = bool(from_saved)
        extra = ("saved",) if self.from_saved else ()
        self.input_names = _INPUT_NAMES + extra + ("output_grad",)
        self.input_ndims = _INPUT_NDIMS + (3,) * len(extra) + (3,)

    def make_node(self, *inputs):
        inputs, dtype = _as_float_tensors("AddressingGrad", self.input_names, inputs,
                                          self.input_ndims)
        return Apply(self, inputs, [pt.tensor(dtype=dtype, shape=x.type.shape)
                                    for x in inputs[:len(_INPUT_NAMES)]])

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        return list(shapes[:len(_INPUT_NAMES)])

    def perform(self, node, inputs, outputs):
        K, beta, gate, shift, gamma, previous = inputs[:6]
        G = inputs[-1]
        _check_shapes("AddressingGrad", *inputs[:6])
        if G.shape != K.shape:
            raise ValueError(f"AddressingGrad: the gradient {G.shape} must have the shape of "
                             f"the weightings {K.shape}")
        circular = self.shift_mode == "circular"
        content, gated, u, weights = _numpy_forward(*inputs[:6], circular,
                                                    K.dtype.type(self.eps))
        N, S = K.shape[-1], shift.shape[-1]
        if self.from_saved:
            saved = inputs[6]
            if saved.shape != K.shape[:2] + (2 * N + 1,):
                raise ValueError(f"AddressingGrad: the saved intermediates {saved.shape} must "
                                 f"be (B, H, 2 N + 1) for similarities {K.shape}")
            content, powered = saved[..., :N], saved[..., N:2 * N]
            total = saved[..., 2 * N:]
        else:
            powered = (u / u.max(axis=-1, keepdims=True)) ** gamma[:, :, None]
            total = powered.sum(-1, keepdims=True)
        half = S // 2
        scaled = u / u.max(axis=-1, keepdims=True)
        weights = powered / total
        d_v = (G - np.sum(G * weights, axis=-1, keepdims=True)) / total
        d_gamma = np.sum(d_v * powered * np.log(scaled), axis=-1)
        d_shifted = d_v * gamma[:, :, None] * powered / u
        d_gated = np.zeros_like(gated)
        d_shift = np.zeros_like(shift)
        for k in range(S):
            offset = k - half
            if circular:
                moved = np.roll(gated, offset, axis=-1)
                d_gated += shift[:, :, k, None] * np.roll(d_shifted, -offset, axis=-1)
            else:
                moved = np.zeros_like(gated)
                back = np.zeros_like(gated)
                if offset >= 0:
                    moved[..., offset:] = gated[..., :N - offset]
                    back[..., :N - offset] = d_shifted[..., offset:]
                else:
                    moved[..., :N + offset] = gated[..., -offset:]
                    back[..., -offset:] = d_shifted[..., :N + offset]
                d_gated += shift[:, :, k, None] * back
            d_shift[:, :, k] = np.sum(d_shifted * moved, axis=-1)
        g = gate[:, :, None]
        d_gate = np.sum((content - previous) * d_gated, axis=-1)
        d_previous = (1 - g) * d_gated
        d_content = g * d_gated
        d_z = content * (d_content - np.sum(content * d_content, axis=-1, keepdims=True))
        d_beta = np.sum(d_z * K, axis=-1)
        d_K = beta[:, :, None] * d_z
        for i, value in enumerate((d_K, d_beta, d_gate, d_shift, d_gamma, d_previous)):
            outputs[i][0] = value.astype(K.dtype, copy=False)

    def c_support_code(self, **kwargs):
        return super().c_support_code(**kwargs) + [C_EXP_LOG, _C_SUPPORT]

    def c_code(self, node, name, inputs, outputs, sub):
        names = dict(zip(("K", "beta", "gate", "s", "gamma", "prev")
                         + (("saved",) if self.from_saved else ()) + ("G",), inputs))
        release = _c_release(names)
        fail = sub["fail"]
        circular = "true" if self.shift_mode == "circular" else "false"
        layout = dict(_LAYOUT, G=("gradient", "BHN"))
        extra = "S <= N"
        if self.from_saved:
            layout["saved"] = ("saved intermediates", "BHP")
            extra += " && P == 2 * N + 1"
        saved_row = "saved + r * (2 * N + 1)" if self.from_saved else "(const T*)NULL"
        shapes_of = ("c_K", "c_beta", "c_gate", "c_s", "c_gamma", "c_prev")
        prepare = " || ".join(f"ntm_prepare_output(&{out}, PyArray_NDIM({like}), "
                              f"PyArray_DIMS({like}), c_K) != 0"
                              for out, like in zip(outputs, shapes_of))
        return f"""
        {{
        typedef dtype_{outputs[0]} T;
        {_c_contiguous_inputs(names, fail, release)}
        {_c_shapes("AddressingGrad", layout, release, fail, extra=extra)}
        if ({prepare}) {{ {release} {fail} }}
        {_c_pointers(((n, f"c_{n}") for n in names),
                     zip(("dK", "dBeta", "dGate", "dS", "dGamma", "dPrev"), outputs))}
        ntm_for_chunks(B * H, 16 * N, [&](npy_intp r, npy_intp count) {{
            T* scratch = (T*)malloc(sizeof(T) * 6 * (N > 0 ? N : 1));
            ntm_addressing_grad<T>(K + r * N, beta + r, gate + r, s + r * S, gamma + r,
                                   prev + r * N, {saved_row}, G + r * N, dK + r * N,
                                   dBeta + r, dGate + r,
                                   dS + r * S, dGamma + r, dPrev + r * N, count, N, S,
                                   {circular}, (T){self.eps!r}, scratch);
            free(scratch);
        }});
        {release}
        }}
        """

# C kernels (support code of both ops), on top of ntm.accel.memory_kernels' helpers: exp and
# log apart, since ntm.accel.tanh_kernel uses them too.
C_EXP_LOG = r"""
/* exp and log of single-precision values, inline (no call into the C library per value, so
   that the compiler vectorises the loops over a row; within a few ulp of the C library's):
   the argument reduced by powers of 2, then a short series on what is left.

   exp: x = n ln 2 + r with n = round(x / ln 2), |r| <= ln 2 / 2; e^r by its Taylor series
   to r^7 (truncation below 6e-9 relatively, under a tenth of a float's ulp); 2^n put in the
   exponent bits. ln 2 is split in a part with trailing zero bits (n times it is exact) and
   the rest. x is clamped to [-87, 88], where e^x stays a normal float.
   log: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(t) with t = (m - 1) / (m + 1),
   |t| <= 0.172, by its series to t^9 (truncation below 1e-9); plus e ln 2. x must be a
   positive normal float (the kernels take the log of weights of at least their epsilon). */
static inline float ntm_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = std::floor(x * 1.44269504088896341f + 0.5f);
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float ntm_logf(float x) {
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    /* m in [1, 2) and its exponent; then m in [sqrt(1/2), sqrt(2)) */
    int32_t e = ((bits >> 23) & 0xff) - 127;
    bits = (bits & 0x007fffff) | 0x3f800000;
    float m;
    memcpy(&m, &bits, sizeof m);
    const bool high = m > 1.41421356237309505f;
    m = high ? 0.5f * m : m;
    e = high ? e + 1 : e;
    const float t = (m - 1.0f) / (m + 1.0f);
    const float t2 = t * t;
    float s = 1.0f / 9.0f;
    s = s * t2 + 1.0f / 7.0f;
    s = s * t2 + 1.0f / 5.0f;
    s = s * t2 + 1.0f / 3.0f;
    s = s * t2 + 1.0f;
    const float fe = (float)e;
    return (2.0f * t * s + fe * 1.42860682e-6f) + fe * 0.693145751953125f;
}

template <typename T> static inline T ntm_exp(T x) { return std::exp(x); }
template <> inline float ntm_exp<float>(float x) { return ntm_expf(x); }
template <typename T> static inline T ntm_log(T x) { return std::log(x); }
template <> inline float ntm_log<float>(float x) { return ntm_logf(x); }
/* x^y for x > 0 */
template <typename T> static inline T ntm_pow(T x, T y) { return std::pow(x, y); }
template <> inline float ntm_pow<float>(float x, float y) { return ntm_expf(y * ntm_logf(x)); }
"""

_C_SUPPORT = r"""
/* The content weighting softmax(beta K) of one (batch, head) row, in `content`. (Not
   inlined, as ntm_sharpen_row: the forward pass and a gradient that computes it again run
   the same code, so that they find the same bits.) */
template <typename T>
static NTMK_NOINLINE void ntm_content_row(const T* __restrict__ K, T beta, npy_intp N,
                                   T* __restrict__ content) {
    T zmax = beta * K[0];
    for (npy_intp n = 1; n < N; ++n) if (beta * K[n] > zmax) zmax = beta * K[n];
    T zsum = 0;
    for (npy_intp n = 0; n < N; ++n) {
        content[n] = ntm_exp(beta * K[n] - zmax);
        zsum += content[n];
    }
    for (npy_intp n = 0; n < N; ++n) content[n] /= zsum;
}

/* From the content weighting: the interpolation in `gated`, u = shift(gated) + eps in `u`;
   returns max u. */
template <typename T>
static inline T ntm_shift_row(const T* __restrict__ content, T g, const T* __restrict__ s,
                              const T* __restrict__ prev, npy_intp N, npy_intp S,
                              bool circular, T eps, T* __restrict__ gated,
                              T* __restrict__ u) {
    const npy_intp half = S / 2;
    for (npy_intp n = 0; n < N; ++n) gated[n] = g * content[n] + (1 - g) * prev[n];
    for (npy_intp i = 0; i < N; ++i) u[i] = 0;
    for (npy_intp k = 0; k < S; ++k) {
        /* u[i] += s[k] gated[i - offset]: two contiguous pieces (wrapped or dropped) */
        const npy_intp offset = k - half;
        const T sk = s[k];
        const npy_intp first = offset > 0 ? offset : 0, last = offset < 0 ? N + offset : N;
        for (npy_intp i = first; i < last; ++i) u[i] += sk * gated[i - offset];
        if (circular) {
            for (npy_intp i = 0; i < first; ++i) u[i] += sk * gated[i - offset + N];
            for (npy_intp i = last; i < N; ++i) u[i] += sk * gated[i - offset - N];
        }
    }
    T umax = 0;
    for (npy_intp i = 0; i < N; ++i) { u[i] += eps; if (u[i] > umax) umax = u[i]; }
    return umax;
}

/* The sharpening's powers v = (u / umax)^gamma of one row, in `v`; returns their sum. */
template <typename T>
static NTMK_NOINLINE T ntm_sharpen_row(const T* __restrict__ u, T umax, T gamma, npy_intp N,
                                       T* __restrict__ v) {
    T total = 0;
    for (npy_intp i = 0; i < N; ++i) { v[i] = ntm_pow(u[i] / umax, gamma); total += v[i]; }
    return total;
}

/* The new weightings of `rows` rows. With `saved` (not NULL), each row's content weighting,
   its powers v = (u / max u)^gamma and their sum V are also stored there, 2 N + 1 values per
   row, for the gradient. */
template <typename T>
static NTMK_NOINLINE void ntm_addressing(const T* K, const T* beta, const T* gate, const T* s,
                                      const T* gamma, const T* prev, T* __restrict__ out,
                                      T* __restrict__ saved, npy_intp rows, npy_intp N,
                                      npy_intp S, bool circular, T eps,
                                      T* __restrict__ scratch) {
    const npy_intp P = 2 * N + 1;
    T* gated = scratch + N; T* u = scratch + 2 * N;
    for (npy_intp r = 0; r < rows; ++r) {
        T* content = saved ? saved + r * P : scratch;
        ntm_content_row(K + r * N, beta[r], N, content);
        const T umax = ntm_shift_row(content, gate[r], s + r * S, prev + r * N, N, S, circular,
                                     eps, gated, u);
        T* w = out + r * N;
        const T total = ntm_sharpen_row(u, umax, gamma[r], N, w);
        if (saved) {
            T* v = saved + r * P + N;
            for (npy_intp i = 0; i < N; ++i) v[i] = w[i];
            v[N] = total;
        }
        for (npy_intp i = 0; i < N; ++i) w[i] /= total;
    }
}

template <typename T>
static NTMK_NOINLINE void ntm_addressing_grad(
        const T* K, const T* beta, const T* gate, const T* s, const T* gamma, const T* prev,
        const T* saved, const T* G, T* __restrict__ dK, T* __restrict__ dBeta,
        T* __restrict__ dGate, T* __restrict__ dS, T* __restrict__ dGamma,
        T* __restrict__ dPrev, npy_intp rows, npy_intp N, npy_intp S, bool circular, T eps,
        T* __restrict__ scratch) {
    /* With `saved` (the forward pass's, see ntm_addressing), the content weighting, v and V
       are read from it instead of being computed again (the same values: no exp, no pow). */
    const npy_intp P = 2 * N + 1;
    T* gated = scratch + N; T* u = scratch + 2 * N;
    T* d_tilde = scratch + 4 * N; T* d_gated = scratch + 5 * N;
    const npy_intp half = S / 2;
    for (npy_intp r = 0; r < rows; ++r) {
        const T g = gate[r], gam = gamma[r], bet = beta[r];
        const T* Gr = G + r * N;
        const T* content;
        const T* v;
        T vsum;
        T umax;
        if (saved) {
            /* copied to where the other branch computes them: the vectorised loops below
               then split their work alike (by alignment), and sum in the same order */
            T* c = scratch;
            T* vv = scratch + 3 * N;
            memcpy(c, saved + r * P, sizeof(T) * N);
            memcpy(vv, saved + r * P + N, sizeof(T) * N);
            content = c;
            v = vv;
            vsum = saved[r * P + 2 * N];
            umax = ntm_shift_row(content, g, s + r * S, prev + r * N, N, S, circular, eps,
                                 gated, u);
        } else {
            /* sharpening: v = (u / umax)^gamma, w = v / V */
            T* c = scratch;
            T* vv = scratch + 3 * N;
            ntm_content_row(K + r * N, bet, N, c);
            umax = ntm_shift_row(c, g, s + r * S, prev + r * N, N, S, circular, eps, gated, u);
            vsum = ntm_sharpen_row(u, umax, gam, N, vv);
            content = c;
            v = vv;
        }
        /* dv = (G - sum_j G_j w_j) / V */
        T gw = 0;
        for (npy_intp i = 0; i < N; ++i) gw += Gr[i] * v[i];
        gw /= vsum;
        T dgamma = 0;
        for (npy_intp i = 0; i < N; ++i) {
            const T dv = (Gr[i] - gw) / vsum;
            dgamma += dv * v[i] * ntm_log(u[i] / umax);
            d_tilde[i] = dv * gam * v[i] / u[i];
        }
        dGamma[r] = dgamma;
        /* shift: d_gated[j] = sum_k s[k] d_tilde[j + offset_k],
                  dS[k] = sum_i d_tilde[i] gated[i - offset_k] */
        for (npy_intp j = 0; j < N; ++j) d_gated[j] = 0;
        for (npy_intp k = 0; k < S; ++k) {
            const npy_intp offset = k - half;
            const T sk = s[r * S + k];
            const npy_intp first = offset > 0 ? offset : 0, last = offset < 0 ? N + offset : N;
            T ds = 0;
            for (npy_intp i = first; i < last; ++i) {
                ds += d_tilde[i] * gated[i - offset];
                d_gated[i - offset] += sk * d_tilde[i];
            }
            if (circular) {
                for (npy_intp i = 0; i < first; ++i) {
                    ds += d_tilde[i] * gated[i - offset + N];
                    d_gated[i - offset + N] += sk * d_tilde[i];
                }
                for (npy_intp i = last; i < N; ++i) {
                    ds += d_tilde[i] * gated[i - offset - N];
                    d_gated[i - offset - N] += sk * d_tilde[i];
                }
            }
            dS[r * S + k] = ds;
        }
        /* interpolation and the content softmax */
        const T* pr = prev + r * N;
        T* dPr = dPrev + r * N;
        T dgate = 0, cdc = 0;
        for (npy_intp n = 0; n < N; ++n) {
            dgate += (content[n] - pr[n]) * d_gated[n];
            dPr[n] = (1 - g) * d_gated[n];
            cdc += content[n] * g * d_gated[n];
        }
        dGate[r] = dgate;
        const T* Kr = K + r * N;
        T* dKr = dK + r * N;
        T dbeta = 0;
        for (npy_intp n = 0; n < N; ++n) {
            const T dz = content[n] * (g * d_gated[n] - cdc);
            dbeta += dz * Kr[n];
            dKr[n] = bet * dz;
        }
        dBeta[r] = dbeta;
    }
}
"""


# What the C code checks: C name -> (what it is, dimensions).
_LAYOUT = {"K": ("similarities", "BHN"), "beta": ("beta", "BH"), "gate": ("gate", "BH"),
           "s": ("shift", "BHS"), "gamma": ("gamma", "BH"), "prev": ("previous", "BHN")}

def _check_shapes(who, K, beta, gate, shift, gamma, previous):
    B, H, N = K.shape
    if (beta.shape != (B, H) or gate.shape != (B, H) or gamma.shape != (B, H)
            or shift.shape[:2] != (B, H) or shift.shape[2] > N or previous.shape != (B, H, N)):
        raise ValueError(f"{who}: similarities {K.shape} (B, H, N), beta {beta.shape}, gate "
                         f"{gate.shape} and gamma {gamma.shape} (B, H), shift {shift.shape} "
                         f"(B, H, S <= N) and previous {previous.shape} (B, H, N) do not match")


# --------------------------------------------------------------------------------------------
# Numba implementations (registered when PyTensor's Numba backend can be imported).

SOURCE_VERSION = source_version(__file__)


def _register_numba():
    try:
        from pytensor.link.numba.dispatch import basic as numba_basic
    except ImportError:  # Numba not installed: the other backends still work
        return False

    @numba_basic.numba_njit
    def check(K, beta, gate, shift, gamma, previous):
        B, H, N = K.shape
        if (beta.shape[0] != B or beta.shape[1] != H or gate.shape[0] != B
                or gate.shape[1] != H or gamma.shape[0] != B or gamma.shape[1] != H
                or shift.shape[0] != B or shift.shape[1] != H or shift.shape[2] > N
                or previous.shape[0] != B or previous.shape[1] != H or previous.shape[2] != N):
            raise ValueError("Addressing: similarities (B, H, N), beta, gate and gamma (B, H), "
                             "shift (B, H, S <= N) and previous (B, H, N) do not match")

    @numba_basic.numba_njit
    def source(i, offset, N, circular):
        """The location of ``gated`` that a move by ``offset`` brings to ``i`` (-1: none)."""
        j = i - offset
        if circular:
            return j + N if j < 0 else (j - N if j >= N else j)
        return j if 0 <= j < N else -1

    @numba_basic.numba_njit
    def content_row(K, beta, content):
        """The content weighting softmax(beta K) of one (batch, head) row, in ``content``."""
        N = K.shape[0]
        zmax = beta * K[0]
        for n in range(1, N):
            if beta * K[n] > zmax:
                zmax = beta * K[n]
        zsum = zmax - zmax
        for n in range(N):
            content[n] = np.exp(beta * K[n] - zmax)
            zsum += content[n]
        for n in range(N):
            content[n] /= zsum

    @numba_basic.numba_njit
    def shift_row(content, g, s, previous, circular, eps, gated, u):
        """From the content weighting, u = shift(gated) + eps; returns max u."""
        N, S = content.shape[0], s.shape[0]
        half = S // 2
        for n in range(N):
            gated[n] = g * content[n] + (1 - g) * previous[n]
        for i in range(N):
            u[i] = 0
        for k in range(S):
            offset = k - half
            for i in range(N):
                j = source(i, offset, N, circular)
                if j >= 0:
                    u[i] += s[k] * gated[j]
        umax = eps - eps
        for i in range(N):
            u[i] += eps
            if u[i] > umax:
                umax = u[i]
        return umax

    @numba_basic.register_funcify_default_op_cache_key(Addressing)
    def _addressing(op, node, **kwargs):
        circular, eps, save = op.shift_mode == "circular", op.eps, op.save_intermediates

        @numba_basic.numba_njit
        def addressing_contiguous(K, beta, gate, shift, gamma, previous):
            check(K, beta, gate, shift, gamma, previous)
            B, H, N = K.shape
            eps_ = np.full(1, eps, dtype=K.dtype)[0]
            out = np.empty(K.shape, dtype=K.dtype)
            # the saved intermediates per row: content weighting, v, V (see the C kernel)
            saved = np.empty((B, H, 2 * N + 1) if save else (0, 0, 0), dtype=K.dtype)
            content = np.empty(N, dtype=K.dtype)
            gated = np.empty(N, dtype=K.dtype)
            u = np.empty(N, dtype=K.dtype)
            for b in range(B):
                for h in range(H):
                    content_row(K[b, h], beta[b, h], content)
                    umax = shift_row(content, gate[b, h], shift[b, h], previous[b, h],
                                     circular, eps_, gated, u)
                    total = umax - umax
                    for i in range(N):
                        out[b, h, i] = (u[i] / umax) ** gamma[b, h]
                        total += out[b, h, i]
                    if save:
                        for i in range(N):
                            saved[b, h, i] = content[i]
                            saved[b, h, N + i] = out[b, h, i]
                        saved[b, h, 2 * N] = total
                    for i in range(N):
                        out[b, h, i] /= total
            return out, saved

        if save:
            @numba_basic.numba_njit
            def addressing(K, beta, gate, shift, gamma, previous):
                # C-contiguous arrays: the loops index them without strides
                return addressing_contiguous(
                    np.ascontiguousarray(K), np.ascontiguousarray(beta),
                    np.ascontiguousarray(gate), np.ascontiguousarray(shift),
                    np.ascontiguousarray(gamma), np.ascontiguousarray(previous))
        else:
            @numba_basic.numba_njit
            def addressing(K, beta, gate, shift, gamma, previous):
                return addressing_contiguous(
                    np.ascontiguousarray(K), np.ascontiguousarray(beta),
                    np.ascontiguousarray(gate), np.ascontiguousarray(shift),
                    np.ascontiguousarray(gamma), np.ascontiguousarray(previous))[0]

        return addressing, SOURCE_VERSION

    @numba_basic.register_funcify_default_op_cache_key(AddressingGrad)
    def _addressing_grad(op, node, **kwargs):
        circular, eps, from_saved = op.shift_mode == "circular", op.eps, op.from_saved

        @numba_basic.numba_njit
        def addressing_grad_contiguous(K, beta, gate, shift, gamma, previous, saved, G):
            check(K, beta, gate, shift, gamma, previous)
            B, H, N = K.shape
            S = shift.shape[2]
            half = S // 2
            if G.shape[0] != B or G.shape[1] != H or G.shape[2] != N:
                raise ValueError("AddressingGrad: the gradient must have the shape of the "
                                 "weightings")
            if from_saved and (saved.shape[0] != B or saved.shape[1] != H
                               or saved.shape[2] != 2 * N + 1):
                raise ValueError("AddressingGrad: the saved intermediates must be "
                                 "(B, H, 2 N + 1)")
            eps_ = np.full(1, eps, dtype=K.dtype)[0]
            d_K = np.empty(K.shape, dtype=K.dtype)
            d_beta = np.empty(beta.shape, dtype=K.dtype)
            d_gate = np.empty(gate.shape, dtype=K.dtype)
            d_shift = np.empty(shift.shape, dtype=K.dtype)
            d_gamma = np.empty(gamma.shape, dtype=K.dtype)
            d_previous = np.empty(previous.shape, dtype=K.dtype)
            content = np.empty(N, dtype=K.dtype)
            gated = np.empty(N, dtype=K.dtype)
            u = np.empty(N, dtype=K.dtype)
            v = np.empty(N, dtype=K.dtype)
            d_tilde = np.empty(N, dtype=K.dtype)
            d_gated = np.empty(N, dtype=K.dtype)
            for b in range(B):
                for h in range(H):
                    g, gam, bet = gate[b, h], gamma[b, h], beta[b, h]
                    if from_saved:
                        for i in range(N):
                            content[i] = saved[b, h, i]
                            v[i] = saved[b, h, N + i]
                        vsum = saved[b, h, 2 * N]
                        umax = shift_row(content, g, shift[b, h], previous[b, h], circular,
                                         eps_, gated, u)
                    else:
                        content_row(K[b, h], bet, content)
                        umax = shift_row(content, g, shift[b, h], previous[b, h], circular,
                                         eps_, gated, u)
                        vsum = umax - umax
                        for i in range(N):
                            v[i] = (u[i] / umax) ** gam
                            vsum += v[i]
                    zero = umax - umax
                    gw = zero
                    for i in range(N):
                        gw += G[b, h, i] * v[i]
                    gw /= vsum
                    dgamma = zero
                    for i in range(N):
                        dv = (G[b, h, i] - gw) / vsum
                        dgamma += dv * v[i] * np.log(u[i] / umax)
                        d_tilde[i] = dv * gam * v[i] / u[i]
                    d_gamma[b, h] = dgamma
                    for j in range(N):
                        d_gated[j] = 0
                    for k in range(S):
                        offset = k - half
                        ds = zero
                        for i in range(N):
                            j = source(i, offset, N, circular)
                            if j >= 0:
                                ds += d_tilde[i] * gated[j]
                                d_gated[j] += shift[b, h, k] * d_tilde[i]
                        d_shift[b, h, k] = ds
                    dgate = zero
                    cdc = zero
                    for n in range(N):
                        dgate += (content[n] - previous[b, h, n]) * d_gated[n]
                        d_previous[b, h, n] = (1 - g) * d_gated[n]
                        cdc += content[n] * g * d_gated[n]
                    d_gate[b, h] = dgate
                    dbeta = zero
                    for n in range(N):
                        dz = content[n] * (g * d_gated[n] - cdc)
                        dbeta += dz * K[b, h, n]
                        d_K[b, h, n] = bet * dz
                    d_beta[b, h] = dbeta
            return d_K, d_beta, d_gate, d_shift, d_gamma, d_previous

        if from_saved:
            @numba_basic.numba_njit
            def addressing_grad(K, beta, gate, shift, gamma, previous, saved, G):
                # C-contiguous arrays: the loops index them without strides
                return addressing_grad_contiguous(
                    np.ascontiguousarray(K), np.ascontiguousarray(beta),
                    np.ascontiguousarray(gate), np.ascontiguousarray(shift),
                    np.ascontiguousarray(gamma), np.ascontiguousarray(previous),
                    np.ascontiguousarray(saved), np.ascontiguousarray(G))
        else:
            @numba_basic.numba_njit
            def addressing_grad(K, beta, gate, shift, gamma, previous, G):
                return addressing_grad_contiguous(
                    np.ascontiguousarray(K), np.ascontiguousarray(beta),
                    np.ascontiguousarray(gate), np.ascontiguousarray(shift),
                    np.ascontiguousarray(gamma), np.ascontiguousarray(previous),
                    np.empty((0, 0, 0), dtype=K.dtype), np.ascontiguousarray(G))

        return addressing_grad, SOURCE_VERSION

    return True


_register_numba()
