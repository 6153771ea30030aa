"""Shared pytest set-up for the car_tf tests."""

import os
import sys

# Quiet TensorFlow's C++ start-up logs; inherited by the subprocesses tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Test helpers (resample_reference, ...) import as plain modules whatever the
# pytest import mode.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
