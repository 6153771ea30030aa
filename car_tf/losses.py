"""The CAR training objective (paper section 3.4, eqs. 8-11).

  total = l1 + offset_weight * offset + tv_weight * tv

offset_weight is the paper's lambda and tv_weight its gamma of eq. 11
(defaults 0.001 and 0.005). Every function returns one value per example, a
[N] tensor, so that distributed training can average with
tf.nn.compute_average_loss.

Offsets are in LR pixels and follow car_tf.ops: offsets_x moves taps along the
width, offsets_y along the height; tap t = i*k + j with i the kernel row. The
paper writes (x, y) for (row, column), so its vertical offsets are our
offsets_y and its horizontal ones our offsets_x.
"""

import numpy as np
import tensorflow as tf

from car_tf.ops.composite import unmoved_tap_positions

DEFAULT_OFFSET_WEIGHT = 0.001
DEFAULT_TV_WEIGHT = 0.005


def _taps_to_kernel_size(taps):
    if taps is None:
        raise ValueError("kernels and offsets need a static last dimension k*k")
    kernel_size = int(round(taps**0.5))
    if kernel_size * kernel_size != taps:
        raise ValueError(f"the last dimension of kernels/offsets must be k*k, got {taps}")
    return kernel_size


def offset_distance_weights(kernel_size):
    """w(i, j) of eq. 9 for every tap t = i*k + j, as a float32 array [k*k].

    w(i, j) = sqrt((i - k/2)^2 + (j - k/2)^2) / sqrt(k^2/2 + k^2/2), exactly as
    the paper prints it, i.e. measured from (k/2, k/2). The resampler places tap
    (i, j) at (i - k/2, j - k/2) from the LR pixel's centre (eq. 2), so w is each
    tap's distance from that centre, normalised.
    """
    k = int(kernel_size)
    position = unmoved_tap_positions(k)
    rows, cols = np.meshgrid(position, position, indexing="ij")
    distance = np.sqrt(rows**2 + cols**2) / np.sqrt(k * k / 2 + k * k / 2)
    return distance.reshape(-1).astype(np.float32)


def _norm(dx, dy):
    """sqrt(dx^2 + dy^2) with a zero (not NaN) gradient where both are zero."""
    squared = tf.square(dx) + tf.square(dy)
    positive = squared > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))), 0.0)


def l1_loss(hr, sr):
    """Eq. 8: mean |hr - sr| over pixels and channels. [N, H, W, C] x2 -> [N]."""
    hr = tf.cast(hr, tf.float32)
    sr = tf.cast(sr, tf.float32)
    return tf.reduce_mean(tf.abs(hr - sr), axis=[1, 2, 3])


def offset_loss(offsets_x, offsets_y):
    """Eq. 9, averaged over kernels: mean over LR pixels of sum_t |offset_t| * w(t).

    Args:
      offsets_x, offsets_y: [N, h, w, k*k].

    Returns:
      [N]. Eq. 9 as printed also adds a constant gamma (=1) per tap; a
      constant changes no gradient, so it is left out (as in the MindSpore
      port), which keeps the logged value at 0 for unmoved kernels.
    """
    offsets_x = tf.cast(offsets_x, tf.float32)
    offsets_y = tf.cast(offsets_y, tf.float32)
    weights = offset_distance_weights(_taps_to_kernel_size(offsets_x.shape[-1]))
    per_kernel = tf.reduce_sum(_norm(offsets_x, offsets_y) * weights, axis=-1)
    return tf.reduce_mean(per_kernel, axis=[1, 2])


def tv_loss(kernels, offsets_x, offsets_y):
    """Eq. 10, the partial TV: a sum over LR pixels, weighted by the kernel values.

    Vertical offsets (offsets_y) are differenced between horizontal neighbours
    (along the width) and horizontal offsets (offsets_x) between vertical
    neighbours (along the height), each tap's change weighted by that tap's
    kernel value at the first pixel of the pair:

      sum_{y,x,t} |oy[y, x+1, t] - oy[y, x, t]| * K[y, x, t]
                + |ox[y+1, x, t] - ox[y, x, t]| * K[y, x, t]

    Args:
      kernels, offsets_x, offsets_y: [N, h, w, k*k].

    Returns:
      [N]. A sum, not a mean (as eq. 10 and the MindSpore port): it grows with
      the patch size, so tv_weight is tied to the training crop size.
    """
    kernels = tf.abs(tf.cast(kernels, tf.float32))
    offsets_x = tf.cast(offsets_x, tf.float32)
    offsets_y = tf.cast(offsets_y, tf.float32)
    along_width = tf.abs(offsets_y[:, :, 1:] - offsets_y[:, :, :-1]) * kernels[:, :, :-1]
    along_height = tf.abs(offsets_x[:, 1:] - offsets_x[:, :-1]) * kernels[:, :-1]
    return tf.reduce_sum(along_width, axis=[1, 2, 3]) + tf.reduce_sum(along_height, axis=[1, 2, 3])


def car_losses(hr, outputs, offset_weight=DEFAULT_OFFSET_WEIGHT, tv_weight=DEFAULT_TV_WEIGHT,
               scale=None):
    """Eq. 11 and its terms, each per example.

    Args:
      hr: [N, H, W, 3] ground truth in [0, 1].
      outputs: CARModel's output dict ("sr", "kernels", "offsets_x", "offsets_y").
      offset_weight: lambda, the weight of the offset regulariser.
      tv_weight: gamma, the weight of the partial TV loss.
      scale: if given, checked against the kernels' size (k = 3*scale + 1).

    Returns:
      {"total", "l1", "offset", "tv"}: float32 tensors [N].
    """
    hr = tf.convert_to_tensor(hr)
    sr = tf.convert_to_tensor(outputs["sr"])
    kernels = tf.convert_to_tensor(outputs["kernels"])
    offsets_x = tf.convert_to_tensor(outputs["offsets_x"])
    offsets_y = tf.convert_to_tensor(outputs["offsets_y"])
    if scale is not None:
        expected = (3 * int(scale) + 1) ** 2
        if kernels.shape[-1] is not None and kernels.shape[-1] != expected:
            raise ValueError(
                f"kernels have {kernels.shape[-1]} taps but scale {scale} needs {expected}"
            )
    if not hr.shape.is_compatible_with(sr.shape):
        raise ValueError(f"hr shape {hr.shape} and sr shape {sr.shape} differ")
    l1 = l1_loss(hr, sr)
    offset = offset_loss(offsets_x, offsets_y)
    tv = tv_loss(kernels, offsets_x, offsets_y)
    total = l1 + float(offset_weight) * offset + float(tv_weight) * tv
    return {"total": total, "l1": l1, "offset": offset, "tv": tv}
