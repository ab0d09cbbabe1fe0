"""A small NTM (memory 8 x 4, dense controller of 10 units) that several tests compile."""
import numpy as np
import pytensor

from ntm.controllers import DenseController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import layers
from ntm.lasagne.random import set_rng
from ntm.layers import NTMLayer
from ntm.memory import Memory

__all__ = ["small_ntm", "binary_sequences"]


def small_ntm(seed=3, input_size=3, memory_shape=(8, 4)):
    """``(l_input, l_ntm)``: one write and one read head of 3 shifts, parameters from ``seed``."""
    set_rng(np.random.RandomState(seed))
    l_input = layers.InputLayer((None, None, input_size))
    controller = DenseController(l_input, memory_shape, 10, num_reads=1)
    heads = [WriteHead(controller, 3, memory_shape), ReadHead(controller, 3, memory_shape)]
    return l_input, NTMLayer(l_input, Memory(memory_shape), controller, heads)


def binary_sequences(shape=(2, 6, 3), seed=0):
    """Random 0/1 inputs of ``shape`` in PyTensor's float type."""
    return np.random.RandomState(seed).randint(0, 2, shape).astype(pytensor.config.floatX)
