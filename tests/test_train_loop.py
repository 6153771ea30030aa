"""car_tf.train.loop in process: NaN stop, initialising a new run but not a resumed one.

kill -9 and the command line are in tests/test_train_resume.py.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from car_tf.train import Trainer, loop
from car_tf.train import model_dir as model_dir_lib
from car_tf.train.model_dir import initialize_from
from train_fixtures import random_batches as _random_batches
from train_fixtures import saved_model_file as _saved_model_file
from train_fixtures import tiny_config as _config


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = _config(tmp_path, steps=10)
    with pytest.raises(loop.NonFiniteLossError, match=r"step 3: the loss is nan.*ckpt-2"):
        loop.train(config, dataset=_random_batches(2, 32, nan_at=2))
    latest = tf.train.latest_checkpoint(config.model_dir)
    assert latest.endswith("ckpt-2")
    assert not os.path.exists(latest.replace("ckpt-2", "ckpt-3") + ".index")
    assert not os.path.exists(os.path.join(config.model_dir, model_dir_lib.KERAS_FILE))
    reader = tf.train.load_checkpoint(latest)
    for name, _ in tf.train.list_variables(latest):
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), name


@pytest.mark.slow
def test_train_initialises_a_new_run_but_not_a_resumed_one(tmp_path):
    source_path = _saved_model_file(tmp_path, _config(tmp_path).model, seed=5)
    source = keras.models.load_model(source_path)
    # A tiny learning rate: one Adam step moves each weight by about 1e-12.
    config = _config(tmp_path, steps=1, learning_rate=1e-12, init_resampler_from=source_path,
                     init_upscaler_from=source_path)
    loop.train(config, dataset=_random_batches(2, 32))
    trained = keras.models.load_model(os.path.join(config.model_dir, model_dir_lib.KERAS_FILE))
    for got, want in zip(trained.weights, source.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-9)

    # A checkpoint prefix of a training model_dir works as a source too.
    prefix = tf.train.latest_checkpoint(config.model_dir)
    fresh = Trainer(_config(tmp_path)).model
    initialize_from(fresh, _config(tmp_path, init_upscaler_from=prefix))
    for got, want in zip(fresh.upscaler.weights, trained.upscaler.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())

    # Resuming keeps the checkpoint's weights: the init models are not read again.
    os.remove(source_path)
    result = loop.train(
        _config(tmp_path, steps=2, learning_rate=1e-12, init_resampler_from=source_path),
        dataset=_random_batches(2, 32))
    assert result["step"] == 2
