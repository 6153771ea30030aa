"""car_tf.train.flags: model flags over variant defaults, and every committed config."""

import glob
import os

import pytest
from absl import flags
from absl.testing import flagsaver

from car_tf import models
from car_tf.train import TrainConfig
from car_tf.train import flags as train_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.cfg")))
FLAGS = flags.FLAGS


def _parse(*args):
    FLAGS.unparse_flags()
    FLAGS(["train.py", *args])
    return train_flags.train_config_from_flags()


@pytest.fixture(autouse=True)
def _restore_flags():
    with flagsaver.flagsaver():
        yield
    FLAGS.unparse_flags()


def test_every_model_config_key_is_a_flag():
    for key in models.CONFIG_KEYS:
        assert key in FLAGS, key


def test_model_flags_override_the_variant_and_the_rest_keep_its_defaults():
    config = _parse("--scale=2", "--upscaler=edsr", "--variant=lite", "--edsr_blocks=3",
                    "--quantize_alpha=0", "--model_dir=/tmp/m", "--train_dirs=/tmp/t")
    expected = {**models.default_config(2, "edsr", "lite"), "edsr_blocks": 3, "quantize_alpha": 0.0}
    assert config.model == expected
    assert config.crop_size == 96  # the paper's at x2


def test_training_needs_a_model_dir_and_data():
    with pytest.raises(ValueError, match="--model_dir"):
        _parse("--train_dirs=/tmp/t")
    with pytest.raises(ValueError, match="--train_dirs or --tfds_name"):
        _parse("--model_dir=/tmp/m")


def test_there_are_paper_lite_and_smoke_configs():
    names = {os.path.basename(path) for path in CONFIGS}
    for scale in (2, 4):
        for upscaler in ("edsr", "bicubic"):
            assert f"car_x{scale}_{upscaler}_paper.cfg" in names
            assert f"car_x{scale}_{upscaler}_lite.cfg" in names
        assert f"sr_x{scale}_edsr_lite.cfg" in names
    assert "smoke.cfg" in names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_to_a_valid_train_config(path):
    config = _parse(f"--flagfile={path}", "--model_dir=/tmp/m", "--train_dirs=/tmp/t")
    assert isinstance(config, TrainConfig)
    assert config.lr_halve_every <= config.steps
    name = os.path.basename(path)
    if name.endswith("_paper.cfg"):
        scale, upscaler = config.scale, config.model["upscaler"]
        assert config.model == models.default_config(scale, upscaler, "paper")
        assert (config.batch_size, config.crop_size, config.learning_rate) == (16, 48 * scale, 1e-4)


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_baseline_trains_the_same_edsr_as_car_edsr_lite(scale):
    car = _parse(f"--flagfile={REPO}/configs/car_x{scale}_edsr_lite.cfg", "--model_dir=/m", "--train_dirs=/t")
    baseline = _parse(f"--flagfile={REPO}/configs/sr_x{scale}_edsr_lite.cfg", "--model_dir=/m", "--train_dirs=/t")
    assert baseline.mode == "sr_baseline"
    edsr_keys = [key for key in models.CONFIG_KEYS if key.startswith("edsr_")] + ["scale", "upscaler"]
    assert {key: baseline.model[key] for key in edsr_keys} == {key: car.model[key] for key in edsr_keys}
    data = ("batch_size", "crop_size", "seed")
    assert [getattr(baseline, key) for key in data] == [getattr(car, key) for key in data]
    # CAR/EDSR starts from a trained baseline EDSR and trains car.steps more; the
    # baseline then trains as many steps more (docs/RESULTS.md), so the joint run's
    # schedule must be the shorter one.
    assert car.steps < baseline.steps and car.learning_rate <= baseline.learning_rate
    # ...and its ResamplerNet has the architecture car-x{scale}-bicubic ships, so it can start from it.
    bicubic = _parse(f"--flagfile={REPO}/configs/car_x{scale}_bicubic_lite.cfg", "--model_dir=/m",
                     "--train_dirs=/t")
    resampler_keys = [key for key in models.CONFIG_KEYS if key.startswith("resampler_")]
    assert ({key: bicubic.model[key] for key in resampler_keys}
            == {key: car.model[key] for key in resampler_keys})
