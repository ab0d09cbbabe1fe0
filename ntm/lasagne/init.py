r"""Parameter initializers: callables that return an array of a requested shape.

Every initializer draws from :func:`ntm.lasagne.random.get_rng`, so ``set_rng`` makes a
network's initial parameters reproducible. For the fan-based schemes, a weight of shape
``(n_in, n_out, k1, k2, ...)`` has a receptive field of :math:`\prod k_i` and

.. math::
    \mathrm{fan_{in}} = n_{in} \prod k_i, \qquad \mathrm{fan_{out}} = n_{out} \prod k_i .
"""
import numpy as np

from .random import get_rng
from .utils import floatX

__all__ = ["Initializer", "Normal", "Uniform", "Glorot", "GlorotNormal", "GlorotUniform",
           "He", "HeNormal", "HeUniform", "Constant", "Sparse", "Orthogonal"]


def _check_shape(shape, minimum_ndim=1, who="initializer"):
    shape = tuple(shape)
    if len(shape) < minimum_ndim:
        # RuntimeError, as Lasagne raises
        raise RuntimeError(f"{who} needs a shape with at least {minimum_ndim} dimensions, "
                           f"got {shape}")
    return shape


def _gain(gain):
    """Numeric gain; ``'relu'`` means :math:`\\sqrt 2`."""
    if gain == "relu":
        return np.sqrt(2.0)
    return float(gain)


class Initializer:
    """Base class: subclasses implement :meth:`sample`; calling the object samples."""

    def __call__(self, shape):
        return self.sample(shape)

    def sample(self, shape):
        """Return an array of ``shape`` drawn from this initializer."""
        raise NotImplementedError()


class Normal(Initializer):
    r"""Samples :math:`\mathcal N(\mathrm{mean}, \mathrm{std}^2)`.

    Parameters
    ----------
    std : float
        Standard deviation (default 0.01).
    mean : float
        Mean (default 0).
    """

    def __init__(self, std=0.01, mean=0.0):
        self.std, self.mean = std, mean

    def sample(self, shape):
        return floatX(get_rng().normal(self.mean, self.std, size=shape))


class Uniform(Initializer):
    r"""Samples :math:`U[a, b)`.

    Parameters
    ----------
    range : float or tuple of float
        ``r`` gives :math:`[-r, r)`; a pair gives :math:`[a, b)`. Ignored when ``std`` is set.
    std : float, optional
        If set, the interval is :math:`\mathrm{mean} \pm \sqrt 3\,\mathrm{std}`, whose standard
        deviation is ``std``.
    mean : float
        Centre of the interval when ``std`` is set.
    """

    def __init__(self, range=0.01, std=None, mean=0.0):
        if std is not None:
            a, b = mean - np.sqrt(3) * std, mean + np.sqrt(3) * std
        else:
            try:
                a, b = range
            except TypeError:
                a, b = -range, range
        self.range = (a, b)

    def sample(self, shape):
        return floatX(get_rng().uniform(low=self.range[0], high=self.range[1], size=shape))


class Glorot(Initializer):
    r"""Glorot & Bengio (2010) scaling: :math:`\sigma = g \sqrt{2 / (\mathrm{fan_{in}} +
    \mathrm{fan_{out}})}`, with the fans defined in the module docstring.

    Parameters
    ----------
    initializer : class
        :class:`Normal` or :class:`Uniform` (called with ``std=sigma``).
    gain : float or 'relu'
        Scale factor :math:`g`; ``'relu'`` is :math:`\sqrt 2`.
    c01b : bool
        For 4D weights laid out ``(channels, rows, columns, batch)``: the fans are then
        ``shape[0] * k`` and ``shape[3] * k`` with ``k = shape[1] * shape[2]``.
    """

    def __init__(self, initializer, gain=1.0, c01b=False):
        self.initializer, self.gain, self.c01b = initializer, _gain(gain), c01b

    def sample(self, shape):
        if self.c01b:
            shape = tuple(shape)
            if len(shape) != 4:
                raise RuntimeError(f"If c01b is True, only shapes of length 4 are accepted, "
                                   f"got {shape}")
            n1, n2 = shape[0], shape[3]
            receptive_field = shape[1] * shape[2]
        else:
            shape = _check_shape(shape, 2, "Glorot")
            n1, n2 = shape[:2]
            receptive_field = int(np.prod(shape[2:]))
        std = self.gain * np.sqrt(2.0 / ((n1 + n2) * receptive_field))
        return self.initializer(std=std).sample(shape)


class GlorotNormal(Glorot):
    """:class:`Glorot` with normal samples."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Normal, gain, c01b)


class GlorotUniform(Glorot):
    r""":class:`Glorot` with uniform samples: :math:`U[-a, a)`, :math:`a = g\sqrt{6 /
    (\mathrm{fan_{in}} + \mathrm{fan_{out}})}`."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Uniform, gain, c01b)


class He(Initializer):
    r"""He et al. (2015) scaling: :math:`\sigma = g \sqrt{1 / \mathrm{fan_{in}}}`, where
    :math:`\mathrm{fan_{in}}` is ``shape[0]`` for matrices and ``prod(shape[1:])`` for more
    dimensions (``prod(shape[:3])`` with ``c01b``).

    Parameters
    ----------
    initializer : class
        :class:`Normal` or :class:`Uniform`.
    gain : float or 'relu'
        Scale factor :math:`g`.
    c01b : bool
        Use the ``(channels, rows, columns, batch)`` layout for 4D weights.
    """

    def __init__(self, initializer, gain=1.0, c01b=False):
        self.initializer, self.gain, self.c01b = initializer, _gain(gain), c01b

    def sample(self, shape):
        if self.c01b:
            shape = tuple(shape)
            if len(shape) != 4:
                raise RuntimeError(f"If c01b is True, only shapes of length 4 are accepted, "
                                   f"got {shape}")
            fan_in = int(np.prod(shape[:3]))
        else:
            shape = _check_shape(shape, 2, "He")
            fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
        std = self.gain * np.sqrt(1.0 / fan_in)
        return self.initializer(std=std).sample(shape)


class HeNormal(He):
    """:class:`He` with normal samples."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Normal, gain, c01b)


class HeUniform(He):
    """:class:`He` with uniform samples."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Uniform, gain, c01b)


class Constant(Initializer):
    """Every entry equal to ``val`` (default 0)."""

    def __init__(self, val=0.0):
        self.val = val

    def sample(self, shape):
        return floatX(np.ones(shape) * self.val)


class Sparse(Initializer):
    """A matrix with ``sparsity`` of each column's entries non-zero, drawn from
    :math:`\\mathcal N(0, \\mathrm{std}^2)`; the rest are zero."""

    def __init__(self, sparsity=0.1, std=0.01):
        self.sparsity, self.std = sparsity, std

    def sample(self, shape):
        shape = tuple(shape)
        if len(shape) != 2:
            raise RuntimeError(f"Sparse initializer only works with 2D shapes, got {shape}")
        w = floatX(np.zeros(shape))
        n_inputs, n_outputs = shape
        size = int(self.sparsity * n_inputs)
        rng = get_rng()
        for k in range(n_outputs):
            idx = rng.permutation(n_inputs)[:size]
            w[idx, k] = floatX(rng.normal(0.0, self.std, size=size))
        return w


class Orthogonal(Initializer):
    r"""A (semi-)orthogonal matrix, times ``gain`` (Saxe et al., 2013).

    A normal matrix of shape ``(shape[0], prod(shape[1:]))`` is decomposed by SVD,
    :math:`A = U S V^T`; whichever of :math:`U`, :math:`V^T` has that shape is returned,
    reshaped to ``shape``. Its rows (or columns) are orthonormal.
    """

    def __init__(self, gain=1.0):
        self.gain = _gain(gain)

    def sample(self, shape):
        shape = _check_shape(shape, 2, "Orthogonal")
        flat_shape = (shape[0], int(np.prod(shape[1:])))
        a = get_rng().normal(0.0, 1.0, flat_shape)
        u, _, vt = np.linalg.svd(a, full_matrices=False)
        q = u if u.shape == flat_shape else vt
        return floatX(self.gain * q.reshape(shape))
