"""Neural Turing Machines on PyTensor, as Lasagne-style layers.

The NTM (Graves, Wayne & Danihelka, 2014) is built from a :class:`~ntm.memory.Memory`, a
controller from :mod:`ntm.controllers`, read and write heads from :mod:`ntm.heads`, and run
over a sequence by :class:`~ntm.layers.NTMLayer`. :mod:`ntm.lasagne` provides Lasagne's layer
API on PyTensor for the rest of the network.
"""
__version__ = "0.1.0"

from . import blas  # noqa: E402  (PyTensor's C code linked to SciPy's OpenBLAS)

blas.link_scipy_openblas()

from . import scan_gradient  # noqa: E402,F401  (builds scan gradients without duplicated graphs)
from . import rewrites  # noqa: E402,F401  (softmax compiled as C code in the C backend)
