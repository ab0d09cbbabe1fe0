"""Test configuration.

The suite compiles many small graphs, so it uses a mode that compiles quickly
(``NTM_TEST_MODE``, default ``FAST_COMPILE``); ``tests/test_modes.py`` exercises the mode users
get by default (Numba) on the NTM explicitly.
"""
import os

import pytensor

pytensor.config.mode = os.environ.get("NTM_TEST_MODE", "FAST_COMPILE")


