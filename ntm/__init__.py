"""Neural Turing Machines on PyTensor, as Lasagne-style layers.

The NTM (Graves, Wayne & Danihelka, 2014) is built from a :class:`~ntm.memory.Memory`, a
controller from :mod:`ntm.controllers`, read and write heads from :mod:`ntm.heads`, and run
over a sequence by :class:`~ntm.layers.NTMLayer`. :mod:`ntm.lasagne` provides Lasagne's layer
API on PyTensor for the rest of the network. The model is plain PyTensor; :mod:`ntm.accel`
makes it fast, when asked (:func:`ntm.accel.accelerated`). Importing :mod:`ntm` changes
nothing in PyTensor.
"""
__version__ = "0.1.0"
