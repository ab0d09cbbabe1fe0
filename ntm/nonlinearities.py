r"""Nonlinearities used by the NTM heads, beside those of :mod:`ntm.lasagne.nonlinearities`."""
import pytensor.tensor as pt

from .lasagne.nonlinearities import hard_sigmoid

__all__ = ["ClippedLinear", "hard_sigmoid", "one_plus_softplus"]


class ClippedLinear:
    r"""The identity clipped to :math:`[\mathrm{low}, \mathrm{high}]`.

    Parameters
    ----------
    low, high : float or None
        The bounds; ``None`` leaves that side open.
    """

    def __init__(self, low=0.0, high=1.0):
        if low is not None and high is not None and low > high:
            raise ValueError(f"ClippedLinear needs low <= high, got low={low}, high={high}")
        self.low, self.high = low, high

    def __call__(self, x):
        if self.low is not None:
            x = pt.maximum(x, self.low)
        if self.high is not None:
            x = pt.minimum(x, self.high)
        return x

    def __repr__(self):
        return f"ClippedLinear(low={self.low}, high={self.high})"


def one_plus_softplus(x):
    r""":math:`1 + \log(1 + e^x)`, a smooth map onto :math:`(1, \infty)` for the sharpening
    exponent :math:`\gamma \geq 1`."""
    return 1.0 + pt.softplus(x)
