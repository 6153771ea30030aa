"""The SR protocol's helpers, shared by training, evaluation and the yardsticks.

HR images are cropped at the bottom/right to a multiple the model accepts; the
reference LR image is antialiased bicubic (MATLAB imresize's equivalent in the
interior) stored as 8 bits; SR images are scored as 8-bit images too.
"""

import numpy as np
import tensorflow as tf

from car_tf import metrics
from car_tf.models import min_hr_size, size_multiple
from car_tf.quantize import quantize_8bit


def crop_to_multiple(image, multiple):
    """The top-left [H - H % multiple, W - W % multiple] part of an [H, W, C] image."""
    height, width = image.shape[:2]
    return image[: height - height % multiple, : width - width % multiple]


def smallest_hr_side(scale):
    """The least side, after cropping, of an HR image that is validated or evaluated: what
    the model takes, and room for the SSIM window once `scale` pixels are shaved."""
    return max(min_hr_size(scale), metrics.SSIM_WINDOW + 2 * scale)


def crop_for_scale(image, scale):
    """An [H, W, C] HR image cropped to a multiple of size_multiple(scale), or None when the
    crop is smaller than smallest_hr_side(scale): the one rule for validation and evaluation
    images."""
    cropped = crop_to_multiple(image, size_multiple(scale))
    if min(cropped.shape[:2]) < smallest_hr_side(scale):
        return None
    return cropped


def bicubic_downscale(hr, scale):
    """HR [N, H, W, 3] float in [0, 1] -> LR [N, H/s, W/s, 3] on the 8-bit levels k/255.

    The reference downscaler of the SR literature: antialiased bicubic, quantised
    because an LR image is stored as 8-bit pixels. Training's sr_baseline mode feeds
    it to the upscaler, evaluation scores it as the "bicubic" downscaler.
    """
    height, width = tf.shape(hr)[1] // scale, tf.shape(hr)[2] // scale
    lr = tf.image.resize(hr, [height, width], method="bicubic", antialias=True)
    return quantize_8bit(lr)


def bicubic_downscale_uint8(hr_uint8, scale):
    """uint8 [H, W, 3] -> uint8 [H/scale, W/scale, 3]: `bicubic_downscale` at the uint8 edge."""
    hr = tf.constant(hr_uint8[np.newaxis], tf.float32) / 255.0
    lr = bicubic_downscale(hr, scale)
    return np.round(lr.numpy()[0] * 255.0).astype(np.uint8)


def sr_to_uint8(sr, protocol):
    """Float SR [..., 3] -> uint8: clipped to [0, 1], times 255, then rounded ("standard") or
    truncated ("car_compat")."""
    if protocol == "car_compat":
        # The authors' script converts with np.uint8(clamp(x, 0, 1) * 255) in float32,
        # which truncates.
        scaled = np.clip(np.asarray(sr, np.float32), 0.0, 1.0) * np.float32(255.0)
        return scaled.astype(np.uint8)
    return np.round(np.clip(np.asarray(sr, np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr_y_of_float_sr(hr_uint8, sr, scale):
    """PSNR-Y (standard protocol, shave = scale) of one float SR image [1, H, W, 3] in
    [0, 1] against its uint8 HR [H, W, 3], converted to 8 bits as evaluation does."""
    return float(metrics.psnr_y(hr_uint8, sr_to_uint8(np.asarray(sr)[0], "standard"), scale))
