"""Numba computes what the test mode computes."""
import numpy as np
import pytensor

from ntm.controllers import DenseController
from ntm.heads import ReadHead, WriteHead
from ntm.lasagne import layers
from ntm.lasagne.random import set_rng
from ntm.layers import NTMLayer
from ntm.memory import Memory


def test_numba_forward_matches_test_mode():
    set_rng(np.random.RandomState(3))
    memory_shape = (8, 4)
    l_input = layers.InputLayer((None, None, 3))
    controller = DenseController(l_input, memory_shape, 10, num_reads=1)
    heads = [WriteHead(controller, 3, memory_shape), ReadHead(controller, 3, memory_shape)]
    l_ntm = NTMLayer(l_input, Memory(memory_shape), controller, heads)
    details = layers.get_output(l_ntm, get_details=True)
    x = np.random.RandomState(0).randint(0, 2, (2, 6, 3)).astype(pytensor.config.floatX)
    reference = pytensor.function([l_input.input_var], details)(x)
    numba = pytensor.function([l_input.input_var], details, mode="NUMBA")(x)
    for expected, actual in zip(reference, numba):
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
