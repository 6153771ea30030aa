"""car_tf.inference with tiny models: padding, tiles, receptive fields, tiled == untiled."""

from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

from car_tf import inference
from car_tf.models import build_car_model, default_config, size_multiple
from synthetic_images import photo


def _model(scale, upscaler, seed, head_kernel_size=3):
    tf.keras.utils.set_random_seed(seed)
    config = default_config(scale, upscaler, variant="tiny")
    config["resampler_head_kernel_size"] = head_kernel_size
    return build_car_model(config)


@pytest.fixture(scope="module")
def x4_edsr():
    return _model(4, "edsr", 4)


@pytest.fixture(scope="module")
def x2_bicubic():
    return _model(2, "bicubic", 2)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_reflect_indices_match_numpy_reflect_pad(size):
    values = np.arange(size)
    for pad in (0, 1, size, 3 * size + 5):
        expected = np.pad(values, (0, pad), mode="reflect") if size > 1 else np.zeros(size + pad)
        np.testing.assert_array_equal(inference.reflect_indices(0, size + pad, size), expected)


def test_plan_tiles_cover_the_image_once_with_aligned_clipped_windows():
    tiles = inference.plan_tiles(40, 56, tile=20, halo=5, align=8)
    covered = np.zeros((40, 56), int)
    for tile in tiles:
        cy0, cy1, cx0, cx1 = tile.core
        wy0, wy1, wx0, wx1 = tile.window
        covered[cy0:cy1, cx0:cx1] += 1
        for value in (*tile.core, *tile.window):
            assert value % 8 == 0
        # tile 20 -> 24, halo 5 -> 8, clipped at the image edges.
        assert cy1 - cy0 <= 24 and cx1 - cx0 <= 24
        assert wy0 == max(0, cy0 - 8) and wy1 == min(40, cy1 + 8)
        assert wx0 == max(0, cx0 - 8) and wx1 == min(56, cx1 + 8)
    np.testing.assert_array_equal(covered, 1)
    assert len(tiles) == 2 * 3
    assert inference.plan_tiles(40, 56, tile=0, halo=5, align=8)[0].window == (0, 40, 0, 56)


def test_bicubic_upscaler_reaches_two_lr_pixels(x2_bicubic):
    assert inference.upscale_reach(x2_bicubic) == inference.CUBIC_REACH == 2


def test_tap_reach_is_kernel_radius_plus_offset_plus_bilinear():
    # k = 13 at scale 4: radius 6, offsets below 1 LR pixel = 4 HR pixels, +1.
    assert inference.resampler_tap_reach(4, 13) == 6 + 4 + 1
    assert inference.resampler_tap_reach(2, 7) == 3 + 2 + 1


def _window_gradient_reach(gradient, start, end):
    """How far beyond [start, end) on either axis the gradient magnitude is non-zero."""
    rows, cols = np.nonzero(np.abs(gradient).sum(-1))
    return max(start - rows.min(), rows.max() + 1 - end, start - cols.min(), cols.max() + 1 - end)


@pytest.mark.parametrize("head_kernel_size", [3, 1])
@pytest.mark.parametrize("scale", [2, 4])
def test_resampler_net_reach_bounds_the_true_dependence_tightly(scale, head_kernel_size):
    model = _model(scale, "bicubic", 10 + scale, head_kernel_size)
    hr = tf.Variable(np.random.default_rng(scale).random((1, 192, 192, 3)).astype(np.float32))
    start, end = 64, 128  # an output window aligned to the 8-pixel grid, as tiles are
    with tf.GradientTape() as tape:
        kernels, offsets_x, offsets_y = model.resampler(hr)
        window = np.s_[0, start // scale:end // scale, start // scale:end // scale]
        total = (tf.reduce_sum(tf.square(kernels[window])) + tf.reduce_sum(offsets_x[window])
                 + tf.reduce_sum(offsets_y[window]))
    measured = _window_gradient_reach(tape.gradient(total, hr).numpy()[0], start, end)
    computed = inference.resampler_net_reach(model.resampler)
    # Never an underestimate; and within one 8-pixel block of the truth (ReLUs
    # of random weights may zero the outermost paths).
    assert computed - 8 < measured <= computed


def test_edsr_reach_bounds_the_true_dependence_tightly(x4_edsr):
    lr = tf.Variable(np.random.default_rng(0).random((1, 40, 40, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(x4_edsr.upscale(lr)[0, 80:88, 80:88])
    measured = _window_gradient_reach(tape.gradient(total, lr).numpy()[0], 20, 22)
    computed = inference.upscale_reach(x4_edsr)
    # tiny EDSR x4: head, 2 block convs, body_out, up0 at LR; up1 at 2x, tail at 4x.
    assert computed == 6
    assert computed - 1 <= measured <= computed


def test_downscale_reach_is_the_larger_of_network_and_taps(x4_edsr):
    net = inference.resampler_net_reach(x4_edsr.resampler)
    taps = inference.resampler_tap_reach(4, x4_edsr.kernel_size)
    assert inference.downscale_reach(x4_edsr) == max(net, taps)


@pytest.mark.parametrize("height,width", [(37, 53), (5, 3), (32, 48), (1, 1)])
def test_any_size_is_reflect_padded_and_cropped_back(x2_bicubic, height, width):
    image = photo(height, width, seed=height)
    lr = inference.Runner(x2_bicubic, tile=0).downscale(image)
    assert lr.shape == (-(-height // 2), -(-width // 2), 3)
    padded_h, padded_w = inference.padded_size(height, 2), inference.padded_size(width, 2)
    assert padded_h % size_multiple(2) == 0 and padded_h >= 16
    padded = image[inference.reflect_indices(0, padded_h, height)][
        :, inference.reflect_indices(0, padded_w, width)]
    expected = x2_bicubic.downscale_uint8(padded[np.newaxis])[0].numpy()
    np.testing.assert_array_equal(lr, expected[:lr.shape[0], :lr.shape[1]])
    sr = inference.Runner(x2_bicubic, tile=0).upscale(lr)
    assert sr.shape == (lr.shape[0] * 2, lr.shape[1] * 2, 3)


def test_tiled_equals_untiled_on_1024x768(x4_edsr):
    image = photo(768, 1024)
    whole = inference.Runner(x4_edsr, tile=0)
    tiled = inference.Runner(x4_edsr, tile=128)
    assert len(tiled.downscale_tiles(768, 1024)) == 6 * 8
    done = []
    lr_whole = whole.downscale(image)
    lr_tiled = tiled.downscale(image, progress=lambda i, n: done.append((i, n)))
    assert done[-1] == (48, 48)
    assert lr_whole.shape == (192, 256, 3)
    assert np.abs(lr_whole.astype(int) - lr_tiled).max() <= 1
    # 1-level differences come from float rounding at the quantiser, so they are rare.
    assert np.mean(lr_whole != lr_tiled) < 1e-3

    sr_whole = whole.upscale(lr_whole)
    sr_tiled = tiled.upscale(lr_whole)
    assert sr_whole.shape == (768, 1024, 3)
    assert np.abs(sr_whole.astype(int) - sr_tiled).max() <= 1


def test_tiled_equals_untiled_for_odd_sizes_and_alpha(x2_bicubic):
    image = photo(101, 77, seed=3)
    alpha = photo(101, 77, seed=4)[:, :, 0]
    whole = inference.Runner(x2_bicubic, tile=0)
    tiled = inference.Runner(x2_bicubic, tile=16)
    assert np.abs(whole.downscale(image).astype(int) - tiled.downscale(image)).max() <= 1
    lr_alpha = whole.downscale_alpha(alpha)
    assert lr_alpha.shape == (51, 39)
    np.testing.assert_array_equal(lr_alpha, tiled.downscale_alpha(alpha))
    np.testing.assert_array_equal(whole.upscale_alpha(lr_alpha), tiled.upscale_alpha(lr_alpha))
    assert whole.upscale_alpha(lr_alpha).shape == (102, 78)


def test_alpha_resizing_keeps_constant_and_follows_bicubic(x2_bicubic):
    runner = inference.Runner(x2_bicubic, tile=0)
    np.testing.assert_array_equal(runner.downscale_alpha(np.full((20, 30), 77, np.uint8)), 77)
    ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))  # 32 x 32
    expected = tf.image.resize(ramp[None, :, :, None].astype(np.float32), [16, 16],
                               method="bicubic", antialias=True)[0, :, :, 0].numpy()
    np.testing.assert_array_equal(runner.downscale_alpha(ramp),
                                  np.round(np.clip(expected, 0, 255)).astype(np.uint8))


def test_windows_are_bounded_by_tile_plus_halo(x4_edsr):
    runner = inference.Runner(x4_edsr, tile=64)
    halo = -(-runner.downscale_halo // 8) * 8
    shapes = []

    def record(window):
        shapes.append(window.shape)
        return np.zeros((window.shape[0] // 4, window.shape[1] // 4, 3), np.uint8)

    tiles = runner.downscale_tiles(300, 500)
    # The tiles cover the padded image, 304 x 504 (multiples of 8).
    assert max(tile.window[1] for tile in tiles) == 304
    assert max(tile.window[3] for tile in tiles) == 504
    out = inference.run_tiled(photo(300, 500), record, (75, 125, 3), Fraction(1, 4), tiles)
    assert out.shape == (75, 125, 3)
    assert len(shapes) == len(tiles) == 5 * 8
    assert max(max(shape[:2]) for shape in shapes) <= 64 + 2 * halo


def test_runner_rejects_bad_arrays(x2_bicubic):
    runner = inference.Runner(x2_bicubic, tile=0)
    with pytest.raises(ValueError, match="uint8"):
        runner.downscale(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        runner.upscale(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="tile"):
        inference.Runner(x2_bicubic, tile=-1)
