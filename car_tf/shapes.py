"""Tensor dimensions that stay Python ints when they are known.

A static size keeps graphs simple (TFLite needs fixed shapes, and a known size lets
a padding that isn't needed be left out); an unknown one becomes a run-time scalar.
"""

import tensorflow as tf


def dimension(tensor, axis):
    """tensor.shape[axis] as a Python int when static, else an int32 scalar tensor."""
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]
