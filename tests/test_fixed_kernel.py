"""car_tf.fixed_kernel: the fixed-kernel yardstick fits, keeps its constraint, and scores."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from car_tf import fixed_kernel
from synthetic_images import photo


def _images():
    return [photo(64, 64, seed) for seed in range(3)]


@pytest.mark.parametrize("parameterisation", ["signed", "positive"])
def test_starts_as_the_area_average(parameterisation):
    kernel = fixed_kernel.FixedKernel(2, parameterisation)
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(1, 2))
    area = tf.nn.avg_pool2d(hr, 2, 2, "VALID")
    np.testing.assert_allclose(kernel.downscale(hr).numpy(), area.numpy(), atol=2e-3)


def test_fitting_lowers_the_loss_and_keeps_each_constraint():
    images = _images()
    signed = fixed_kernel.FixedKernel(2, "signed")
    losses = fixed_kernel.fit(signed, images, steps=30, crop_size=32, batch_size=4)
    assert np.mean(losses[-5:]) < losses[0]
    weights = signed.kernel().numpy()
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert weights.min() < 0.0  # the fit finds negative lobes at once
    positive = fixed_kernel.FixedKernel(2, "positive")
    fixed_kernel.fit(positive, images, steps=10, crop_size=32, batch_size=4)
    assert positive.kernel().numpy().min() > 0.0
    assert positive.kernel().numpy().sum() == pytest.approx(1.0, abs=1e-5)


def test_score_reports_the_fixed_kernel_and_bicubic():
    kernel = fixed_kernel.FixedKernel(2, "signed")
    fixed, bicubic = fixed_kernel.score(kernel, _images())
    assert 10.0 < fixed < 60.0 and 10.0 < bicubic < 60.0
    with pytest.raises(ValueError, match="parameterisation"):
        fixed_kernel.FixedKernel(2, "relu")
