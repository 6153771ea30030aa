"""car_tf.quantize: 8-bit forward values and the soft-round (eq. 7) gradient."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from car_tf.quantize import Quantize8Bit, quantize_8bit, set_by_clip


def _value_and_grad(x, alpha):
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantize_8bit(x, alpha)
    return y.numpy(), tape.gradient(y, x).numpy()


def test_forward_clips_and_rounds_to_8bit_levels():
    x = [-0.2, 0.0, 0.001, 0.003, 10.4 / 255, 10.6 / 255, 0.5, 1.0, 1.7]
    y, _ = _value_and_grad(x, 0.0)
    expected = np.array([0, 0, 0, 1, 10, 11, 128, 255, 255], np.float32) / 255
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7)


def test_forward_output_is_exactly_on_levels_and_idempotent():
    x = tf.random.stateless_uniform((1000,), seed=(1, 2))
    y = quantize_8bit(x, 0.5)
    np.testing.assert_array_equal(np.round(y.numpy() * 255), y.numpy() * 255)
    np.testing.assert_array_equal(quantize_8bit(y, 0.5).numpy(), y.numpy())
    assert float(tf.reduce_max(tf.abs(y - x))) <= 0.5 / 255 + 1e-7


def test_alpha_zero_is_straight_through_the_rounding():
    _, grad = _value_and_grad([-0.4 / 255, 0.0, 0.2, 100.0 / 255, 1.0, 1.0 + 0.4 / 255], 0.0)
    np.testing.assert_array_equal(grad, np.ones(6, np.float32))


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_no_gradient_where_only_the_clip_decides(alpha):
    # More than half a level outside [0, 1], the value is the clip's; moving x changes nothing.
    _, grad = _value_and_grad([-0.3, -0.6 / 255, 1.0 + 0.6 / 255, 1.3], alpha)
    np.testing.assert_array_equal(grad, np.zeros(4, np.float32))


def test_soft_round_gradient_values():
    # 1 - alpha * cos(2 pi 255 x): 1 - alpha on a level, 1 + alpha half-way,
    # 1 a quarter of a step off.
    x = [100.0 / 255, 100.5 / 255, 100.25 / 255, 0.0]
    _, grad = _value_and_grad(x, 0.5)
    np.testing.assert_allclose(grad, [0.5, 1.5, 1.0, 0.5], atol=1e-3)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 50).astype(np.float32)
    _, grad = _value_and_grad(x, 0.8)
    np.testing.assert_allclose(grad, 1 - 0.8 * np.cos(2 * math.pi * 255 * x), atol=2e-3)


def test_gradient_multiplies_the_upstream_gradient():
    x = tf.constant([100.5 / 255, 7.0 / 255])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(quantize_8bit(x, 1.0) * tf.constant([3.0, 5.0]))
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [6.0, 0.0], atol=1e-3)


def test_works_in_tf_function():
    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantize_8bit(x, 0.5)
        return y, tape.gradient(y, x)

    y, grad = run(tf.constant([100.0 / 255]))
    assert y.numpy()[0] == pytest.approx(100.0 / 255)
    assert grad.numpy()[0] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="quantize_alpha must be in"):
        quantize_8bit(tf.zeros(1), alpha)


def test_layer_serialises():
    layer = Quantize8Bit(0.25, name="quantizer")
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer), safe_mode=True
    )
    assert clone.alpha == 0.25
    x = tf.constant([[0.1234, 0.5]])
    np.testing.assert_array_equal(clone(x).numpy(), quantize_8bit(x).numpy())


def test_set_by_clip_marks_values_more_than_half_a_level_outside():
    x = tf.constant([-0.6 / 255, -0.4 / 255, 0.5, 1.0 + 0.4 / 255, 1.0 + 0.6 / 255])
    np.testing.assert_array_equal(set_by_clip(x).numpy(), [True, False, False, False, True])
