"""Lasagne's public API on PyTensor.

Code written for Lasagne ports by changing ``import lasagne`` to
``from ntm import lasagne`` (and ``theano`` to ``pytensor``)::

    from ntm import lasagne
    l_in = lasagne.layers.InputLayer((None, 10))
    l_out = lasagne.layers.DenseLayer(l_in, 2, nonlinearity=lasagne.nonlinearities.softmax)
"""
from . import init, layers, nonlinearities, random, theano_extensions, utils  # noqa: F401

__all__ = ["init", "layers", "nonlinearities", "objectives", "random", "regularization",
           "theano_extensions", "updates", "utils"]


def __getattr__(name):
    # objectives, updates and regularization import lazily so that ``ntm.lasagne`` stays light.
    if name in ("objectives", "updates", "regularization"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
