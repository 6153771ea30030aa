"""car_tf.analysis.fixed_kernel: the fixed-kernel yardstick fits, keeps its constraint, and scores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from car_tf import metrics
from car_tf.analysis import fixed_kernel
from car_tf.protocol import sr_to_uint8
from synthetic_images import photo


def _images():
    return [photo(64, 64, seed) for seed in range(3)]


@pytest.mark.parametrize("parameterisation", ["signed", "positive"])
def test_starts_as_the_area_average(parameterisation):
    kernel = fixed_kernel.fixed_kernel_model(2, parameterisation)
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(1, 2))
    area = tf.nn.avg_pool2d(hr, 2, 2, "VALID")
    np.testing.assert_allclose(kernel.downscale_outputs(hr)["lr_float"].numpy(), area.numpy(),
                               atol=2e-3)


def test_fitting_lowers_the_loss_and_keeps_each_constraint():
    images = _images()
    signed = fixed_kernel.fixed_kernel_model(2, "signed")
    losses = fixed_kernel.fit(signed, images, steps=30, crop_size=32, batch_size=4)
    assert np.mean(losses[-5:]) < losses[0]
    weights = signed.kernel().numpy()
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert weights.min() < 0.0  # the fit finds negative lobes at once
    positive = fixed_kernel.fixed_kernel_model(2, "positive")
    fixed_kernel.fit(positive, images, steps=10, crop_size=32, batch_size=4)
    assert positive.kernel().numpy().min() > 0.0
    assert positive.kernel().numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_score_is_the_protocols_psnr_of_each_pipeline():
    kernel = fixed_kernel.fixed_kernel_model(2, "signed")
    images = _images()
    fixed, bicubic = fixed_kernel.score(kernel, images)
    expected_fixed, expected_bicubic = [], []
    for hr in images:  # 64x64: no crop needed
        hr01 = tf.constant(hr[None], tf.float32) / 255.0
        lr_float = kernel.downscale_outputs(hr01)["lr_float"]
        lr = tf.round(tf.clip_by_value(lr_float, 0.0, 1.0) * 255.0) / 255.0
        sr = kernel.upscaler(lr)
        expected_fixed.append(metrics.psnr_y(hr, sr_to_uint8(sr.numpy()[0], "standard"), 2))
        lr = tf.image.resize(hr01, [32, 32], method="bicubic", antialias=True)
        lr = tf.round(tf.clip_by_value(lr, 0.0, 1.0) * 255.0) / 255.0
        up = tf.image.resize(lr, [64, 64], method="bicubic")
        expected_bicubic.append(metrics.psnr_y(hr, sr_to_uint8(up.numpy()[0], "standard"), 2))
    assert fixed == pytest.approx(np.mean(expected_fixed), abs=1e-9)
    assert bicubic == pytest.approx(np.mean(expected_bicubic), abs=1e-9)
    assert fixed != pytest.approx(bicubic, abs=0.01)
    with pytest.raises(ValueError, match="parameterisation"):
        fixed_kernel.fixed_kernel_model(2, "relu")
