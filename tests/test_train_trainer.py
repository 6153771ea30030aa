"""car_tf.train.trainer: schedule, optimizer, and the sr_baseline step."""

import keras
import numpy as np
import pytest

from car_tf.train import trainer as trainer_lib
from train_fixtures import random_batches as _random_batches
from train_fixtures import tiny_config as _config


def test_learning_rate_halves_every_n_steps_and_serialises(tmp_path):
    schedule = trainer_lib.learning_rate_schedule(_config(tmp_path, learning_rate=4e-4, lr_halve_every=10))
    rates = [float(schedule(step)) for step in (0, 9, 10, 19, 20, 35)]
    np.testing.assert_allclose(rates, [4e-4, 4e-4, 2e-4, 2e-4, 1e-4, 5e-5], rtol=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(20)) == pytest.approx(1e-4)


def test_optimizer_is_adam_with_the_papers_settings(tmp_path):
    optimizer = trainer_lib.create_optimizer(_config(tmp_path))
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-6)


@pytest.mark.slow
def test_sr_baseline_trains_only_the_upscaler_on_bicubic_lr(tmp_path):
    trainer = trainer_lib.Trainer(_config(tmp_path, mode="sr_baseline"))
    assert {id(v) for v in trainer.variables} == {id(v) for v in trainer.model.upscaler.trainable_variables}
    resampler_before = [v.numpy() for v in trainer.model.resampler.weights]
    upscaler_before = [v.numpy() for v in trainer.variables]
    batches = trainer.distribute(_random_batches(2, 32))
    losses = trainer.train_step(next(batches))
    assert set(losses) == {"total", "l1", "nonfinite_gradients"}
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(resampler_before, trainer.model.resampler.weights))
    assert not any(np.array_equal(a, b.numpy()) for a, b in zip(upscaler_before, trainer.variables))
