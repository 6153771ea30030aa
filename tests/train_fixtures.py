"""A tiny TrainConfig and endless random batches, for the tests of car_tf.train."""

import keras
import numpy as np
import tensorflow as tf

from car_tf import models
from car_tf.train import TrainConfig


def tiny_config(tmp_path, **overrides):
    """A TrainConfig of the tiny x2 EDSR model, 4 steps of batch 2 on 32-pixel crops."""
    settings = dict(
        model=models.default_config(2, "edsr", "tiny"), model_dir=str(tmp_path / "model"),
        batch_size=2, crop_size=32, steps=4, learning_rate=1e-3, lr_halve_every=2, log_every=1,
        val_every=0, checkpoint_every=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def random_batches(batch_size, crop_size, nan_at=None):
    """Endless float batches; batch number `nan_at` (0-based) is all NaN."""

    def batch(index):
        images = tf.random.stateless_uniform([batch_size, crop_size, crop_size, 3], seed=[index, 7])
        if nan_at is None:
            return images
        return tf.where(index == nan_at, tf.fill(tf.shape(images), np.nan), images)

    return tf.data.Dataset.counter().map(batch)


def saved_model_file(tmp_path, model_config, seed):
    """A .keras file of a freshly initialised model (weights drawn from `seed`)."""
    keras.utils.set_random_seed(seed)
    path = str(tmp_path / f"source{seed}.keras")
    models.build_car_model(model_config).save(path)
    return path
