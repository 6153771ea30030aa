"""Image quality metrics of the super-resolution literature: PSNR and SSIM on Y, PSNR on RGB.

Two scoring protocols (docs/EVALUATION.md explains both):

- "standard": the protocol of EDSR/RCAN tables. Y = 16 + 65.481 R + 128.553 G + 24.966 B
  (R, G, B in [0, 1], unrounded, so Y is in [16, 235]); PSNR with peak 255 on Y; SSIM is
  Wang et al.'s `ssim_index.m` on Y: 11x11 Gaussian window with sigma 1.5, 'valid'
  filtering, K1 = 0.01, K2 = 0.03, L = 255, mean of the SSIM map. `tf.image.ssim(y1, y2,
  max_val=255)` computes the same value (in float32).
- "car_compat": how the CAR authors' script (sunwj/CAR, run.py/utils.py) scores: PSNR on
  the Y *difference* with coefficients [65.738, 129.057, 25.064] / 255 (peak 1), SSIM on the
  standard Y with 'same' filtering over a symmetrically padded border.

Both shave `shave` pixels (the scale, by convention) from every border before scoring.
Everything is computed in float64 with TensorFlow ops, so the functions also run inside
`tf.function` (e.g. for validation during training).
"""

import numpy as np
import tensorflow as tf

PROTOCOLS = ("standard", "car_compat")

# ITU-R BT.601 luma for studio swing, applied to R, G, B in [0, 1].
Y_COEFFICIENTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
# The CAR authors' script multiplies the RGB difference (in [0, 1] units) by these / 255.
CAR_COMPAT_Y_COEFFICIENTS = (65.738, 129.057, 25.064)

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_L = 255.0


def _check_protocol(protocol):
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def _as_float64(image, name):
    """Converts an HWC or NHWC image (float in [0, 1], or uint8) to float64 NHWC in [0, 1]."""
    is_uint8 = getattr(image, "dtype", None) in (np.uint8, tf.uint8)
    tensor = tf.convert_to_tensor(image)
    if tensor.shape.rank not in (3, 4) or tensor.shape[-1] != 3:
        raise ValueError(
            f"{name} must be an RGB image [H,W,3] or batch [N,H,W,3], got shape {tensor.shape}"
        )
    tensor = tf.cast(tensor, tf.float64)
    if is_uint8:
        tensor = tensor / 255.0
    return tensor if tensor.shape.rank == 4 else tensor[tf.newaxis]


def _prepare(a, b, shave):
    """Both images as float64 NHWC with `shave` pixels removed from every border.

    Returns (a, b, batched) where batched says whether the inputs were NHWC.
    """
    batched = tf.convert_to_tensor(a).shape.rank == 4
    a = _as_float64(a, "a")
    b = _as_float64(b, "b")
    if a.shape.is_fully_defined() and b.shape.is_fully_defined() and a.shape != b.shape:
        raise ValueError(f"images to compare must have the same shape, got {a.shape} and {b.shape}")
    shave = int(shave)
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    if shave:
        height, width = a.shape[1], a.shape[2]
        if height is not None and width is not None and min(height, width) <= 2 * shave:
            raise ValueError(
                f"image of {height}x{width} pixels is too small to shave {shave} pixels per border"
            )
        a = a[:, shave:-shave, shave:-shave, :]
        b = b[:, shave:-shave, shave:-shave, :]
    return a, b, batched


def _finish(per_image, batched):
    return per_image if batched else per_image[0]


def rgb_to_y(rgb01):
    """Y of YCbCr (BT.601, studio swing) from RGB in [0, 1]: [..., 3] -> [...].

    Values are in [16, 235] and not rounded.
    """
    rgb = tf.cast(tf.convert_to_tensor(rgb01), tf.float64)
    return Y_OFFSET + tf.tensordot(rgb, tf.constant(Y_COEFFICIENTS, tf.float64), axes=[[-1], [0]])


def _psnr_from_mse(mse, peak):
    # Identical images give mse 0 and PSNR +inf, as in every SR table tool.
    return 10.0 * tf.math.log(peak * peak / mse) / tf.math.log(tf.constant(10.0, tf.float64))


def psnr_y(a, b, shave, protocol="standard"):
    """PSNR (dB) on the luma channel Y.

    Args:
      a, b: RGB images, [H,W,3] or [N,H,W,3], float in [0, 1] (uint8 is accepted and
        divided by 255); numpy arrays or tensors.
      shave: pixels removed from each border before scoring (the scale, by convention).
      protocol: "standard" (Y in [16, 235], peak 255) or "car_compat" (see module docstring).

    Returns:
      float64 tensor: a scalar for HWC inputs, [N] for NHWC inputs. +inf where the images are equal.
    """
    _check_protocol(protocol)
    a, b, batched = _prepare(a, b, shave)
    if protocol == "standard":
        diff = rgb_to_y(a) - rgb_to_y(b)
        peak = SSIM_L
    else:
        coefficients = tf.constant(CAR_COMPAT_Y_COEFFICIENTS, tf.float64) / 255.0
        diff = tf.tensordot(a - b, coefficients, axes=[[-1], [0]])
        peak = 1.0
    mse = tf.reduce_mean(tf.square(diff), axis=[1, 2])
    return _finish(_psnr_from_mse(mse, tf.constant(peak, tf.float64)), batched)


def psnr_rgb(a, b, shave):
    """PSNR (dB) over the three RGB channels, peak 1; arguments and result shape as `psnr_y`."""
    a, b, batched = _prepare(a, b, shave)
    mse = tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])
    return _finish(_psnr_from_mse(mse, tf.constant(1.0, tf.float64)), batched)


def gaussian_window(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    """Normalised 1-D Gaussian; its outer product is MATLAB's fspecial('gaussian', size, sigma)."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    weights = np.exp(-(coords**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def _gaussian_filter(maps, padding):
    """Filters [M,H,W,1] float64 maps with the separable SSIM Gaussian.

    padding "valid" shrinks each side by SSIM_WINDOW // 2; "symmetric" pads that much by
    mirroring (edge sample repeated, like scipy's boundary='symm') so the size is kept.
    """
    radius = SSIM_WINDOW // 2
    if padding == "symmetric":
        maps = tf.pad(maps, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    window = tf.constant(gaussian_window(), tf.float64)
    vertical = tf.reshape(window, [SSIM_WINDOW, 1, 1, 1])
    horizontal = tf.reshape(window, [1, SSIM_WINDOW, 1, 1])
    maps = tf.nn.conv2d(maps, vertical, strides=1, padding="VALID")
    return tf.nn.conv2d(maps, horizontal, strides=1, padding="VALID")


def ssim_y(a, b, shave, protocol="standard"):
    """SSIM on the luma channel Y (in [16, 235], L = 255), mean of the SSIM map.

    "standard" keeps only window positions fully inside the image (Wang's ssim_index.m,
    'valid'); "car_compat" filters 'same' with a symmetric border, as the CAR authors' script.
    Arguments and result shape as `psnr_y`; the shaved image must be at least 11x11.
    """
    _check_protocol(protocol)
    a, b, batched = _prepare(a, b, shave)
    height, width = a.shape[1], a.shape[2]
    if height is not None and width is not None and min(height, width) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after shaving, "
            f"got {height}x{width}"
        )
    y1 = rgb_to_y(a)[..., tf.newaxis]
    y2 = rgb_to_y(b)[..., tf.newaxis]
    padding = "valid" if protocol == "standard" else "symmetric"
    # One convolution pass over the five statistics, stacked along the batch axis.
    stats = _gaussian_filter(tf.concat([y1, y2, y1 * y1, y2 * y2, y1 * y2], axis=0), padding)
    mu1, mu2, e11, e22, e12 = tf.split(stats, 5, axis=0)
    var1 = e11 - mu1 * mu1
    var2 = e22 - mu2 * mu2
    cov = e12 - mu1 * mu2
    c1 = (SSIM_K1 * SSIM_L) ** 2
    c2 = (SSIM_K2 * SSIM_L) ** 2
    ssim_map = ((2.0 * mu1 * mu2 + c1) * (2.0 * cov + c2)) / (
        (mu1 * mu1 + mu2 * mu2 + c1) * (var1 + var2 + c2)
    )
    return _finish(tf.reduce_mean(ssim_map, axis=[1, 2, 3]), batched)
