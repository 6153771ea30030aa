"""car_tf.train.config: TrainConfig refuses settings that cannot train."""

import pytest

from car_tf import models
from train_fixtures import tiny_config as _config


def test_config_rejects_a_bad_crop_and_sr_baseline_without_edsr(tmp_path):
    with pytest.raises(ValueError, match="crop_size 36"):
        _config(tmp_path, crop_size=36)
    with pytest.raises(ValueError, match="--upscaler=edsr"):
        _config(tmp_path, mode="sr_baseline", model=models.default_config(2, "bicubic", "tiny"))
