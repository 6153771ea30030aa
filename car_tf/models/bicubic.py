"""Differentiable bicubic upscaling: the weight-free alternative SR module."""

import math

import keras
import tensorflow as tf

from car_tf.models.receptive_field import network_reach
from car_tf.shapes import dimension

# Keys' cubic convolution coefficient, the one tf.image.resize(method="bicubic") uses.
_KEYS_A = -0.5
# Keys' cubic reaches two samples either side of a sample position.
CUBIC_REACH = 2


@keras.saving.register_keras_serializable(package="car_tf")
class BicubicUpscaler(keras.layers.Layer):
    """LR [N, h, w, C] -> [N, h*scale, w*scale, C] by tf.image.resize(method="bicubic").

    Half-pixel centres (TF2's resize), matching the pixel projection of the
    downscaler (paper eq. 1); Keys' cubic with a = -0.5. No antialiasing is
    needed when enlarging. The output is not clipped: bicubic overshoots near
    edges, and clipping would cut the gradient there during training.
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        if self.scale < 1:
            raise ValueError(f"BicubicUpscaler scale must be >= 1, got {scale}")

    def call(self, lr):
        height, width = dimension(lr, 1), dimension(lr, 2)
        return tf.image.resize(lr, [height * self.scale, width * self.scale], method="bicubic")

    def input_interval(self, start, end):
        """LR interval that the SR interval [start, end) reads: output pixel x samples
        LR position (x + 0.5) / s - 0.5 with taps floor(.) - 1 .. floor(.) + 2."""
        start = math.floor((start + 0.5) / self.scale - 0.5) - (CUBIC_REACH - 1)
        end = math.floor((end - 0.5) / self.scale - 0.5) + CUBIC_REACH + 1
        return start, end

    def reach(self):
        """LR pixels of context each side that the SR pixels of one LR pixel depend on."""
        return network_reach([self], self.scale, 1)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        s = self.scale
        return (n, None if h is None else h * s, None if w is None else w * s, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _cubic_weight(distance):
    """Keys' cubic kernel (a = -0.5) at |distance| < 2."""
    d = tf.abs(distance)
    near = ((_KEYS_A + 2.0) * d - (_KEYS_A + 3.0)) * d * d + 1.0
    far = ((_KEYS_A * d - 5.0 * _KEYS_A) * d + 8.0 * _KEYS_A) * d - 4.0 * _KEYS_A
    return tf.where(d <= 1.0, near, far)


def _bicubic_along(images, axis, scale):
    """Bicubic enlargement by an integer `scale` along one spatial axis (1 or 2).

    Half-pixel centres; taps outside the image get weight 0 and the others are
    renormalised, as TF's ResizeBicubic kernel does with half_pixel_centers.
    """
    size = dimension(images, axis)
    position = (tf.cast(tf.range(size * scale), tf.float32) + 0.5) / scale - 0.5
    base = tf.floor(position)
    fraction = position - base
    base = tf.cast(base, tf.int32)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    weighted, total = [], 0.0
    for tap in (-1, 0, 1, 2):
        index = base + tap
        inside = tf.logical_and(index >= 0, index < size)
        weight = tf.where(inside, _cubic_weight(fraction - tap), 0.0)
        total += weight
        taken = tf.gather(images, tf.clip_by_value(index, 0, size - 1), axis=axis)
        weighted.append((weight, taken))
    return tf.add_n([taken * tf.reshape(weight / total, shape) for weight, taken in weighted])


def bicubic_upscale_builtin(lr, scale):
    """lr float32 [N, h, w, C] -> [N, h*scale, w*scale, C], equal (to float round-off) to
    tf.image.resize(method="bicubic"), from gather and arithmetic only: TFLite has no
    bicubic resize op."""
    return _bicubic_along(_bicubic_along(lr, 1, scale), 2, scale)
