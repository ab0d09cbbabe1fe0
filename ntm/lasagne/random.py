"""The random state shared by every initializer, settable for reproducible runs."""
import numpy as np

__all__ = ["get_rng", "set_rng"]

_rng = np.random


def get_rng():
    """The random state that initializers draw from: the one last given to :func:`set_rng`, or
    the ``numpy.random`` module itself until then (so ``np.random.seed`` also makes the initial
    parameters reproducible, as in Lasagne)."""
    return _rng


def set_rng(new_rng):
    """Replace the random state, e.g. ``set_rng(np.random.RandomState(42))`` before building a
    network so that its initial parameters are reproducible.

    Parameters
    ----------
    new_rng : numpy.random.RandomState or int
        A random state (anything with RandomState's methods, such as the ``numpy.random``
        module), or an integer seed for a new one.
    """
    global _rng
    if isinstance(new_rng, (int, np.integer)):
        new_rng = np.random.RandomState(int(new_rng))
    if not all(hasattr(new_rng, m) for m in ("normal", "uniform", "permutation", "randint")):
        raise TypeError(f"new_rng must be a numpy.random.RandomState or an int seed, got {new_rng!r}")
    _rng = new_rng
