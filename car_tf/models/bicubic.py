"""Differentiable bicubic upscaling: the weight-free alternative SR module."""

import keras
import tensorflow as tf


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
        height = lr.shape[1] if lr.shape[1] is not None else tf.shape(lr)[1]
        width = lr.shape[2] if lr.shape[2] is not None else tf.shape(lr)[2]
        return tf.image.resize(lr, [height * self.scale, width * self.scale], method="bicubic")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        s = self.scale
        return (n, None if h is None else h * s, None if w is None else w * s, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
