"""Any image size through the networks: the size they take, and reflection to get there.

The networks take HR sides that are multiples of size_multiple(scale), at least
min_hr_size(scale). An image of another size is extended at the bottom and right by
mirror reflection (as np.pad / tf.pad "REFLECT", repeated for images smaller than the
padding), run, and its LR result cropped to ceil(H / s) x ceil(W / s). The tiled runner
(car_tf.inference, on numpy arrays) and the exported graphs (car_tf.export, in TF) pad
with these same functions. The module imports no TensorFlow (car_tf.fixed_numpy pads
with it too); the functions that take tensors import it when called.
"""

import math

import numpy as np

# The ResamplerNet reaches H/8 before its trunks upsample back to H/scale.
FEATURE_STRIDE = 8


def size_multiple(scale):
    """HR height and width must be multiples of this: lcm(8, scale)."""
    return math.lcm(FEATURE_STRIDE, int(scale))


def min_hr_size(scale):
    """Smallest HR height/width: the H/8 trunks need 2 pixels to reflection-pad a 3x3 conv."""
    return 2 * size_multiple(scale)


def round_up(value, multiple):
    """The least multiple of `multiple` >= value (a Python int or an int tensor)."""
    return (value + multiple - 1) // multiple * multiple


def padded_size(size, scale):
    """The smallest size >= `size` that the network takes: a multiple of size_multiple(scale),
    at least min_hr_size(scale). `size` is a Python int or an int32 scalar tensor."""
    rounded = round_up(size, size_multiple(scale))
    if isinstance(size, int):
        return max(rounded, min_hr_size(scale))
    import tensorflow as tf

    return tf.maximum(rounded, min_hr_size(scale))


def lr_size(size, scale):
    """LR side for an HR side of any size: ceil(size / scale) (int or int tensor)."""
    return (size + scale - 1) // scale


def reflect_indices(start, end, size):
    """int32 tensor [end - start]: indices into an axis of `size` samples for the positions
    [start, end), extended past the end by mirror reflection.

    Positions past the end mirror about the last sample (size, size + 1, ... read
    size - 2, size - 3, ...; the edge sample is not repeated), back and forth for pads
    longer than the axis; an axis of one sample repeats it. Python ints or int32 scalars.
    """
    import tensorflow as tf

    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(start, end), period)
    return tf.where(index < size, index, period - index)


def reflect_index_array(positions, size):
    """numpy int64 array: reflect_indices' mapping of any integer `positions` (negative
    ones mirror about sample 0 the same way) into an axis of `size` samples, in NumPy."""
    period = max(2 * (size - 1), 1)
    index = np.mod(positions, period)
    return np.where(index < size, index, period - index)
