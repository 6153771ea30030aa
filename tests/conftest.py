"""Shared pytest set-up for the car_tf tests."""

import os
import sys

import pytest

# Quiet TensorFlow's C++ start-up logs; inherited by the subprocesses tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Test helpers (resample_reference, ...) import as plain modules whatever the
# pytest import mode.
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture
def local_path_calls(monkeypatch):
    """The scale of every run of the composite resampler's local fast path, as a list that
    grows as it runs (an eager tf.cond calls only the branch it takes)."""
    from car_tf.ops import composite

    calls = []
    local = composite._resample_local

    def counted(*args):
        calls.append(args[-1])
        return local(*args)

    monkeypatch.setattr(composite, "_resample_local", counted)
    return calls
