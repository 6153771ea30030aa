"""car_tf.batch: one command's files; the whole command is tested in tests/test_cli.py."""

import numpy as np
import pytest

from car_tf import batch, metrics
from synthetic_images import photo


def test_banded_scores_equal_whole_image_metrics():
    reference = photo(70, 40, 8)
    noise = np.random.default_rng(9).integers(-9, 10, reference.shape)
    result = np.clip(reference.astype(int) + noise, 0, 255).astype(np.uint8)
    psnr, ssim = batch.scores(reference, result, shave=2, band_rows=13)
    assert psnr == pytest.approx(float(metrics.psnr_y(reference, result, 2)), rel=1e-9)
    assert ssim == pytest.approx(float(metrics.ssim_y(reference, result, 2)), rel=1e-9)
    assert batch.scores(reference, reference, shave=2)[0] == float("inf")
    assert batch.scores(reference[:12, :12], result[:12, :12], shave=2)[1] is None
