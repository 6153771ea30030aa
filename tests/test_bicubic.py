"""car_tf.models.bicubic: BicubicUpscaler (shapes, no weights, cubic reproduction, gradients) and
its built-in-ops twin for TFLite."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from car_tf.models import BicubicUpscaler
from car_tf.models.bicubic import bicubic_upscale_builtin


@pytest.mark.parametrize("scale", [2, 4])
def test_shape_and_no_weights(scale):
    layer = BicubicUpscaler(scale)
    sr = layer(tf.zeros((2, 3, 5, 3)))
    assert sr.shape == (2, 3 * scale, 5 * scale, 3)
    assert not layer.weights


def test_constant_image_stays_constant():
    sr = BicubicUpscaler(4)(tf.fill((1, 4, 4, 3), 0.3))
    np.testing.assert_allclose(sr.numpy(), 0.3, atol=1e-6)


def test_linear_ramp_is_reproduced_away_from_the_border():
    # Keys' cubic reproduces linear functions; with half-pixel centres the HR
    # sample at column x sits at LR coordinate (x + 0.5) / s - 0.5.
    scale, width = 2, 10
    ramp = np.tile(np.arange(width, dtype=np.float32) / 10, (4, 1))
    lr = np.repeat(ramp[None, :, :, None], 3, axis=3)
    sr = BicubicUpscaler(scale)(lr).numpy()[0, 0, :, 0]
    x = np.arange(width * scale)
    expected = ((x + 0.5) / scale - 0.5) / 10
    inner = slice(2 * scale, (width - 2) * scale)
    np.testing.assert_allclose(sr[inner], expected[inner], atol=1e-6)


def test_gradient_reaches_the_input():
    lr = tf.random.stateless_uniform((1, 4, 4, 3), seed=(1, 2))
    with tf.GradientTape() as tape:
        tape.watch(lr)
        total = tf.reduce_sum(BicubicUpscaler(2)(lr))
    grad = tape.gradient(total, lr).numpy()
    # Each LR pixel's weights over the HR grid sum to ~scale^2.
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.mean(), 4.0, rtol=1e-5)


def test_dynamic_shape_in_tf_function():
    layer = BicubicUpscaler(2)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def run(lr):
        return layer(lr)

    assert run(tf.zeros((1, 3, 5, 3))).shape == (1, 6, 10, 3)


def test_serialisation_round_trip():
    layer = BicubicUpscaler(4, name="bicubic")
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer), safe_mode=True
    )
    assert isinstance(clone, BicubicUpscaler) and clone.scale == 4


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_upscale_builtin_equals_tf_image_resize(scale):
    lr = tf.constant(np.random.default_rng(1).random((2, 5, 7, 3)), tf.float32)
    expected = tf.image.resize(lr, [5 * scale, 7 * scale], method="bicubic")
    np.testing.assert_allclose(bicubic_upscale_builtin(lr, scale), expected, atol=1e-5)
