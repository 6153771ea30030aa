"""car_tf.analysis.kernel_analysis: the three variants, and the statistics, on tiny models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from car_tf import models
from car_tf.analysis import kernel_analysis
from synthetic_images import photo


def _model(normalization):
    tf.keras.utils.set_random_seed(5)  # the clamp model's random heads decide what varies
    config = {**models.default_config(2, "bicubic", "tiny"),
              "resampler_kernel_normalization": normalization}
    model = models.build_car_model(config)
    model(tf.zeros((1, 32, 32, 3)))
    return model


def test_a_model_without_adaptivity_scores_the_same_in_every_variant():
    # A signed model starts as the area average everywhere with zero offsets.
    report = kernel_analysis.analyse(_model("signed"), [photo(40, 48, 1), photo(32, 32, 2)])
    assert report.images == 2
    scores = [report.psnr_y[variant] for variant in kernel_analysis.VARIANTS]
    assert scores == pytest.approx([scores[0]] * 3, abs=1e-6)
    assert report.mean_abs_offset == 0.0 and report.kernel_spatial_std < 1e-6
    assert report.fraction_at_floor is None
    assert report.fraction_clipped == 0.0  # an area average stays inside [0, 1]
    area = np.zeros((7, 7))
    area[3:5, 3:5] = 0.25
    np.testing.assert_allclose(report.mean_kernel, area, atol=1e-6)
    assert any("mean kernel" in line for line in report.lines())


def test_offsets_and_varying_kernels_change_the_variants():
    model = _model("clamp")  # random initial heads: kernels and offsets vary per pixel
    # ...and the offsets move taps by ~0.76 LR pixel (tanh(1)), so dropping them must show.
    for head in (model.resampler.offset_x_head, model.resampler.offset_y_head):
        head[-1].bias.assign(tf.ones_like(head[-1].bias))
    report = kernel_analysis.analyse(model, [photo(32, 32, 3)])
    assert report.mean_abs_offset > 0.5 and report.offset_spatial_std > 0.0
    assert report.kernel_spatial_std > 0.0
    assert 0.0 < report.fraction_at_floor < 1.0
    assert report.psnr_y["model"] != pytest.approx(report.psnr_y["no offsets"], abs=0.1)
    assert report.mean_kernel.sum() == pytest.approx(1.0, abs=1e-4)


def test_fraction_at_floor_counts_the_taps_the_clamp_set():
    model = _model("clamp")
    # Every pixel gets the same raw kernel: 10 of the 49 taps negative, which the clamp
    # sets to its floor, and the others positive.
    kernel_out = model.resampler.kernel_head[-1]
    kernel_out.kernel.assign(tf.zeros_like(kernel_out.kernel))
    raw = np.ones(49, np.float32)
    raw[np.random.default_rng(0).choice(49, 10, replace=False)] = -1.0
    kernel_out.bias.assign(raw)
    report = kernel_analysis.analyse(model, [photo(32, 32, 4)])
    assert report.fraction_at_floor == pytest.approx(10 / 49, abs=1e-6)
    assert report.kernel_spatial_std < 1e-6


def test_under_a_codec_each_variant_gets_an_rd_curve_and_bd_deltas():
    qualities = [30, 50, 70, 90]
    # Without adaptivity the three variants make the same LR: the same curve, zero deltas.
    flat = kernel_analysis.analyse(_model("signed"), [photo(48, 64, 1)], "jpeg", qualities)
    assert [q for q, _, _ in flat.codec_points["model"]] == qualities
    assert flat.codec_points["model"] == flat.codec_points["mean kernel"]
    assert flat.codec_deltas["model"] == pytest.approx((0.0, 0.0), abs=1e-9)
    # A model whose kernels and offsets vary makes other LR images, so other curves.
    model = _model("clamp")
    for head in (model.resampler.offset_x_head, model.resampler.offset_y_head):
        head[-1].bias.assign(tf.ones_like(head[-1].bias))
    varied = kernel_analysis.analyse(model, [photo(48, 64, 1)], "webp", qualities)
    assert varied.codec_points["model"] != varied.codec_points["mean kernel"]
    rate, psnr = varied.codec_deltas["model"]
    assert np.isfinite(rate) and np.isfinite(psnr) and abs(psnr) > 1e-3
    assert any("BD-rate" in line for line in varied.lines())
    with pytest.raises(ValueError, match="1..100"):
        kernel_analysis.analyse(model, [photo(48, 64, 1)], "jpeg", [0])
