"""8-bit quantisation of the downscaled image, with a soft-round gradient.

The LR image leaves the model as 8-bit pixels, so training quantises it too.
Rounding has zero gradient almost everywhere; the backward pass instead uses
the derivative of the soft round of paper eq. 7 (Nakanishi et al.),
round_soft(v) = v - alpha * sin(2*pi*v) / (2*pi) with v = 255 x, whose slope
with respect to x is 1 - alpha * cos(2*pi*255*x). alpha = 0 is the
straight-through estimator; alpha in (0, 1] makes the gradient smaller near
the 8-bit levels and larger between them. Values that only the clip to [0, 1]
brings onto a level (more than half a level outside) get gradient 0, the
clip's own derivative: with signed kernels about 1% of LR values land there,
and a gradient through the clip would push them further out for nothing.
"""

import math

import keras
import tensorflow as tf

LEVELS = 255.0


def _check_alpha(alpha):
    alpha = float(alpha)
    # Outside [0, 1] the soft round is no longer monotonic: its slope goes negative.
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"quantize_alpha must be in [0, 1], got {alpha}")
    return alpha


def set_by_clip(x):
    """Boolean mask: where x is more than half a level outside [0, 1], so that the clip,
    not the rounding, sets its 8-bit value."""
    half_level = 0.5 / LEVELS
    return tf.logical_or(x < -half_level, x > 1.0 + half_level)


def quantize_8bit(x, alpha=0.0):
    """round(255 * clip(x, 0, 1)) / 255, with gradient 1 - alpha * cos(2*pi*255*x).

    Args:
      x: float tensor, any shape; values in [0, 1] are kept, others clipped.
      alpha: soft-round strength in [0, 1] (Python float); 0 = straight-through.

    Returns:
      A tensor of x's shape and dtype on the 256 levels k/255. The gradient is
      0 where x is more than half a level outside [0, 1] (there the clip, not the
      rounding, decides the value); positive kernels never get there.
    """
    alpha = _check_alpha(alpha)

    @tf.custom_gradient
    def _quantize(values):
        levels = tf.cast(LEVELS, values.dtype)
        quantized = tf.round(tf.clip_by_value(values, 0.0, 1.0) * levels) / levels

        def grad(upstream):
            upstream = tf.where(set_by_clip(values), tf.zeros_like(upstream), upstream)
            if alpha == 0.0:
                return upstream
            phase = tf.cast(2.0 * math.pi * LEVELS, values.dtype) * values
            return upstream * (1.0 - tf.cast(alpha, values.dtype) * tf.cos(phase))

        return quantized, grad

    return _quantize(tf.convert_to_tensor(x))


@keras.saving.register_keras_serializable(package="car_tf")
class Quantize8Bit(keras.layers.Layer):
    """Layer form of quantize_8bit: float [0, 1] -> the same shape on 8-bit levels."""

    def __init__(self, alpha=0.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _check_alpha(alpha)

    def call(self, inputs):
        return quantize_8bit(inputs, self.alpha)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
