"""car_tf.protocol: the SR protocol's helpers."""

import numpy as np
import pytest
import tensorflow as tf

from car_tf import metrics, protocol
from evaluation_fixtures import smooth_image


def test_bicubic_downscale_is_antialiased_and_on_8_bit_levels():
    hr = tf.random.stateless_uniform([1, 32, 32, 3], seed=[3, 4])
    lr = protocol.bicubic_downscale(hr, 4).numpy()
    assert lr.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    # Antialiasing averages ~4x4 HR pixels: far smoother than point sampling.
    assert lr.std() < 0.6 * hr.numpy().std()


def test_the_uint8_edge_is_the_float_downscale():
    hr = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    lr = protocol.bicubic_downscale_uint8(hr, 2)
    assert lr.dtype == np.uint8 and lr.shape == (12, 20, 3)
    expected = protocol.bicubic_downscale(tf.constant(hr[None], tf.float32) / 255.0, 2)
    np.testing.assert_array_equal(lr, np.round(expected.numpy()[0] * 255).astype(np.uint8))



def _keys_cubic(t):
    t = np.abs(t)
    return np.where(
        t <= 1,
        1.5 * t**3 - 2.5 * t**2 + 1,
        np.where(t <= 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0),
    )


def _matlab_imresize_down_1d(signal, scale):
    """MATLAB imresize(x, 1/scale) along axis 0, bicubic with antialiasing: the cubic kernel
    stretched by `scale`, weights normalised to 1, out-of-range taps mirrored."""
    size = signal.shape[0]
    out = []
    for j in range(size // scale):
        centre = (j + 0.5) * scale - 0.5  # output pixel centre in input pixel coordinates
        taps = np.arange(int(np.floor(centre - 2 * scale)), int(np.ceil(centre + 2 * scale)) + 1)
        weights = _keys_cubic((centre - taps) / scale)
        weights /= weights.sum()
        mirrored = np.where(taps < 0, -taps - 1, np.where(taps >= size, 2 * size - taps - 1, taps))
        out.append(np.tensordot(weights, signal[mirrored], axes=1))
    return np.stack(out)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_downscale_matches_matlab_imresize_in_the_interior(scale):
    hr = smooth_image(48, 40, 7)
    expected = _matlab_imresize_down_1d(hr.astype(np.float64) / 255, scale)
    expected = _matlab_imresize_down_1d(expected.transpose(1, 0, 2), scale).transpose(1, 0, 2)
    got = tf.image.resize(
        tf.constant(hr[None], tf.float32) / 255.0,
        [48 // scale, 40 // scale],
        method="bicubic",
        antialias=True,
    ).numpy()[0]
    border = 2  # LR pixels whose kernel (2 * scale HR pixels each side) reaches past the edge
    interior = (slice(border, -border), slice(border, -border))
    np.testing.assert_allclose(got[interior], expected[interior], atol=2e-6)
    assert np.abs(got - expected).max() > 1e-4  # the borders do differ (MATLAB mirrors)
    lr = protocol.bicubic_downscale_uint8(hr, scale)
    np.testing.assert_array_equal(lr, np.round(np.clip(got, 0, 1) * 255).astype(np.uint8))


def test_crop_keeps_the_top_left_corner():
    image = np.arange(30 * 21 * 3).reshape(30, 21, 3)
    cropped = protocol.crop_to_multiple(image, 8)
    assert cropped.shape == (24, 16, 3)
    np.testing.assert_array_equal(cropped, image[:24, :16])


def test_psnr_y_of_float_sr_scores_the_8_bit_image_evaluate_would_write():
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    # Off by a third of a level (rounds back to hr) in one half, by 4.4 levels in the other.
    sr = hr.astype(np.float64) / 255.0 + np.where(np.arange(16)[:, None, None] < 8, 0.33, 4.4) / 255.0
    expected = metrics.psnr_y(hr, protocol.sr_to_uint8(sr, "standard"), 2)
    assert protocol.psnr_y_of_float_sr(hr, sr[None].astype(np.float32), 2) == pytest.approx(expected)
    # It scores the rounded image: the third-of-a-level error is gone, so it beats the float
    # image's own PSNR.
    assert expected > metrics.psnr_y(hr.astype(np.float64) / 255.0, np.clip(sr, 0, 1), 2)


def test_crop_for_scale_keeps_what_the_model_and_ssim_can_take():
    image = np.zeros((30, 21, 3), np.uint8)
    assert protocol.crop_for_scale(image, 2).shape == (24, 16, 3)
    # x4: the model takes 16 (twice lcm(8, 4)); shaving 4 pixels per side leaves no room
    # for the 11-pixel SSIM window, so 24 is the least side.
    assert protocol.smallest_hr_side(4) == 19
    assert protocol.crop_for_scale(np.zeros((23, 40, 3), np.uint8), 4) is None
    assert protocol.crop_for_scale(np.zeros((24, 40, 3), np.uint8), 4).shape == (24, 40, 3)
