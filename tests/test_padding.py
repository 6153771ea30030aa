"""car_tf.padding: the size the networks take and the reflection that gets an image there."""

import numpy as np
import pytest
import tensorflow as tf

from car_tf.padding import lr_size, padded_size, reflect_indices


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 16])
def test_reflect_indices_match_numpy_reflect_padding(size):
    # np.pad "reflect" also keeps reflecting back and forth when the pad exceeds the size.
    for new_size in range(size, 3 * size + 12):
        expected = np.pad(np.arange(size), (0, new_size - size), mode="reflect")
        np.testing.assert_array_equal(reflect_indices(0, new_size, size).numpy(), expected)
        # A window that starts inside the axis (a tile) reads the same indices.
        start = size // 2
        np.testing.assert_array_equal(reflect_indices(start, new_size, size).numpy(),
                                      expected[start:])


def test_reflect_indices_in_a_graph_with_run_time_sizes():
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def indices(size, new_size):
        return reflect_indices(0, new_size, size)

    np.testing.assert_array_equal(indices(5, 12).numpy(), [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3])


def test_padded_size_is_the_smallest_size_the_network_takes():
    assert [padded_size(n, 2) for n in (1, 16, 17, 24, 25)] == [16, 16, 24, 24, 32]
    assert padded_size(tf.constant(17), 4).numpy() == 24


def test_lr_size_rounds_up():
    assert [lr_size(n, 4) for n in (1, 4, 5, 8)] == [1, 1, 2, 2]
    assert lr_size(tf.constant(9), 2).numpy() == 5
