"""car_tf.train.validation: the best-validated weights are kept, and only those."""

import json
import os

import numpy as np
import tensorflow as tf

from car_tf import models, pretrained
from car_tf.train import model_dir as model_dir_lib
from car_tf.train import validation
from train_fixtures import tiny_config as _config


def test_keep_if_best_keeps_only_improvements(tmp_path):
    config = _config(tmp_path)
    model = models.build_car_model(config.model)
    hr = tf.random.stateless_uniform([1, 16, 16, 3], seed=[1, 2])
    best_lr = model.downscale(hr).numpy()
    assert validation.keep_if_best(model, config, 10, {"Set5": {"psnr_y": 30.0}, "Set14": {"psnr_y": 27.0}})
    for variable in model.trainable_variables:
        variable.assign(variable + 0.05)
    # Worse on the first set (better on the second does not count): the best stays.
    assert not validation.keep_if_best(model, config, 20, {"Set5": {"psnr_y": 29.0}, "Set14": {"psnr_y": 28.0}})
    with open(os.path.join(config.model_dir, model_dir_lib.BEST_DIR, model_dir_lib.BEST_JSON)) as handle:
        assert json.load(handle)["step"] == 10
    os.makedirs(config.model_dir, exist_ok=True)
    with open(os.path.join(config.model_dir, "config.json"), "w") as handle:
        json.dump(config.model, handle)
    loaded = pretrained.load_model_checkpoint(config.model_dir, "best")
    np.testing.assert_array_equal(loaded.downscale(hr).numpy(), best_lr)
    assert validation.keep_if_best(model, config, 30, {"Set5": {"psnr_y": 31.0}})
    assert not validation.keep_if_best(model, config, 40, {})
