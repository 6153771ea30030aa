"""car_tf.metrics against hand-computed values, an independent numpy implementation and
tf.image.ssim."""

import math

import numpy as np
import pytest
import tensorflow as tf

from car_tf import metrics

# ---- independent reference, plain numpy (2-D window, explicit sliding windows) ----


def _ref_y(rgb01):
    r, g, b = rgb01[..., 0], rgb01[..., 1], rgb01[..., 2]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _ref_window():
    # fspecial('gaussian', 11, 1.5): built in 2-D directly, not as an outer product.
    half = 5
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    window = np.exp(-(x * x + y * y) / (2.0 * 1.5 * 1.5))
    return window / window.sum()


def _ref_filter(image, window):
    patches = np.lib.stride_tricks.sliding_window_view(image, window.shape)
    return np.einsum("ijkl,kl->ij", patches, window)


def _ref_ssim(y1, y2, boundary):
    """Wang's ssim_index.m ('valid') or the CAR authors' variant ('same', symmetric boundary)."""
    if boundary == "symmetric":
        y1 = np.pad(y1, 5, mode="symmetric")
        y2 = np.pad(y2, 5, mode="symmetric")
    window = _ref_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = _ref_filter(y1, window), _ref_filter(y2, window)
    s11 = _ref_filter(y1 * y1, window) - mu1**2
    s22 = _ref_filter(y2 * y2, window) - mu2**2
    s12 = _ref_filter(y1 * y2, window) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return ssim_map.mean()


def _ref_psnr_y(a, b, shave):
    ya, yb = _ref_y(a)[shave:-shave, shave:-shave], _ref_y(b)[shave:-shave, shave:-shave]
    return 10 * math.log10(255.0**2 / np.mean((ya - yb) ** 2))


def _ref_psnr_y_car_compat(a, b, shave):
    diff = (a - b)[shave:-shave, shave:-shave]
    y_diff = (65.738 * diff[..., 0] + 129.057 * diff[..., 1] + 25.064 * diff[..., 2]) / 255.0
    return -10 * math.log10(np.mean(y_diff**2))


def _pair(seed, height=40, width=36):
    """An 8-bit HR-like image and a noisy, blurred 'reconstruction' of it, both in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 0.5 + 0.3 * np.sin(xx / 3.0)[..., None] * np.cos(yy / 5.0)[..., None] * np.array(
        [1.0, 0.7, 0.4]
    )
    a = np.round(np.clip(base + 0.1 * rng.standard_normal((height, width, 3)), 0, 1) * 255) / 255
    b = np.round(np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1) * 255) / 255
    return a, b


# ---- Y conversion ----


def test_rgb_to_y_hand_values():
    rgb = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float64)
    y = metrics.rgb_to_y(rgb).numpy()
    np.testing.assert_allclose(y[0], [16.0, 235.0, 81.481, 144.553, 40.966], atol=1e-12)


def test_rgb_to_y_is_unrounded():
    y = float(metrics.rgb_to_y(np.array([0.5, 0.25, 1 / 3])))
    assert y == pytest.approx(16 + 65.481 * 0.5 + 128.553 * 0.25 + 24.966 / 3, abs=1e-12)
    assert y != round(y)


# ---- PSNR ----


def test_psnr_y_hand_value_constant_offset():
    # One grey level up in every channel: Y moves by 219/255 everywhere.
    a = np.full((12, 12, 3), 100 / 255)
    b = a + 1 / 255
    expected = 20 * math.log10(255 / (219 / 255))
    assert float(metrics.psnr_y(a, b, shave=2)) == pytest.approx(expected, abs=1e-9)


def test_psnr_y_car_compat_hand_value_constant_offset():
    a = np.full((12, 12, 3), 100 / 255)
    b = a + 1 / 255
    y_diff = (65.738 + 129.057 + 25.064) / 255 / 255
    expected = -20 * math.log10(y_diff)
    assert float(metrics.psnr_y(a, b, shave=2, protocol="car_compat")) == pytest.approx(
        expected, abs=1e-9
    )


def test_car_compat_psnr_is_about_256_over_255_stricter():
    # The authors' coefficients are the standard ones times ~256/255, so their PSNR is lower
    # by ~20*log10(256/255) = 0.034 dB on any image pair.
    a, b = _pair(3)
    standard = float(metrics.psnr_y(a, b, 4))
    compat = float(metrics.psnr_y(a, b, 4, protocol="car_compat"))
    assert standard - compat == pytest.approx(20 * math.log10(256 / 255), abs=2e-4)


def test_psnr_rgb_hand_value():
    a = np.zeros((10, 10, 3))
    b = np.full((10, 10, 3), 0.1)
    assert float(metrics.psnr_rgb(a, b, shave=1)) == pytest.approx(20.0, abs=1e-9)


def test_shave_removes_exactly_the_border():
    a = np.full((20, 20, 3), 0.5)
    b = a.copy()
    b[:3, :, :] = 0.0  # damage inside the 3-pixel border only
    b[:, -3:, :] = 1.0
    assert math.isinf(float(metrics.psnr_y(a, b, shave=3)))
    assert math.isinf(float(metrics.psnr_rgb(a, b, shave=3)))
    assert float(metrics.ssim_y(a, b, shave=3)) == 1.0
    # With a 2-pixel shave, 16x16 pixels remain, with one damaged row (row 2) and column
    # (column 17): 15 black pixels in the row, 16 white ones in the column (the corner is white).
    ya, yb0, yb1 = 16 + 219 * 0.5, 16.0, 235.0
    mse = (15 * (ya - yb0) ** 2 + 16 * (ya - yb1) ** 2) / (16 * 16)
    assert float(metrics.psnr_y(a, b, shave=2)) == pytest.approx(
        10 * math.log10(255**2 / mse), abs=1e-9
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_psnr_matches_numpy_reference(seed):
    a, b = _pair(seed)
    assert float(metrics.psnr_y(a, b, 4)) == pytest.approx(_ref_psnr_y(a, b, 4), abs=1e-9)
    assert float(metrics.psnr_y(a, b, 4, "car_compat")) == pytest.approx(
        _ref_psnr_y_car_compat(a, b, 4), abs=1e-9
    )
    rgb_mse = np.mean((a - b)[2:-2, 2:-2] ** 2)
    assert float(metrics.psnr_rgb(a, b, 2)) == pytest.approx(-10 * math.log10(rgb_mse), abs=1e-9)


def test_uint8_inputs_are_scaled():
    a, b = _pair(4)
    a8, b8 = np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8)
    assert float(metrics.psnr_y(a8, b8, 2)) == pytest.approx(
        float(metrics.psnr_y(a, b, 2)), abs=1e-9
    )
    assert float(metrics.ssim_y(a8, b8, 2)) == pytest.approx(
        float(metrics.ssim_y(a, b, 2)), abs=1e-12
    )


# ---- SSIM ----


def test_ssim_identical_is_one():
    a, _ = _pair(5)
    for protocol in metrics.PROTOCOLS:
        assert float(metrics.ssim_y(a, a, 2, protocol)) == pytest.approx(1.0, abs=1e-12)


def test_ssim_hand_value_constant_images():
    # Flat images: variances and covariance vanish, SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    black, white = np.zeros((16, 16, 3)), np.ones((16, 16, 3))
    c1 = (0.01 * 255) ** 2
    expected = (2 * 16 * 235 + c1) / (16**2 + 235**2 + c1)
    for protocol in metrics.PROTOCOLS:
        assert float(metrics.ssim_y(black, white, 1, protocol)) == pytest.approx(
            expected, abs=1e-12
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_numpy_reference(seed):
    a, b = _pair(seed, height=37, width=30)
    ya, yb = _ref_y(a)[3:-3, 3:-3], _ref_y(b)[3:-3, 3:-3]
    assert float(metrics.ssim_y(a, b, 3)) == pytest.approx(_ref_ssim(ya, yb, "valid"), abs=1e-12)
    assert float(metrics.ssim_y(a, b, 3, "car_compat")) == pytest.approx(
        _ref_ssim(ya, yb, "symmetric"), abs=1e-12
    )
    # The two boundary treatments really differ; each protocol reproduces its own.
    assert abs(_ref_ssim(ya, yb, "valid") - _ref_ssim(ya, yb, "symmetric")) > 1e-4


@pytest.mark.parametrize("seed", [0, 1])
def test_tf_image_ssim_on_y_matches_standard(seed):
    a, b = _pair(seed)
    ya = metrics.rgb_to_y(a[2:-2, 2:-2])[..., tf.newaxis]
    yb = metrics.rgb_to_y(b[2:-2, 2:-2])[..., tf.newaxis]
    # tf.image.ssim works in float32, hence the tolerance.
    reference = float(tf.image.ssim(ya, yb, max_val=255.0))
    assert float(metrics.ssim_y(a, b, 2)) == pytest.approx(reference, abs=2e-5)


def test_batched_inputs_give_per_image_scores():
    a0, b0 = _pair(0)
    a1, b1 = _pair(1)
    a, b = np.stack([a0, a1]), np.stack([b0, b1])
    for fn in (metrics.psnr_y, metrics.ssim_y):
        for protocol in metrics.PROTOCOLS:
            batch = fn(a, b, 2, protocol).numpy()
            assert batch.shape == (2,)
            np.testing.assert_allclose(
                batch, [float(fn(a0, b0, 2, protocol)), float(fn(a1, b1, 2, protocol))]
            )
    assert metrics.psnr_rgb(a, b, 2).numpy().shape == (2,)


def test_runs_inside_tf_function():
    a, b = _pair(0)

    @tf.function
    def scores(x, y):
        return metrics.psnr_y(x, y, 2), metrics.ssim_y(x, y, 2), metrics.psnr_rgb(x, y, 2)

    got = scores(tf.constant(a, tf.float32), tf.constant(b, tf.float32))
    assert float(got[0]) == pytest.approx(float(metrics.psnr_y(a, b, 2)), abs=1e-4)
    assert float(got[1]) == pytest.approx(float(metrics.ssim_y(a, b, 2)), abs=1e-6)


# ---- errors ----


def test_errors_name_the_problem():
    a = np.zeros((20, 20, 3))
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr_y(a, np.zeros((20, 21, 3)), 2)
    with pytest.raises(ValueError, match="protocol"):
        metrics.psnr_y(a, a, 2, protocol="matlab")
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        metrics.psnr_rgb(np.zeros((20, 20)), np.zeros((20, 20)), 2)
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim_y(a, a, 5)
    with pytest.raises(ValueError, match="too small"):
        metrics.psnr_y(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), 2)
