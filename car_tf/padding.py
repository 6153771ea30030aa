"""Any image size through the networks: the size they take, and reflection to get there.

The networks take HR sides that are multiples of size_multiple(scale), at least
min_hr_size(scale). An image of another size is extended at the bottom and right by
mirror reflection (as np.pad / tf.pad "REFLECT", repeated for images smaller than the
padding), run, and its LR result cropped to ceil(H / s) x ceil(W / s). The tiled runner
(car_tf.inference, on numpy arrays) and the exported graphs (car_tf.export, in TF) pad
with these same functions.
"""

import tensorflow as tf

from car_tf.models.resampler_net import min_hr_size, size_multiple


def round_up(value, multiple):
    """The least multiple of `multiple` >= value (a Python int or an int tensor)."""
    return (value + multiple - 1) // multiple * multiple


def padded_size(size, scale):
    """The smallest size >= `size` that the network takes: a multiple of size_multiple(scale),
    at least min_hr_size(scale). `size` is a Python int or an int32 scalar tensor."""
    rounded = round_up(size, size_multiple(scale))
    if isinstance(size, int):
        return max(rounded, min_hr_size(scale))
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
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(start, end), period)
    return tf.where(index < size, index, period - index)
