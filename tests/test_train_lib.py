"""car_tf.train_lib in process: schedule, strategy choice, model_dir guard, modes, NaN stop.

Distribution runs in tests/test_train_distributed.py, kill -9 and the command line in
tests/test_train_resume.py.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from car_tf import models, train_lib


def _config(tmp_path, **overrides):
    settings = dict(
        model=models.default_config(2, "edsr", "tiny"), model_dir=str(tmp_path / "model"),
        batch_size=2, crop_size=32, steps=4, learning_rate=1e-3, lr_halve_every=2, log_every=1,
        val_every=0, checkpoint_every=1,
    )
    settings.update(overrides)
    return train_lib.TrainConfig(**settings)


def _random_batches(batch_size, crop_size, nan_at=None):
    """Endless float batches; batch number `nan_at` (0-based) is all NaN."""

    def batch(index):
        images = tf.random.stateless_uniform([batch_size, crop_size, crop_size, 3], seed=[index, 7])
        if nan_at is None:
            return images
        return tf.where(index == nan_at, tf.fill(tf.shape(images), np.nan), images)

    return tf.data.Dataset.counter().map(batch)


def test_learning_rate_halves_every_n_steps_and_serialises(tmp_path):
    schedule = train_lib.learning_rate_schedule(_config(tmp_path, learning_rate=4e-4, lr_halve_every=10))
    rates = [float(schedule(step)) for step in (0, 9, 10, 19, 20, 35)]
    np.testing.assert_allclose(rates, [4e-4, 4e-4, 2e-4, 2e-4, 1e-4, 5e-5], rtol=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(20)) == pytest.approx(1e-4)


def test_optimizer_is_adam_with_the_papers_settings(tmp_path):
    optimizer = train_lib.create_optimizer(_config(tmp_path))
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-6)


@pytest.mark.parametrize(
    "tf_config, expected",
    [
        ("", 1),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}), 1),
        (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}), 2),
        (json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
                     "task": {"type": "chief", "index": 0}}), 3),
    ],
)
def test_cluster_worker_count_reads_tf_config(tf_config, expected):
    assert train_lib.cluster_worker_count(tf_config) == expected


def test_single_process_strategy_is_the_default_one(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = train_lib.create_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert train_lib.is_chief(strategy)


def test_config_rejects_a_bad_crop_and_sr_baseline_without_edsr(tmp_path):
    with pytest.raises(ValueError, match="crop_size 36"):
        _config(tmp_path, crop_size=36)
    with pytest.raises(ValueError, match="--upscaler=edsr"):
        _config(tmp_path, mode="sr_baseline", model=models.default_config(2, "bicubic", "tiny"))


def test_model_dir_of_another_model_or_mode_is_refused(tmp_path):
    config = _config(tmp_path)
    train_lib.prepare_model_dir(config)
    with open(os.path.join(config.model_dir, "config.json")) as handle:
        assert json.load(handle) == config.model

    # Another implementation of the same op is the same model; longer training is fine.
    train_lib.prepare_model_dir(_config(tmp_path, steps=10, model={**config.model, "resampler_impl": "composite"}))
    with pytest.raises(train_lib.ModelDirMismatchError, match="edsr_blocks"):
        train_lib.prepare_model_dir(_config(tmp_path, model={**config.model, "edsr_blocks": 3}))
    with pytest.raises(train_lib.ModelDirMismatchError, match="--mode=car"):
        train_lib.prepare_model_dir(_config(tmp_path, mode="sr_baseline"))


@pytest.mark.slow
def test_sr_baseline_trains_only_the_upscaler_on_bicubic_lr(tmp_path):
    trainer = train_lib.Trainer(_config(tmp_path, mode="sr_baseline"))
    assert {id(v) for v in trainer.variables} == {id(v) for v in trainer.model.upscaler.trainable_variables}
    resampler_before = [v.numpy() for v in trainer.model.resampler.weights]
    upscaler_before = [v.numpy() for v in trainer.variables]
    batches = trainer.distribute(_random_batches(2, 32))
    losses = trainer.train_step(next(batches))
    assert set(losses) == {"total", "l1", "nonfinite_gradients"}
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(resampler_before, trainer.model.resampler.weights))
    assert not any(np.array_equal(a, b.numpy()) for a, b in zip(upscaler_before, trainer.variables))


def test_keep_if_best_keeps_only_improvements(tmp_path):
    from car_tf import pretrained

    config = _config(tmp_path)
    model = models.build_car_model(config.model)
    hr = tf.random.stateless_uniform([1, 16, 16, 3], seed=[1, 2])
    best_lr = model.downscale(hr).numpy()
    assert train_lib.keep_if_best(model, config, 10, {"Set5": {"psnr_y": 30.0}, "Set14": {"psnr_y": 27.0}})
    for variable in model.trainable_variables:
        variable.assign(variable + 0.05)
    # Worse on the first set (better on the second does not count): the best stays.
    assert not train_lib.keep_if_best(model, config, 20, {"Set5": {"psnr_y": 29.0}, "Set14": {"psnr_y": 28.0}})
    with open(os.path.join(config.model_dir, train_lib.BEST_DIR, train_lib.BEST_JSON)) as handle:
        assert json.load(handle)["step"] == 10
    os.makedirs(config.model_dir, exist_ok=True)
    with open(os.path.join(config.model_dir, "config.json"), "w") as handle:
        json.dump(config.model, handle)
    loaded = pretrained.load_model_checkpoint(config.model_dir, "best")
    np.testing.assert_array_equal(loaded.downscale(hr).numpy(), best_lr)
    assert train_lib.keep_if_best(model, config, 30, {"Set5": {"psnr_y": 31.0}})
    assert not train_lib.keep_if_best(model, config, 40, {})


def test_bicubic_lr_is_antialiased_and_on_8_bit_levels():
    hr = tf.random.stateless_uniform([1, 32, 32, 3], seed=[3, 4])
    lr = train_lib.bicubic_lr(hr, 4).numpy()
    assert lr.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    # Antialiasing averages ~4x4 HR pixels: far smoother than point sampling.
    assert lr.std() < 0.6 * hr.numpy().std()


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = _config(tmp_path, steps=10)
    with pytest.raises(train_lib.NonFiniteLossError, match=r"step 3: the loss is nan.*ckpt-2"):
        train_lib.train(config, dataset=_random_batches(2, 32, nan_at=2))
    latest = tf.train.latest_checkpoint(config.model_dir)
    assert latest.endswith("ckpt-2")
    assert not os.path.exists(latest.replace("ckpt-2", "ckpt-3") + ".index")
    assert not os.path.exists(os.path.join(config.model_dir, train_lib.KERAS_FILE))
    reader = tf.train.load_checkpoint(latest)
    for name, _ in tf.train.list_variables(latest):
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.isfinite(value).all(), name


@pytest.mark.slow
def test_benchmark_reports_rates_and_memory(tmp_path):
    result = train_lib.benchmark(_config(tmp_path), steps=2, warmup_steps=1)
    assert result["steps_per_sec"] > 0
    assert result["examples_per_sec"] == pytest.approx(2 * result["steps_per_sec"])
    assert result["peak_rss_mib"] > 100
    assert result["trainable_parameters"] == sum(int(np.prod(v.shape)) for v in
                                                 models.build_car_model(result["model"]).trainable_weights)


def _saved_model_file(tmp_path, model_config, seed):
    keras.utils.set_random_seed(seed)
    path = str(tmp_path / f"source{seed}.keras")
    models.build_car_model(model_config).save(path)
    return path


def test_a_new_run_starts_from_the_given_resampler_and_upscaler(tmp_path):
    config = _config(tmp_path)
    source = keras.models.load_model(_saved_model_file(tmp_path, config.model, seed=11))
    path = str(tmp_path / "source11.keras")
    fresh = train_lib.Trainer(config).model
    assert not np.array_equal(fresh.resampler.weights[0].numpy(), source.resampler.weights[0].numpy())

    train_lib.initialize_from(
        fresh, _config(tmp_path, init_resampler_from=path, init_upscaler_from=path))
    for part in ("resampler", "upscaler"):
        for got, want in zip(getattr(fresh, part).weights, getattr(source, part).weights):
            np.testing.assert_array_equal(got.numpy(), want.numpy())

    resampler_only = train_lib.Trainer(config).model
    before = [w.numpy() for w in resampler_only.upscaler.weights]
    train_lib.initialize_from(resampler_only, _config(tmp_path, init_resampler_from=path))
    np.testing.assert_array_equal(resampler_only.resampler.weights[3].numpy(),
                                  source.resampler.weights[3].numpy())
    for got, want in zip(resampler_only.upscaler.weights, before):
        np.testing.assert_array_equal(got.numpy(), want)


def test_init_from_refuses_another_architecture_and_impossible_parts(tmp_path):
    config = _config(tmp_path)
    other = _saved_model_file(tmp_path, {**config.model, "edsr_features": 8}, seed=3)
    model = train_lib.Trainer(config).model
    with pytest.raises(ValueError, match="init_upscaler_from.*does not match"):
        train_lib.initialize_from(model, _config(tmp_path, init_upscaler_from=other))
    with pytest.raises(ValueError, match="trains no ResamplerNet"):
        _config(tmp_path, mode="sr_baseline", init_resampler_from=other)
    with pytest.raises(ValueError, match="needs --upscaler=edsr"):
        _config(tmp_path, model=models.default_config(2, "bicubic", "tiny"), init_upscaler_from=other)


@pytest.mark.slow
def test_train_initialises_a_new_run_but_not_a_resumed_one(tmp_path):
    source_path = _saved_model_file(tmp_path, _config(tmp_path).model, seed=5)
    source = keras.models.load_model(source_path)
    # A tiny learning rate: one Adam step moves each weight by about 1e-12.
    config = _config(tmp_path, steps=1, learning_rate=1e-12, init_resampler_from=source_path,
                     init_upscaler_from=source_path)
    train_lib.train(config, dataset=_random_batches(2, 32))
    trained = keras.models.load_model(os.path.join(config.model_dir, train_lib.KERAS_FILE))
    for got, want in zip(trained.weights, source.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-9)

    # A checkpoint prefix of a training model_dir works as a source too.
    prefix = tf.train.latest_checkpoint(config.model_dir)
    fresh = train_lib.Trainer(_config(tmp_path)).model
    train_lib.initialize_from(fresh, _config(tmp_path, init_upscaler_from=prefix))
    for got, want in zip(fresh.upscaler.weights, trained.upscaler.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())

    # Resuming keeps the checkpoint's weights: the init models are not read again.
    os.remove(source_path)
    result = train_lib.train(
        _config(tmp_path, steps=2, learning_rate=1e-12, init_resampler_from=source_path),
        dataset=_random_batches(2, 32))
    assert result["step"] == 2
