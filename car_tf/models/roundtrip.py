"""The methods every downscale-then-upscale model shares (CARModel, FixedKernelModel).

A subclass provides `downscale_outputs(hr)` (a dict with the quantised "lr") and an
`upscaler` layer; this mixin turns them into call, downscale, upscale and the uint8
forms the CLI, evaluation and exports use.
"""

import tensorflow as tf


def check_rgb_batch(tensor, name):
    """Raises ValueError unless `tensor` has shape [N, H, W, 3] (unknown sizes pass)."""
    shape = tuple(tensor.shape)
    if len(shape) != 4 or (shape[3] is not None and shape[3] != 3):
        raise ValueError(f"{name} must be a batch of RGB images [N, H, W, 3], got shape {shape}")


def to_uint8(images):
    """Float images in [0, 1] (clipped) -> uint8, rounded."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)


def from_uint8(images, name):
    """uint8 images -> float32 in [0, 1]; ValueError naming `name` for another dtype."""
    if images.dtype != tf.uint8:
        raise ValueError(f"{name} must be uint8, got {images.dtype.name}")
    return tf.cast(images, tf.float32) / 255.0


class RoundTripMethods:
    """call / downscale / upscale / *_uint8 from downscale_outputs and upscaler."""

    def call(self, hr, training=False):
        """hr [N, H, W, 3] -> downscale_outputs(hr) plus "sr" [N, H, W, 3] (unclipped)."""
        outputs = self.downscale_outputs(hr)
        outputs["sr"] = self.upscaler(outputs["lr"])
        return outputs

    def downscale(self, hr, training=False):
        """hr [N, H, W, 3] -> LR [N, H/s, W/s, 3] float on the 8-bit levels k/255."""
        return self.downscale_outputs(tf.convert_to_tensor(hr, tf.float32))["lr"]

    def upscale(self, lr, training=False):
        """lr [N, h, w, 3] -> SR [N, h*s, w*s, 3] float, not clipped."""
        lr = tf.convert_to_tensor(lr, tf.float32)
        check_rgb_batch(lr, "lr")
        return self.upscaler(lr)

    def downscale_uint8(self, hr_uint8):
        """uint8 [N, H, W, 3] -> uint8 [N, H/s, W/s, 3]."""
        return to_uint8(self.downscale(from_uint8(tf.convert_to_tensor(hr_uint8), "hr")))

    def downscale_region_uint8(self, hr_uint8, lr_box):
        """downscale_uint8(hr_uint8)[:, top:bottom, left:right], lr_box = (top, bottom, left,
        right) in LR pixels (ints or int32 scalars): a tile's core, which a subclass may
        compute without the rest of the tile's LR pixels."""
        top, bottom, left, right = lr_box
        return self.downscale_uint8(hr_uint8)[:, top:bottom, left:right]

    def upscale_uint8(self, lr_uint8):
        """uint8 [N, h, w, 3] -> uint8 [N, h*s, w*s, 3], clipped to [0, 255]."""
        return to_uint8(self.upscale(from_uint8(tf.convert_to_tensor(lr_uint8), "lr")))
