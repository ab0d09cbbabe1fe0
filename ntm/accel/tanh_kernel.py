r"""The hyperbolic tangent of single-precision arrays in one vectorised loop.

An NTM's heads squash their keys and add vectors with :math:`\tanh`: three small arrays a
time step for the copy model, and three more in the backward step, whose gradient
:math:`\bar y (1 - \tanh^2 x)` computes the tangent again. PyTensor's C code calls the C
library's ``tanhf`` once per value, in a loop that the compiler does not vectorise, which
makes these six small arrays cost as much as a pass over the memory (``docs/performance.md``).
:class:`Tanh` computes the same function with the library's single-precision ``exp`` (inline,
vectorised; :mod:`ntm.accel.addressing_kernels`) in one loop over contiguous values:

.. math::
    \tanh x = \operatorname{sign}(x) \Big(1 - \frac{2}{e^{2 |x|} + 1}\Big)
    \quad (|x| \ge 0.4), \qquad
    \tanh x = x - \frac{x^3}{3} + \frac{2 x^5}{15} - \dots - \frac{929569\, x^{15}}{638512875}
    \quad (|x| < 0.4),

the Taylor series where the first form would lose digits to the subtraction; :math:`2 |x|` is
clamped to 20, where :math:`\tanh` is 1 in single precision. Within 2 ulp of the exact
value over the float range (``tests/accel/test_tanh_kernel.py`` checks it on a million values
and more); ``NaN`` stays ``NaN``. Double precision
calls ``std::tanh``.

Its gradient is :math:`\bar y (1 - y^2)` of the output :math:`y`, not of the input, for a
graph built with the op. :data:`ntm.accel.rewrites.tanh_kernel` puts it in place of
PyTensor's ``tanh`` of float32 arrays in the C backends when a function is compiled, after its
gradient was built: there the gradient's own tangent (PyTensor's, of the input) becomes the
op too, one vectorised loop more.
"""
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply

from .addressing_kernels import C_EXP_LOG
from .memory_kernels import (C_VERSION, _c_contiguous_inputs, _c_pointers, _c_release,
                             _MemoryOp, source_version)

__all__ = ["Tanh"]

_C_TANH = r"""
/* tanh of a single-precision value: the series below 0.4 in magnitude, else
   1 - 2 / (e^{2|x|} + 1) with the sign of x (see ntm.accel.tanh_kernel). Branch-free, so that
   the loop over values is vectorised. */
static inline float ntm_tanhf(float x) {
    const float a = std::fabs(x);
    const float x2 = x * x;
    float p = -929569.0f / 638512875.0f;
    p = p * x2 + 21844.0f / 6081075.0f;
    p = p * x2 - 1382.0f / 155925.0f;
    p = p * x2 + 62.0f / 2835.0f;
    p = p * x2 - 17.0f / 315.0f;
    p = p * x2 + 2.0f / 15.0f;
    p = p * x2 - 1.0f / 3.0f;
    const float series = x + x * x2 * p;
    const float e = ntm_expf(2.0f * (a < 10.0f ? a : 10.0f));
    const float large = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
    const float y = a < 0.4f ? series : large;
    return x != x ? x : y;  /* NaN */
}

template <typename T> static inline T ntm_tanh(T x) { return std::tanh(x); }
template <> inline float ntm_tanh<float>(float x) { return ntm_tanhf(x); }

/* In a function of its own, with restrict-qualified parameters: vectorised. */
template <typename T>
static NTMK_NOINLINE void ntm_tanh_values(const T* __restrict__ x, T* __restrict__ y,
                                          npy_intp size) {
    for (npy_intp i = 0; i < size; ++i) y[i] = ntm_tanh<T>(x[i]);
}
"""


class Tanh(_MemoryOp):
    r"""``Tanh()(x)``: :math:`\tanh x` elementwise, for a float32 or float64 array of any
    shape, in one loop over its values; gradient :math:`\bar y (1 - y^2)` of the output."""

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        if x.type.dtype not in ("float32", "float64"):
            raise TypeError(f"Tanh: expected a float32 or float64 array, got {x.type}")
        return Apply(self, [x], [x.type()])

    def infer_shape(self, *args):
        node, shapes = args[-2:]  # PyTensor 3.0 passes the function graph first
        return [shapes[0]]

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.tanh(inputs[0])

    def pullback(self, inputs, outputs, output_grads):
        (y,), (grad,) = outputs, output_grads
        return [grad * (1 - pt.sqr(y))]

    def c_support_code(self, **kwargs):
        return super().c_support_code(**kwargs) + [C_EXP_LOG, _C_TANH]

    def c_compile_args(self, **kwargs):
        # One loop over values, not split between threads: the arrays are small.
        return ["-fno-math-errno", "-fno-trapping-math"]

    def c_code_cache_version(self):
        return (C_VERSION, source_version(__file__))

    def c_code(self, node, name, inputs, outputs, sub):
        (x,), (y,) = inputs, outputs
        fail = sub["fail"]
        names = {"x": x}
        release = _c_release(names)
        return f"""
        {{
        typedef dtype_{y} T;
        {_c_contiguous_inputs(names, fail, release)}
        if (ntm_prepare_output(&{y}, PyArray_NDIM(c_x), PyArray_DIMS(c_x), c_x) != 0) {{
            {release} {fail}
        }}
        {_c_pointers((("X", "c_x"),), (("Y", y),))}
        ntm_tanh_values<T>(X, Y, PyArray_SIZE(c_x));
        {release}
        }}
        """
