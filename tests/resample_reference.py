"""Independent references for the adaptive resampler tests, and their inputs.

- `adaptive_resample_numpy`: a plain loop over pixels and taps that applies the
  definition in custom_ops/cc/kernels/adaptive_resample.h literally, written for
  clarity, not speed, with its own reflection code.
- `adaptive_resample_padded`: the edge rule stated the other way round, as
  tf.pad(mode="REFLECT") by k//2 followed by clamping every corner index to the
  padded image (no reflection arithmetic at all).
- `random_inputs`: inputs shaped like the model's; `off_grid_inputs`: inputs for
  finite-difference gradient checks.
"""

import math

import numpy as np


def _reflect(index, length, pad):
    index = min(max(index, -pad), length - 1 + pad)
    if index < 0:
        return -index
    if index > length - 1:
        return 2 * (length - 1) - index
    return index


def _corner(pos, length, pad):
    if not math.isfinite(pos):
        return 0, math.nan
    base = math.floor(pos)
    base = min(max(base, -pad - 1), length - 1 + pad)
    return base, pos - math.floor(pos)


def adaptive_resample_numpy(image, kernels, offsets_x, offsets_y, offset_unit):
    """The op's definition as a float64 loop. Shapes as the op; returns float64."""
    image = np.asarray(image, np.float64)
    n_batch, in_h, in_w, channels = image.shape
    _, out_h, out_w, taps = kernels.shape
    k = int(round(math.sqrt(taps)))
    pad = k // 2
    out = np.zeros((n_batch, out_h, out_w, channels))
    for n in range(n_batch):
        for y in range(out_h):
            for x in range(out_w):
                for t in range(taps):
                    i, j = divmod(t, k)
                    # Eq. 2: tap j at j - k/2, a real division.
                    px = (x + 0.5) * in_w / out_w - 0.5 + (j - k / 2) + offset_unit * offsets_x[n, y, x, t]
                    py = (y + 0.5) * in_h / out_h - 0.5 + (i - k / 2) + offset_unit * offsets_y[n, y, x, t]
                    x0, fx = _corner(px, in_w, pad)
                    y0, fy = _corner(py, in_h, pad)
                    l, r = _reflect(x0, in_w, pad), _reflect(x0 + 1, in_w, pad)
                    tp, bt = _reflect(y0, in_h, pad), _reflect(y0 + 1, in_h, pad)
                    value = (
                        (1 - fy) * ((1 - fx) * image[n, tp, l] + fx * image[n, tp, r])
                        + fy * ((1 - fx) * image[n, bt, l] + fx * image[n, bt, r])
                    )
                    out[n, y, x] += kernels[n, y, x, t] * value
    return out


def adaptive_resample_padded(image, kernels, offsets_x, offsets_y, offset_unit):
    """The edge rule as tf.pad(REFLECT by k//2), then corner indices clamped to
    the padded image; vectorised numpy in float64. Finite offsets only."""
    import tensorflow as tf  # Only this oracle needs TF, for tf.pad itself.

    image = np.asarray(image, np.float64)
    n_batch, in_h, in_w, _ = image.shape
    _, out_h, out_w, taps = kernels.shape
    k = int(round(math.sqrt(taps)))
    pad = k // 2
    padded = tf.pad(image, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT").numpy()
    rows, cols = np.divmod(np.arange(taps), k)
    centre_x = (np.arange(out_w) + 0.5) * in_w / out_w - 0.5
    centre_y = (np.arange(out_h) + 0.5) * in_h / out_h - 0.5
    pos_x = centre_x[None, None, :, None] + (cols - k / 2) + offset_unit * np.asarray(offsets_x, np.float64)
    pos_y = centre_y[None, :, None, None] + (rows - k / 2) + offset_unit * np.asarray(offsets_y, np.float64)
    floor_x, floor_y = np.floor(pos_x), np.floor(pos_y)
    frac_x, frac_y = (pos_x - floor_x)[..., None], (pos_y - floor_y)[..., None]
    # Padded coordinates are image coordinates + pad.
    left = np.clip(floor_x + pad, 0, in_w + 2 * pad - 1).astype(np.int64)
    right = np.clip(floor_x + 1 + pad, 0, in_w + 2 * pad - 1).astype(np.int64)
    top = np.clip(floor_y + pad, 0, in_h + 2 * pad - 1).astype(np.int64)
    bottom = np.clip(floor_y + 1 + pad, 0, in_h + 2 * pad - 1).astype(np.int64)
    batch = np.arange(n_batch)[:, None, None, None]
    sampled = (1 - frac_y) * ((1 - frac_x) * padded[batch, top, left] + frac_x * padded[batch, top, right]) + (
        frac_y * ((1 - frac_x) * padded[batch, bottom, left] + frac_x * padded[batch, bottom, right])
    )
    return np.sum(np.asarray(kernels, np.float64)[..., None] * sampled, axis=3)


def random_inputs(
    seed, batch, in_size, out_size, channels, kernel_size, offset_spread=1.0, dtype=np.float32
):
    """Random op inputs shaped like the model's.

    Args:
      seed: numpy seed.
      batch, channels, kernel_size: N, C and k.
      in_size, out_size: (H, W) and (h, w).
      offset_spread: standard deviation of the offsets, in offset units.
      dtype: numpy dtype of every returned array.

    Returns:
      image [N, H, W, C] uniform in [0, 1]; kernels [N, h, w, k*k] positive and
      summing to 1 per pixel (as ResamplerNet's softmax output), so outputs stay
      in [0, 1] and an absolute tolerance means something; offsets_x, offsets_y
      [N, h, w, k*k] normal with `offset_spread`.
    """
    rng = np.random.default_rng(seed)
    taps_shape = (batch, *out_size, kernel_size * kernel_size)
    image = rng.random((batch, *in_size, channels))
    kernels = rng.random(taps_shape) + 0.05
    kernels /= kernels.sum(axis=-1, keepdims=True)
    offsets_x = rng.normal(0.0, offset_spread, taps_shape)
    offsets_y = rng.normal(0.0, offset_spread, taps_shape)
    return tuple(a.astype(dtype) for a in (image, kernels, offsets_x, offsets_y))


def off_grid_inputs(seed):
    """Small float64 inputs (image, kernels, offsets_x, offsets_y, offset_unit) for
    finite-difference gradient checks.

    Every sampling position sits 0.3..0.7 into its pixel cell, so a perturbation of
    tf.test.compute_gradient's size never crosses a floor(); the integer parts of
    the offsets reach up to 4 HR pixels past the border, through the reflected band
    and into the clamp.
    """
    rng = np.random.default_rng(seed)
    unit, k = 2.0, 3
    image = rng.random((2, 6, 8, 2))
    kernels = rng.random((2, 3, 4, k * k)) + 0.1
    kernels /= kernels.sum(axis=-1, keepdims=True)

    # With k = 3 at scale 2 the unmoved taps sit on pixel centres, 2x - 1 + j: a shift
    # of an integer plus [0.3, 0.7] keeps the fraction within [0.3, 0.7].
    def offsets():
        shift = rng.integers(-4, 5, kernels.shape) + rng.uniform(0.3, 0.7, kernels.shape)
        return shift / unit

    return image, kernels, offsets(), offsets(), unit
