"""The adaptive resampler built from standard TensorFlow ops only.

This is the pure-TF twin of the custom op in custom_ops/: the same inputs, the
same outputs, the same edge rules (see custom_ops/cc/kernels/adaptive_resample.h).
It needs nothing but floor, gather, select and arithmetic, so it runs where the
op library can't load, serves as the oracle in tests, and exports to stock TF
Serving and to TFLite. Gradients come from TF's autodiff.

It sums the taps one kernel row at a time, so its extra memory is that of four
[N, h, w, k, C] gathers (about 1/k of gathering every tap at once): at 25 MP x4 and
k = 13 one row's gathers of a whole image still take ~1 GB, which is why the
exports also tile (car_tf.export.graph). It is slower and hungrier for memory than
the custom op. Inputs are checked by car_tf.ops.validation, as the op's are.
"""

import numpy as np
import tensorflow as tf

from car_tf.ops.validation import check_resample_inputs, kernel_size_of
from car_tf.shapes import dimension


def _reflect_index(index, length, pad):
    """tf.pad(mode="REFLECT") by `pad` followed by clamping to the padded edge."""
    index = tf.clip_by_value(index, -pad, length - 1 + pad)
    index = tf.abs(index)
    return tf.where(index > length - 1, 2 * (length - 1) - index, index)


def _safe_floor(floor_pos, length, pad):
    """Floor clamped into [-pad-1, length-1+pad] as int32; NaN maps to the low end.

    The bilinear fractions are taken from the unclamped position, so a
    non-finite position still gives NaN weights, hence a NaN output, while
    every gather index stays in range.
    """
    lowest = tf.cast(-pad - 1, floor_pos.dtype)
    highest = tf.cast(length - 1 + pad, floor_pos.dtype)
    clamped = tf.where(floor_pos >= lowest, tf.minimum(floor_pos, highest), lowest)
    return tf.cast(clamped, tf.int32)


def unmoved_tap_positions(kernel_size):
    """[k] float64 numpy: where unmoved tap j of a k-tap row sits, in HR pixels from the
    LR pixel's centre: j - k/2 with a real k/2 (eq. 2's m/2). The same for rows (i).

    For CAR's k = 3s + 1 these are half-integers, so unmoved taps land on HR pixel
    centres. The op (and adaptive_resample_composite below, in TF) place taps here.
    """
    k = int(kernel_size)
    return np.arange(k, dtype=np.float64) - k / 2.0


def adaptive_resample_composite(image, kernels, offsets_x, offsets_y, offset_unit):
    """Content adaptive resampling with built-in TF ops.

    Args:
      image: [N, H, W, C] float tensor.
      kernels: [N, h, w, k*k] tap weights; tap t = i*k + j, i the kernel row.
      offsets_x: [N, h, w, k*k] horizontal offsets, in units of offset_unit HR pixels.
      offsets_y: [N, h, w, k*k] vertical offsets, likewise.
      offset_unit: Python float, HR pixels per unit of offset.

    Returns:
      [N, h, w, C] tensor of image's dtype.
    """
    image, kernels, offsets_x, offsets_y = check_resample_inputs(
        image, kernels, offsets_x, offsets_y, offset_unit)
    dtype = image.dtype

    batch = tf.shape(image)[0]
    in_height = tf.shape(image)[1]
    in_width = tf.shape(image)[2]
    channels = dimension(image, 3)
    out_height = tf.shape(kernels)[1]
    out_width = tf.shape(kernels)[2]
    taps = dimension(kernels, 3)
    k = kernel_size_of(taps)
    pad = k // 2

    def centres(out_size, in_size):
        # Eq. 1 of the paper, generalised to non-integer ratios.
        ratio = tf.cast(in_size, dtype) / tf.cast(out_size, dtype)
        return (tf.cast(tf.range(out_size), dtype) + 0.5) * ratio - 0.5

    # Tap (i, j) sits at (i - k/2, j - k/2) (a real k/2, eq. 2's m/2) from the pixel
    # centre: computed as (2j - k) / 2, exactly the custom op's floats.
    half = tf.constant(0.5, dtype)
    tap_dx = tf.cast(2 * tf.range(k) - k, dtype) * half
    unit = tf.cast(offset_unit, dtype)
    centre_x = centres(out_width, in_width)[None, None, :, None] + tap_dx
    centre_y = centres(out_height, in_height)[None, :, None, None]

    flat_image = tf.reshape(image, [-1, channels])
    # int64: N * H * W passes 2^31 (a batch of 16 crops of 12 MP images) and int32 would wrap.
    width64 = tf.cast(in_width, tf.int64)
    image_base = (tf.range(tf.cast(batch, tf.int64)) * tf.cast(in_height, tf.int64)
                  * width64)[:, None, None, None]
    one = tf.constant(1, dtype)

    def kernel_row(i):
        """[N, h, w, C]: the sum over the k taps of kernel row i (a Python int or a scalar)."""
        def take(tensor):
            return tf.slice(tensor, [0, 0, 0, i * k], [-1, -1, -1, k])

        pos_x = centre_x + unit * take(offsets_x)
        pos_y = centre_y + tf.cast(2 * i - k, dtype) * half + unit * take(offsets_y)
        floor_x = tf.floor(pos_x)
        floor_y = tf.floor(pos_y)
        frac_x = (pos_x - floor_x)[..., None]
        frac_y = (pos_y - floor_y)[..., None]
        x0 = _safe_floor(floor_x, in_width, pad)
        y0 = _safe_floor(floor_y, in_height, pad)
        left = _reflect_index(x0, in_width, pad)
        right = _reflect_index(x0 + 1, in_width, pad)
        top = _reflect_index(y0, in_height, pad)
        bottom = _reflect_index(y0 + 1, in_height, pad)

        def corner(rows, cols):
            return tf.gather(flat_image, image_base + tf.cast(rows, tf.int64) * width64
                             + tf.cast(cols, tf.int64))

        sampled = (
            (one - frac_y) * ((one - frac_x) * corner(top, left) + frac_x * corner(top, right))
            + frac_y * ((one - frac_x) * corner(bottom, left) + frac_x * corner(bottom, right))
        )
        return tf.reduce_sum(take(kernels)[..., None] * sampled, axis=3)

    if isinstance(k, int):
        # Unrolled: built-in ops only, for TFLite; rows are freed as they are summed.
        output = kernel_row(0)
        for i in range(1, k):
            output = output + kernel_row(i)
        return output
    # k known only at run time (a signature with every dimension open).
    zeros = tf.zeros(tf.stack([batch, out_height, out_width, channels]), dtype)
    _, output = tf.while_loop(lambda i, total: i < k,
                              lambda i, total: (i + 1, total + kernel_row(i)),
                              (tf.constant(0), zeros), parallel_iterations=1)
    return output
