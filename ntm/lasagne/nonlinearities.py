r"""Nonlinearities (activation functions) for the layers, as in ``lasagne.nonlinearities``."""
import numpy as np
import pytensor.tensor as pt

__all__ = ["sigmoid", "softmax", "tanh", "ScaledTanH", "ScaledTanh", "rectify",
           "LeakyRectify", "leaky_rectify", "very_leaky_rectify", "elu", "SELU", "selu",
           "softplus", "linear", "identity", "hard_sigmoid"]


def sigmoid(x):
    r""":math:`\sigma(x) = 1 / (1 + e^{-x})`."""
    return pt.sigmoid(x)


def softmax(x):
    r""":math:`\varphi(x)_j = e^{x_j} / \sum_k e^{x_k}` over the last axis."""
    return pt.special.softmax(x, axis=-1)


def tanh(x):
    r""":math:`\tanh(x)`."""
    return pt.tanh(x)


class ScaledTanH:
    r""":math:`\varphi(x) = b \tanh(a x)`.

    Parameters
    ----------
    scale_in, scale_out : float
        :math:`a` and :math:`b` (LeCun's choice is 2/3 and 1.7159).
    """

    def __init__(self, scale_in=1.0, scale_out=1.0):
        self.scale_in, self.scale_out = scale_in, scale_out

    def __call__(self, x):
        return self.scale_out * pt.tanh(self.scale_in * x)


ScaledTanh = ScaledTanH


def rectify(x):
    r""":math:`\max(0, x)` (a NumPy array for a NumPy array, as in Lasagne)."""
    if isinstance(x, np.ndarray):
        return np.maximum(x, 0)
    return pt.maximum(x, 0.0)


class LeakyRectify:
    r""":math:`\varphi(x) = x` for :math:`x > 0`, :math:`\alpha x` otherwise.

    Parameters
    ----------
    leakiness : float
        The slope :math:`\alpha` for negative inputs (default 0.01).
    """

    def __init__(self, leakiness=0.01):
        self.leakiness = leakiness

    def __call__(self, x):
        if isinstance(x, np.ndarray):  # a NumPy array for a NumPy array, as rectify
            return np.where(x > 0, x, self.leakiness * x)
        return pt.switch(x > 0, x, self.leakiness * x)


leaky_rectify = LeakyRectify(0.01)
very_leaky_rectify = LeakyRectify(1.0 / 3)


def elu(x):
    r""":math:`x` for :math:`x > 0`, :math:`e^x - 1` otherwise (Clevert et al., 2015)."""
    return pt.switch(x > 0, x, pt.expm1(x))


class SELU:
    r""":math:`\lambda x` for :math:`x > 0`, :math:`\lambda\alpha(e^x - 1)` otherwise.

    Parameters
    ----------
    scale, scale_neg : float
        :math:`\lambda` and :math:`\alpha` (default 1 each, as in Lasagne; :data:`selu` uses
        the self-normalising values of Klambauer et al., 2017).
    """

    def __init__(self, scale=1, scale_neg=1):
        self.scale, self.scale_neg = scale, scale_neg

    def __call__(self, x):
        return self.scale * pt.switch(x > 0, x, self.scale_neg * pt.expm1(x))


selu = SELU(scale=1.0507009873554804934193349852946,
            scale_neg=1.6732632423543772848170429916717)


def softplus(x):
    r""":math:`\log(1 + e^x)`."""
    return pt.softplus(x)


def linear(x):
    r"""The identity, :math:`\varphi(x) = x`."""
    return x


identity = linear


def hard_sigmoid(x):
    r"""Piecewise-linear sigmoid, :math:`\min(1, \max(0, 0.2 x + 0.5))`."""
    return pt.clip(0.2 * x + 0.5, 0.0, 1.0)
