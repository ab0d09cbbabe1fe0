"""Graph building blocks that Lasagne's layers need and PyTensor does not provide by name:
zero padding (:mod:`.padding`) and convolutions as an im2col plus a matrix product
(:mod:`.conv`)."""
from . import conv, padding  # noqa: F401

__all__ = ["conv", "padding"]
