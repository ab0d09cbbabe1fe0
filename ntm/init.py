"""Initializers specific to the NTM: focused initial head weightings."""
import numpy as np

from .lasagne.init import Initializer
from .lasagne.utils import floatX

__all__ = ["OneHot", "EquiProba"]


class OneHot(Initializer):
    r"""A weighting focused on one memory location: :math:`w_0[i] = [i = \mathrm{position}]`.

    With a constant memory initialisation every row of the memory starts identical; a focused
    (not uniform) initial weighting is what lets the first writes make rows differ, so that
    content addressing can later tell them apart.

    Parameters
    ----------
    position : int
        The focused location (default 0). Negative values count from the end.
    """

    def __init__(self, position=0):
        self.position = position

    def sample(self, shape):
        shape = tuple(shape)
        if not shape or not -shape[-1] <= self.position < shape[-1]:
            raise ValueError(f"OneHot position {self.position} is out of range for shape {shape}")
        weights = np.zeros(shape)
        weights[..., self.position] = 1.0
        return floatX(weights)


class EquiProba(Initializer):
    r"""The uniform weighting :math:`w_0[i] = 1 / N` over the last axis (size :math:`N`)."""

    def sample(self, shape):
        shape = tuple(shape)
        return floatX(np.full(shape, 1.0 / shape[-1]))
