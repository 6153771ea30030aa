"""car_tf.train.model_dir: one run per folder, and starting a run from another model."""

import json
import os

import keras
import numpy as np
import pytest

from car_tf import models
from car_tf.train import Trainer
from car_tf.train import model_dir as model_dir_lib
from train_fixtures import saved_model_file as _saved_model_file
from train_fixtures import tiny_config as _config


def test_model_dir_of_another_model_or_mode_is_refused(tmp_path):
    config = _config(tmp_path)
    model_dir_lib.prepare_model_dir(config)
    with open(os.path.join(config.model_dir, "config.json")) as handle:
        assert json.load(handle) == config.model

    # Another implementation of the same op is the same model; longer training is fine.
    model_dir_lib.prepare_model_dir(_config(tmp_path, steps=10, model={**config.model, "resampler_impl": "composite"}))
    with pytest.raises(model_dir_lib.ModelDirMismatchError, match="edsr_blocks"):
        model_dir_lib.prepare_model_dir(_config(tmp_path, model={**config.model, "edsr_blocks": 3}))
    with pytest.raises(model_dir_lib.ModelDirMismatchError, match="--mode=car"):
        model_dir_lib.prepare_model_dir(_config(tmp_path, mode="sr_baseline"))



def test_a_new_run_starts_from_the_given_resampler_and_upscaler(tmp_path):
    config = _config(tmp_path)
    source = keras.models.load_model(_saved_model_file(tmp_path, config.model, seed=11))
    path = str(tmp_path / "source11.keras")
    fresh = Trainer(config).model
    assert not np.array_equal(fresh.resampler.weights[0].numpy(), source.resampler.weights[0].numpy())

    model_dir_lib.initialize_from(
        fresh, _config(tmp_path, init_resampler_from=path, init_upscaler_from=path))
    for part in ("resampler", "upscaler"):
        for got, want in zip(getattr(fresh, part).weights, getattr(source, part).weights):
            np.testing.assert_array_equal(got.numpy(), want.numpy())

    resampler_only = Trainer(config).model
    before = [w.numpy() for w in resampler_only.upscaler.weights]
    model_dir_lib.initialize_from(resampler_only, _config(tmp_path, init_resampler_from=path))
    np.testing.assert_array_equal(resampler_only.resampler.weights[3].numpy(),
                                  source.resampler.weights[3].numpy())
    for got, want in zip(resampler_only.upscaler.weights, before):
        np.testing.assert_array_equal(got.numpy(), want)


def test_init_from_refuses_another_architecture_and_impossible_parts(tmp_path):
    config = _config(tmp_path)
    other = _saved_model_file(tmp_path, {**config.model, "edsr_features": 8}, seed=3)
    model = Trainer(config).model
    with pytest.raises(ValueError, match="init_upscaler_from.*does not match"):
        model_dir_lib.initialize_from(model, _config(tmp_path, init_upscaler_from=other))
    with pytest.raises(ValueError, match="trains no ResamplerNet"):
        _config(tmp_path, mode="sr_baseline", init_resampler_from=other)
    with pytest.raises(ValueError, match="needs --upscaler=edsr"):
        _config(tmp_path, model=models.default_config(2, "bicubic", "tiny"), init_upscaler_from=other)
