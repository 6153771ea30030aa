"""Training through the LR codec (car_tf.train.lr_codec and the Trainer's use of it)."""

import numpy as np
import pytest
import tensorflow as tf

from car_tf import models
from car_tf.train import lr_codec
from car_tf.train.trainer import Trainer
from tests.train_fixtures import random_batches, tiny_config


@pytest.mark.parametrize("settings, message", [
    (dict(lr_codec="webp"), "webp has no differentiable model"),
    (dict(lr_codec="jpeg", lr_quality_range=[0, 50]), "1 <= LOW <= HIGH <= 100"),
    (dict(lr_codec="jpeg", lr_quality_range=[90, 30]), "1 <= LOW <= HIGH <= 100"),
    (dict(lr_codec="jpeg", lr_quality_range=["thirty", 50]), "two integers LOW,HIGH"),
    (dict(lr_codec="jpeg", lr_quality_range=[30]), "two integers LOW,HIGH"),
    (dict(rate_weight=0.1), "needs a lossy --lr_codec"),
    (dict(lr_codec="jpeg", rate_weight=-1.0), "rate_weight must be >= 0"),
    (dict(lr_codec="jpeg", codec_rounding_alpha=1.5), "codec_rounding_alpha"),
    (dict(lr_codec="jpeg", codec_distortion="lossless"), "give --rate_weight > 0"),
    (dict(lr_codec="jpeg", rate_weight=0.1, codec_distortion="blurred"),
     "codec_distortion must be one of"),
])
def test_bad_codec_settings_are_one_line_errors(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, **settings)


def test_flag_strings_become_a_quality_pair(tmp_path):
    config = tiny_config(tmp_path, lr_codec="jpeg", lr_quality_range=["30", "95"])
    assert config.lr_quality_range == [30, 95]


def test_qualities_cover_the_range_and_follow_seed_and_step():
    first = lr_codec.draw_qualities(4000, (30, 95), seed=0, step=tf.constant(5, tf.int64))
    again = lr_codec.draw_qualities(4000, (30, 95), seed=0, step=tf.constant(5, tf.int64))
    later = lr_codec.draw_qualities(4000, (30, 95), seed=0, step=tf.constant(6, tf.int64))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, later)
    assert set(np.unique(first.numpy())) == set(range(30, 96))


@pytest.mark.parametrize("impl", ["custom", "composite"])
def test_a_car_step_through_jpeg_trains_the_resampler_and_reports_the_rate(tmp_path, impl):
    model = {**models.default_config(2, "bicubic", "tiny"), "resampler_impl": impl}
    config = tiny_config(tmp_path, model=model, lr_codec="jpeg", lr_quality_range=[40, 60],
                         rate_weight=0.05)
    trainer = Trainer(config)
    hr = next(iter(random_batches(2, 32)))
    with tf.GradientTape() as tape:
        losses = trainer.per_example_losses(hr)
    gradients = tape.gradient(losses["total"], trainer.model.resampler.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)
    assert any(np.abs(g.numpy()).max() > 0 for g in gradients)
    # The rate is part of the total, with its weight.
    assert np.all(losses["rate_bpp"].numpy() > 0)
    expected = (losses["l1"] + config.offset_weight * losses["offset"]
                + config.tv_weight * losses["tv"] + 0.05 * losses["rate_bpp"])
    np.testing.assert_allclose(losses["total"].numpy(), expected.numpy(), rtol=1e-5)
    # The upscaler saw the decoded JPEG, not the clean LR.
    clean = trainer.model(hr)["sr"]
    through = trainer.model.upscaler(
        lr_codec.compress_lr(trainer.model.downscale(hr), config, tf.constant(0, tf.int64))[0])
    assert not np.allclose(clean.numpy(), through.numpy(), atol=1e-3)
    terms = trainer.train_step(next(trainer.distribute(random_batches(2, 32))))
    assert "rate_bpp" in terms and np.isfinite(float(terms["total"]))


def test_car_with_edsr_through_jpeg_trains_both_networks(tmp_path):
    # tiny_config's model is CAR with an EDSR upscaler: the gradient must reach the
    # ResamplerNet through the JPEG and the EDSR that sees the decoded LR.
    config = tiny_config(tmp_path, lr_codec="jpeg", lr_quality_range=[30, 95], rate_weight=0.3,
                         rate_term="log_bits")
    trainer = Trainer(config)
    hr = next(iter(random_batches(2, 32)))
    resampler = trainer.model.resampler.trainable_variables
    upscaler = trainer.model.upscaler.trainable_variables
    assert resampler and upscaler
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(trainer.per_example_losses(hr)["total"])
    gradients = tape.gradient(total, resampler + upscaler)
    for grads in (gradients[:len(resampler)], gradients[len(resampler):]):
        assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
        assert any(np.abs(g.numpy()).max() > 0 for g in grads)
    terms = trainer.train_step(next(trainer.distribute(random_batches(2, 32))))
    assert np.isfinite(float(terms["total"])) and float(terms["rate_bpp"]) > 0


def test_an_sr_baseline_step_through_jpeg(tmp_path):
    config = tiny_config(tmp_path, mode="sr_baseline", lr_codec="jpeg")
    trainer = Trainer(config)
    terms = trainer.train_step(next(trainer.distribute(random_batches(2, 32))))
    assert np.isfinite(float(terms["total"])) and float(terms["rate_bpp"]) > 0


def test_a_fixed_kernel_trains_through_jpeg_validates_and_resumes(tmp_path):
    from PIL import Image

    from car_tf import pretrained
    from car_tf.train.loop import train
    from tests.synthetic_images import photo

    val_dir = tmp_path / "val"
    val_dir.mkdir()
    Image.fromarray(photo(64, 64)).save(val_dir / "a.png")
    config = tiny_config(tmp_path, model=models.fixed_config(2), lr_codec="jpeg",
                         rate_weight=0.02, steps=3, val_dirs=[str(val_dir)],
                         learning_rate=1e-2)
    result = train(config, dataset=random_batches(2, 32))
    assert result["step"] == 3 and result["scores"]["val"]["psnr_y"] > 0
    model = pretrained.load_model(config.model_dir)
    assert isinstance(model, models.FixedKernelModel)
    # It moved away from the area average it started from.
    start = models.FixedKernelModel(2).kernel().numpy()
    assert np.abs(model.kernel().numpy() - start).max() > 1e-4
    # The same model_dir resumes (its config has no CAR-only keys to default).
    resumed = train(tiny_config(tmp_path, model=models.fixed_config(2), lr_codec="jpeg",
                                rate_weight=0.02, steps=4, learning_rate=1e-2),
                    dataset=random_batches(2, 32))
    assert resumed["step"] == 4
    with pytest.raises(ValueError, match="fixed kernel trains in --mode=car"):
        tiny_config(tmp_path, model=models.fixed_config(2), init_resampler_from="car-x2-bicubic")


def test_log_bits_rate_term_prices_a_bit_by_the_examples_own_distortion(tmp_path):
    from car_tf.train.trainer import rate_penalty

    config = tiny_config(tmp_path, lr_codec="jpeg", rate_weight=0.3, rate_term="log_bits")
    l1 = tf.constant([0.02, 0.04])
    rate = tf.Variable([0.5, 0.5])
    with tf.GradientTape() as tape:
        penalty = rate_penalty(config, l1, rate)
    np.testing.assert_allclose(penalty.numpy(), 0.3 * l1.numpy() * np.log(0.5), rtol=1e-6)
    # d/d rate = 0.3 * l1 / rate: twice the distortion, twice the price of a bit.
    np.testing.assert_allclose(tape.gradient(penalty, rate).numpy(), [0.012, 0.024], rtol=1e-5)
    with pytest.raises(ValueError, match="rate_term must be one of"):
        tiny_config(tmp_path, lr_codec="jpeg", rate_weight=0.3, rate_term="nats")


def test_lossless_codec_distortion_scores_the_clean_lr_and_prices_its_jpeg_bits(tmp_path):
    from car_tf import losses as car_losses

    hr = next(iter(random_batches(2, 32)))
    common = dict(model=models.fixed_config(2), lr_codec="jpeg", lr_quality_range=[40, 60],
                  rate_weight=0.3, rate_term="log_bits")
    lossless = Trainer(tiny_config(tmp_path / "a", codec_distortion="lossless", **common))
    decoded = Trainer(tiny_config(tmp_path / "b", **common))
    decoded.model.raw_kernel.assign(lossless.model.raw_kernel)
    with tf.GradientTape() as tape:
        terms = lossless.per_example_losses(hr)
    # The distortion is that of the clean LR through bicubic, as without a codec ...
    clean_l1 = car_losses.l1_loss(hr, lossless.model(hr)["sr"])
    np.testing.assert_allclose(terms["l1"].numpy(), clean_l1.numpy(), rtol=1e-5)
    # ... while the rate is the JPEG's, the same as the decoded run's, and priced in the total.
    decoded_terms = decoded.per_example_losses(hr)
    np.testing.assert_allclose(terms["rate_bpp"].numpy(), decoded_terms["rate_bpp"].numpy(),
                               rtol=1e-5)
    assert not np.allclose(terms["l1"].numpy(), decoded_terms["l1"].numpy(), rtol=1e-3)
    expected = terms["l1"] + 0.3 * tf.stop_gradient(terms["l1"]) * tf.math.log(terms["rate_bpp"])
    np.testing.assert_allclose(terms["total"].numpy(), expected.numpy(), rtol=1e-5)
    gradient = tape.gradient(terms["total"], lossless.model.raw_kernel)
    assert gradient is not None and np.abs(gradient.numpy()).max() > 0
