"""Numba computes what the test mode computes."""
import numpy as np
import pytensor

from ntm.lasagne import layers
from tests.small_ntm import binary_sequences, small_ntm


def test_numba_forward_matches_test_mode():
    l_input, l_ntm = small_ntm()
    details = layers.get_output(l_ntm, get_details=True)
    x = binary_sequences()
    reference = pytensor.function([l_input.input_var], details)(x)
    numba = pytensor.function([l_input.input_var], details, mode="NUMBA")(x)
    for expected, actual in zip(reference, numba):
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
