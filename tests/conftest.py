"""Test configuration.

The suite compiles many small graphs, so it uses a mode that compiles quickly
(``NTM_TEST_MODE``, default ``FAST_COMPILE``); ``tests/test_modes.py`` and
``tests/ntm/test_rewrites.py`` check Numba and the C backend (the default) on the NTM.
Compiled functions are not kept on disk (``NTM_FUNCTION_CACHE=off``) except where
``tests/test_function_cache.py`` points the cache at a temporary directory.
"""
import os

import pytensor

pytensor.config.mode = os.environ.get("NTM_TEST_MODE", "FAST_COMPILE")
os.environ["NTM_FUNCTION_CACHE"] = "off"
