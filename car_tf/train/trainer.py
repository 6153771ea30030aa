"""The Trainer: model, optimizer and the distributed train step of one TrainConfig.

Distribution follows tf.distribute's custom-loop recipe: the replica step runs in
`strategy.run` inside a `tf.function`; each replica averages its per-example losses over
the *global* batch with `tf.nn.compute_average_loss`, so the optimizer's sum of replica
gradients is the gradient of the global mean, whatever the number of replicas.
"""

import keras
import tensorflow as tf

from car_tf import losses as car_losses_lib
from car_tf import models
from car_tf.protocol import bicubic_downscale
from car_tf.train.lr_codec import compress_lr


def learning_rate_schedule(config):
    """Initial rate halved every `lr_halve_every` steps.

    A Keras schedule of optimizer.iterations, so a restored optimizer resumes the
    schedule where it stopped, and the schedule serialises with the optimizer.
    """
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=config.learning_rate,
        decay_steps=config.lr_halve_every,
        decay_rate=0.5,
        staircase=True,
    )


def create_optimizer(config):
    return keras.optimizers.Adam(
        learning_rate=learning_rate_schedule(config),
        beta_1=config.adam_beta1,
        beta_2=config.adam_beta2,
        epsilon=config.adam_epsilon,
    )


def rate_penalty(config, l1, rate_bpp):
    """The rate term added to each example's loss, [n].

    rate_term "bits": rate_weight * bits per HR pixel, a fixed price per bit.
    rate_term "log_bits": rate_weight * stop_gradient(l1) * ln(bits per HR pixel), whose
      gradient is l1 times that of ln(l1) + rate_weight * ln(bits): the price of a bit
      follows the example's own distortion and rate. In these units rate_weight is the
      slope a Bjontegaard comparison measures (PSNR against log rate): an RD curve
      gaining G dB per decade of rate has rate_weight = G / 20 in L1 terms (L1 scales
      about as the square root of MSE), about 0.3 for bicubic LR under JPEG.
    """
    if config.rate_term == "log_bits":
        return config.rate_weight * tf.stop_gradient(l1) * tf.math.log(rate_bpp)
    return config.rate_weight * rate_bpp


def _as_float_image(batch):
    if batch.dtype == tf.uint8:
        return tf.cast(batch, tf.float32) / 255.0
    return tf.cast(batch, tf.float32)


class Trainer:
    """Model, optimizer and the distributed train step for one TrainConfig.

    Touches no files: checkpointing and summaries belong to car_tf.train.loop, so the
    benchmark and the tests can drive the step alone.
    """

    def __init__(self, config, strategy=None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(
                f"batch_size {config.batch_size} must be a multiple of the {replicas} replicas"
            )
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            # CARModel creates all its weights on construction.
            self.model = models.build_model(config.model)
            if config.mode == "car":
                self.variables = self.model.trainable_variables
            else:
                self.variables = self.model.upscaler.trainable_variables
            self.optimizer = create_optimizer(config)
            self.optimizer.build(self.variables)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self._step = tf.function(self._distributed_step)

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    def learning_rate(self):
        return float(self.optimizer.learning_rate.numpy())

    def _through_codec(self, lr):
        """(the LR the upscaler sees, the rate terms to add to the losses)."""
        if self.config.lr_codec == "png":
            return lr, {}
        decoded, bits_per_pixel = compress_lr(lr, self.config, self.optimizer.iterations)
        seen = lr if self.config.codec_distortion == "lossless" else decoded
        return seen, {"rate_bpp": bits_per_pixel}

    def per_example_losses(self, hr):
        """Loss terms of a float HR batch [n,H,W,3], each of shape [n]; with a codec, also
        "rate_bpp", the rate proxy in bits per HR pixel, weighted into "total" by
        rate_weight."""
        config = self.config
        if config.mode == "car":
            outputs = self.model.downscale_outputs(hr)
            lr, rate = self._through_codec(outputs["lr"])
            outputs["sr"] = self.model.upscaler(lr, training=True)
            if "kernels" in outputs:
                losses = car_losses_lib.car_losses(
                    hr, outputs, offset_weight=config.offset_weight, tv_weight=config.tv_weight,
                    scale=config.scale,
                )
            else:  # a fixed kernel: no offsets to regularise
                l1 = car_losses_lib.l1_loss(hr, outputs["sr"])
                losses = {"total": l1, "l1": l1}
        else:
            lr, rate = self._through_codec(bicubic_downscale(hr, config.scale))
            sr = self.model.upscale(lr, training=True)
            l1 = tf.reduce_mean(tf.abs(sr - hr), axis=[1, 2, 3])
            losses = {"total": l1, "l1": l1}
        if rate:
            losses["rate_bpp"] = rate["rate_bpp"]
            losses["total"] = losses["total"] + rate_penalty(
                config, losses["l1"], rate["rate_bpp"])
        return losses

    def _replica_step(self, batch):
        hr = _as_float_image(batch)
        global_batch = self.config.batch_size
        with tf.GradientTape() as tape:
            per_example = self.per_example_losses(hr)
            loss = tf.nn.compute_average_loss(per_example["total"], global_batch_size=global_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        gradients = tape.gradient(loss, self.variables)
        # Keras' apply_gradients sums the replicas' gradients (an all-reduce) first.
        self.optimizer.apply_gradients(zip(gradients, self.variables))
        terms = {
            name: tf.nn.compute_average_loss(values, global_batch_size=global_batch)
            for name, values in per_example.items()
        }
        # Summed over replicas below: > 0 when any replica saw a NaN or Inf gradient.
        terms["nonfinite_gradients"] = 1.0 - tf.cast(
            tf.math.is_finite(tf.linalg.global_norm(gradients)), tf.float32
        )
        return terms

    def _distributed_step(self, distributed_batch):
        per_replica = self.strategy.run(self._replica_step, args=(distributed_batch,))
        return {
            name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in per_replica.items()
        }

    def train_step(self, distributed_batch):
        """One optimizer step on a batch from `distribute`; returns the global mean of
        each loss term (scalar tensors) and `nonfinite_gradients`."""
        return self._step(distributed_batch)

    def distribute(self, dataset):
        """An iterator over `dataset` (batched with the global batch size) split over replicas."""
        options = tf.data.Options()
        # Each worker builds the whole pipeline and keeps every n-th batch: the input is
        # an in-memory cache of decoded images, not files that could be split.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return iter(self.strategy.experimental_distribute_dataset(dataset.with_options(options)))
