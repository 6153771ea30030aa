"""car_tf.inference with tiny models: padding, tiles, tiled == untiled."""

import os
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

from car_tf import inference
from car_tf.models import build_car_model, default_config, size_multiple
from car_tf.padding import padded_size, reflect_indices
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


@pytest.mark.parametrize("height,width", [(37, 53), (5, 3), (32, 48), (1, 1)])
def test_any_size_is_reflect_padded_and_cropped_back(x2_bicubic, height, width):
    image = photo(height, width, seed=height)
    lr = inference.Runner(x2_bicubic, tile=0).downscale(image)
    assert lr.shape == (-(-height // 2), -(-width // 2), 3)
    padded_h, padded_w = padded_size(height, 2), padded_size(width, 2)
    assert padded_h % size_multiple(2) == 0 and padded_h >= 16
    padded = image[reflect_indices(0, padded_h, height).numpy()][
        :, reflect_indices(0, padded_w, width).numpy()]
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


@pytest.mark.parametrize("model_name", ["car-x4-bicubic", "car-x2-bicubic"])
def test_mixed_bfloat16_is_within_one_level_of_float32_on_a_bundled_model(model_name):
    from car_tf import image_io, pretrained, sample_data

    model = pretrained.load_model(model_name)
    folder = os.path.dirname(sample_data.__file__)
    images = [image_io.read_image(os.path.join(folder, name)).rgb
              for name in ("baby.png", "butterfly.png")]
    exact = inference.Runner(model, tile=256, precision="float32")
    reference = [exact.downscale(image) for image in images]
    fast = inference.Runner(model, tile=256, precision="mixed_bfloat16")
    net = model.resampler
    assert net.stem.compute_dtype == net.res_block0.conv1.compute_dtype == "bfloat16"
    assert net.kernel_head_out.compute_dtype == "float32"
    assert net.offset_x_head_out.compute_dtype == net.offset_y_head_out.compute_dtype == "bfloat16"
    moved = 0
    for image, lr in zip(images, reference):
        difference = np.abs(fast.downscale(image).astype(int) - lr)
        assert difference.max() <= 1
        moved += np.count_nonzero(difference)
    # bfloat16 did run (some pixel moved), and rarely moves one: under 1% here.
    assert 0 < moved < 0.01 * sum(lr.size for lr in reference)
    # A float32 Runner puts the model back.
    inference.Runner(model, tile=256, precision="float32")
    assert net.stem.compute_dtype == "float32"


def test_bfloat16_offsets_move_a_resampled_value_by_far_less_than_a_level():
    # Why set_body_dtype_policy may run the offset heads' last convolutions in bfloat16:
    # even offsets near their +-1 limit, rounded to bfloat16, move the LR of a sharp image
    # by a fraction of a level (the bundled models' own offsets are near 0).
    from car_tf import image_io, pretrained, sample_data
    from car_tf.ops.adaptive_resample import adaptive_resample

    path = os.path.join(os.path.dirname(sample_data.__file__), "butterfly.png")
    hr = tf.constant(image_io.read_image(path).rgb[None, :128, :128] / 255.0, tf.float32)
    rng = np.random.default_rng(5)
    for scale in (2, 4):
        kernels, offsets_x, offsets_y = pretrained.load_model(f"car-x{scale}-bicubic").resampler(hr)
        offsets_x, offsets_y = (tf.constant(rng.uniform(-0.95, 0.95, kernels.shape), tf.float32)
                                for _ in range(2))

        def rounded(offsets):
            return tf.cast(tf.cast(offsets, tf.bfloat16), tf.float32)

        exact = adaptive_resample(hr, kernels, offsets_x, offsets_y, scale)
        coarse = adaptive_resample(hr, kernels, rounded(offsets_x), rounded(offsets_y), scale)
        levels = np.abs(exact.numpy() - coarse.numpy()) * 255
        assert 0 < levels.max() < 0.5


def test_precision_auto_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_bfloat16", lambda: True)
    assert inference.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(inference, "cpu_has_bfloat16", lambda: False)
    assert inference.resolve_precision("auto") == "float32"
    assert inference.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        inference.resolve_precision("float16")
