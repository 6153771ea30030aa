"""car_tf.shapes: a dimension stays a Python int while it is known."""

import tensorflow as tf

from car_tf.shapes import dimension


def test_static_dimensions_are_ints_and_unknown_ones_tensors():
    assert dimension(tf.zeros((2, 5, 7, 3)), 2) == 7
    assert isinstance(dimension(tf.zeros((2, 5, 7, 3)), 2), int)

    @tf.function(input_signature=[tf.TensorSpec([None, 5, None, 3], tf.float32)])
    def sizes(images):
        height, width = dimension(images, 1), dimension(images, 2)
        assert height == 5 and isinstance(width, tf.Tensor)
        return width

    assert int(sizes(tf.zeros((1, 5, 9, 3)))) == 9
