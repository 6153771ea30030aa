"""car_tf.protocol: the SR protocol's helpers."""

import numpy as np
import tensorflow as tf

from car_tf import protocol


def test_bicubic_downscale_is_antialiased_and_on_8_bit_levels():
    hr = tf.random.stateless_uniform([1, 32, 32, 3], seed=[3, 4])
    lr = protocol.bicubic_downscale(hr, 4).numpy()
    assert lr.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    # Antialiasing averages ~4x4 HR pixels: far smoother than point sampling.
    assert lr.std() < 0.6 * hr.numpy().std()


def test_the_uint8_edge_is_the_float_downscale():
    hr = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    lr = protocol.bicubic_downscale_uint8(hr, 2)
    assert lr.dtype == np.uint8 and lr.shape == (12, 20, 3)
    expected = protocol.bicubic_downscale(tf.constant(hr[None], tf.float32) / 255.0, 2)
    np.testing.assert_array_equal(lr, np.round(expected.numpy()[0] * 255).astype(np.uint8))
