"""Minimal reproduction: PyTensor's JAX backend cannot run the gradient of a ``scan`` over a
sequence whose length is known only when the function is called (as every training
sequence's is).

    pip install jax
    python docs/upstream/jax_scan_gradient.py

With PyTensor 3.3.7 and JAX 0.10 the forward scan runs, but its gradient fails with
``TypeError: Shapes must be 1D sequences of concrete values of integer type, got
(JitTracer(~int64[]), 3, 3)``: the backward scan allocates its buffers with the sequence's
length, which JAX traces as a value rather than a constant. This is why the NTM trains with
the C and Numba backends only; its forward pass (evaluation) runs in JAX.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt


def main():
    x = pt.matrix("x")  # (time, features)
    w = pytensor.shared(np.full((3, 3), 0.5))
    h = pytensor.scan(lambda x_t, h: pt.tanh(x_t + h @ w), sequences=[x],
                      outputs_info=[pt.zeros(3)], return_updates=False)
    forward = pytensor.function([x], h[-1].sum(), mode="JAX")
    print("forward:", forward(np.ones((5, 3))))
    gradient = pytensor.function([x], pytensor.grad(h[-1].sum(), w), mode="JAX")
    print("gradient:", gradient(np.ones((5, 3))))


if __name__ == "__main__":
    main()
