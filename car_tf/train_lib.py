"""The training loop of CAR: distribution, the train step, checkpoints, validation, summaries.

Two modes:
  car          ResamplerNet, quantiser and upscaler trained end to end on the loss of
               paper eq. 11 (car_tf.losses.car_losses), as in the paper.
  sr_baseline  only the upscaler (EDSR), on HR images downscaled by antialiased bicubic
               and quantised to 8 bits: the "bicubic down, same SR network up" baseline.
               The CARModel is still built and saved whole, so `model.upscale(lr)` loads
               like any CAR model; its ResamplerNet keeps its initial weights and is
               not meant to be used.

Distribution follows tf.distribute's custom-loop recipe: the replica step runs in
`strategy.run` inside a `tf.function`; each replica averages its per-example losses over
the *global* batch with `tf.nn.compute_average_loss`, so the optimizer's sum of replica
gradients is the gradient of the global mean, whatever the number of replicas.

Files under model_dir:
  config.json          the resolved model config (car_tf.models.build_car_model's input)
  train_config.json    every training setting, mode included
  checkpoint, ckpt-N.* tf.train.Checkpoint(model=CARModel, optimizer=Adam); N = step
  model.keras          the whole model, written at a clean exit
  best/                the weights with the best validation PSNR-Y so far (first val set),
                       model.weights.h5 + best.json (step and scores); the paper selects its
                       models by validation the same way
  train/, eval/        TensorBoard event files
"""

import dataclasses
import datetime
import json
import logging
import math
import os
import resource
import shutil
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from car_tf import data, eval_lib, image_io, models, pretrained
from car_tf import losses as car_losses_lib
from car_tf.quantize import quantize_8bit

MODES = ("car", "sr_baseline")
CONFIG_FILE = "config.json"
TRAIN_CONFIG_FILE = "train_config.json"
KERAS_FILE = "model.keras"
BEST_DIR = "best"
BEST_WEIGHTS = "model.weights.h5"
BEST_JSON = "best.json"
CHECKPOINT_PREFIX = "ckpt"
# Model config keys that may change between runs on the same model_dir: they pick an
# implementation, not the weights.
INTERCHANGEABLE_KEYS = ("resampler_impl",)


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN or Inf; the run stops without saving."""


class ModelDirMismatchError(ValueError):
    """model_dir holds a run whose model config or mode differs from the requested one."""


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run. Field names are the tools/train.py flag names.

    model: the resolved model config (keys of car_tf.models.default_config).
    batch_size: the global batch, split over all replicas of all workers.
    crop_size: side of the square HR training crops, in HR pixels.
    lr_halve_every: the learning rate halves every this many steps (staircase).
    *_every: intervals in steps; 0 turns validation / checkpoints off between the
      final ones, which always happen at the last step and at a clean exit.
    init_resampler_from, init_upscaler_from: a model (bundled name, .keras file,
      training model_dir, or a checkpoint prefix model_dir/ckpt-N) whose ResamplerNet /
      upscaler weights a new run starts from; the architectures must match. Ignored
      when the run resumes from a checkpoint.
    """

    model: dict
    model_dir: str
    mode: str = "car"
    train_dirs: list = dataclasses.field(default_factory=list)
    tfds_name: str = ""
    tfds_data_dir: str = ""
    val_dirs: list = dataclasses.field(default_factory=list)
    batch_size: int = 16
    crop_size: int = 192
    steps: int = 600_000
    learning_rate: float = 1e-4
    lr_halve_every: int = 150_000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    offset_weight: float = 0.001
    tv_weight: float = 0.005
    log_every: int = 100
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    summary_images: int = 2
    cache: str = "memory"
    seed: int = 0
    init_resampler_from: str = ""
    init_upscaler_from: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "sr_baseline" and self.model.get("upscaler") != "edsr":
            raise ValueError("mode sr_baseline trains the upscaler and needs --upscaler=edsr")
        data.check_crop_size(self.crop_size, self.scale)
        if self.mode == "sr_baseline" and self.init_resampler_from:
            raise ValueError("mode sr_baseline trains no ResamplerNet; drop --init_resampler_from")
        if self.init_upscaler_from and self.model.get("upscaler") != "edsr":
            raise ValueError("--init_upscaler_from needs --upscaler=edsr (bicubic has no weights)")
        for name in ("batch_size", "steps", "lr_halve_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def scale(self):
        return int(self.model["scale"])

    def to_json(self):
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- strategy


def cluster_worker_count(tf_config=None):
    """Number of chief + worker tasks named by TF_CONFIG (JSON string or None = from env)."""
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG", "")
    if not tf_config:
        return 1
    cluster = json.loads(tf_config).get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def create_strategy():
    """MultiWorkerMirrored when TF_CONFIG names several workers, Mirrored over several
    GPUs, otherwise the default (single-device) strategy.

    Must run before any other TensorFlow op when TF_CONFIG is set: the collective
    runtime has to start before the context is initialised.
    """
    if cluster_worker_count() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def _task(strategy):
    """(task_type, task_id) of this process; (None, None) without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """True for the one process that writes summaries, config files and the final model."""
    task_type, task_id = _task(strategy)
    if task_type is None or task_type == "chief":
        return True
    # Without a "chief" task, worker 0 plays the chief (tf.distribute's convention).
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


# ----------------------------------------------------------------------------- pieces


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


def bicubic_lr(hr, scale):
    """HR [N,H,W,3] float in [0,1] -> 8-bit-quantised LR [N,H/s,W/s,3] by antialiased bicubic.

    The reference downscaler of the SR literature (MATLAB imresize is antialiased
    bicubic too); quantised because an LR image is stored as 8-bit pixels.
    """
    height, width = tf.shape(hr)[1] // scale, tf.shape(hr)[2] // scale
    lr = tf.image.resize(hr, [height, width], method="bicubic", antialias=True)
    return quantize_8bit(lr)


def _as_float_image(batch):
    if batch.dtype == tf.uint8:
        return tf.cast(batch, tf.float32) / 255.0
    return tf.cast(batch, tf.float32)


class Trainer:
    """Model, optimizer and the distributed train step for one TrainConfig.

    Touches no files: checkpointing and summaries belong to `train`, so the benchmark
    and the tests can drive the step alone.
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
            self.model = models.build_car_model(config.model)
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

    def per_example_losses(self, hr):
        """Loss terms of a float HR batch [n,H,W,3], each of shape [n]."""
        config = self.config
        if config.mode == "car":
            outputs = self.model(hr, training=True)
            return car_losses_lib.car_losses(
                hr, outputs, offset_weight=config.offset_weight, tv_weight=config.tv_weight,
                scale=config.scale,
            )
        sr = self.model.upscale(bicubic_lr(hr, config.scale), training=True)
        l1 = tf.reduce_mean(tf.abs(sr - hr), axis=[1, 2, 3])
        return {"total": l1, "l1": l1}

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


# ----------------------------------------------------------------------------- validation


def validate(model, config):
    """Scores of the model on config.val_dirs, by car_tf.eval_lib (the evaluation protocol:
    Y channel, SR rounded to 8 bits, shave = scale), next to bicubic down + bicubic up.

    Returns:
      dict set name -> {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic"}.
    """
    if config.mode == "car":
        ours, baseline = ("car", config.model["upscaler"]), None
    else:
        ours, baseline = ("bicubic", "edsr"), model
    report = eval_lib.evaluate(model, config.val_dirs, baseline=baseline, progress_stream=False)
    scores = {}
    for row in report.rows:
        entry = scores.setdefault(row.dataset, {})
        if (row.downscaler, row.upscaler) == ours:
            entry.update(psnr_y=row.psnr_y, ssim_y=row.ssim_y)
        if (row.downscaler, row.upscaler) == ("bicubic", "bicubic"):
            entry.update(psnr_y_bicubic=row.psnr_y, ssim_y_bicubic=row.ssim_y)
    return scores


def keep_if_best(model, config, step, scores):
    """Writes the model's weights to model_dir/best/ when the first validation set's PSNR-Y
    beats every earlier validation of this run (restarts included). Returns True if it did."""
    if not scores:
        return False
    dataset, first = next(iter(scores.items()))
    if "psnr_y" not in first or not math.isfinite(first["psnr_y"]):
        return False
    best_dir = os.path.join(config.model_dir, BEST_DIR)
    record = os.path.join(best_dir, BEST_JSON)
    if os.path.isfile(record):
        with open(record) as handle:
            if json.load(handle)["psnr_y"] >= first["psnr_y"]:
                return False
    os.makedirs(best_dir, exist_ok=True)
    # Write beside, then rename: a kill mid-write never leaves a half-written best.
    partial = os.path.join(best_dir, "partial." + BEST_WEIGHTS)
    model.save_weights(partial)
    os.replace(partial, os.path.join(best_dir, BEST_WEIGHTS))
    _write_json(record, {"step": int(step), "dataset": dataset, "psnr_y": first["psnr_y"],
                         "scores": scores})
    logging.info("best validation so far (%s PSNR-Y %.3f dB at step %d): weights in %s",
                 dataset, first["psnr_y"], step, best_dir)
    return True


def summary_images(model, config):
    """HR, LR and SR images and offsets of the first config.summary_images images of the
    first validation folder, for TensorBoard.

    Returns:
      (images: list of (name, hr, lr, sr), each float [1,h,w,3] in [0,1];
       offsets: dict "offsets_x"/"offsets_y" -> flat array, empty for sr_baseline).
    """
    images, offsets = [], {"offsets_x": [], "offsets_y": []}
    if not config.val_dirs or config.summary_images < 1:
        return images, {}
    multiple = models.size_multiple(config.scale)
    for path in image_io.list_images(config.val_dirs[:1])[: config.summary_images]:
        try:
            rgb = image_io.read_image(path).rgb
        except image_io.ImageReadError:
            continue  # eval_lib.evaluate has noted it
        hr = eval_lib.crop_to_multiple(rgb, multiple)[np.newaxis].astype(np.float32) / 255.0
        if min(hr.shape[1:3]) < models.min_hr_size(config.scale):
            continue
        if config.mode == "car":
            outputs = model(hr, training=False)
            lr, sr = outputs["lr"], outputs["sr"]
            for key in offsets:
                offsets[key].append(np.asarray(outputs[key]).ravel())
        else:
            lr = bicubic_lr(hr, config.scale)
            sr = model.upscale(lr, training=False)
        name = os.path.splitext(os.path.basename(path))[0]
        images.append((name, hr, np.asarray(lr), np.clip(np.asarray(sr), 0.0, 1.0)))
    return images, {key: np.concatenate(values) for key, values in offsets.items() if values}


# ----------------------------------------------------------------------------- model_dir


def _write_json(path, content):
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(content, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def prepare_model_dir(config):
    """Writes config.json and train_config.json; refuses a model_dir of another model.

    A restarted run may change training settings (steps, intervals, data) but not the
    model config or the mode, which would make the checkpoint meaningless.
    """
    os.makedirs(config.model_dir, exist_ok=True)
    config_path = os.path.join(config.model_dir, CONFIG_FILE)
    if os.path.isfile(config_path):
        with open(config_path) as handle:
            existing = {**models.LATER_KEY_DEFAULTS, **json.load(handle)}
        differing = sorted(
            key
            for key in set(existing) | set(config.model)
            if key not in INTERCHANGEABLE_KEYS and existing.get(key) != config.model.get(key)
        )
        if differing:
            raise ModelDirMismatchError(
                f"{config.model_dir} holds a model with other {', '.join(differing)}; "
                "use a new --model_dir or the same model flags"
            )
    train_config_path = os.path.join(config.model_dir, TRAIN_CONFIG_FILE)
    if os.path.isfile(train_config_path):
        with open(train_config_path) as handle:
            previous_mode = json.load(handle).get("mode")
        if previous_mode != config.mode:
            raise ModelDirMismatchError(
                f"{config.model_dir} was trained with --mode={previous_mode}; "
                f"use a new --model_dir for --mode={config.mode}"
            )
    _write_json(config_path, config.model)
    _write_json(train_config_path, config.to_json())


def initialize_from(model, config):
    """Copies the ResamplerNet / upscaler weights named by config.init_*_from into `model`."""
    for part, source in (("resampler", config.init_resampler_from),
                         ("upscaler", config.init_upscaler_from)):
        if not source:
            continue
        source_model = pretrained.load_model(source)
        target, origin = getattr(model, part), getattr(source_model, part)
        shapes = [tuple(weight.shape) for weight in target.weights]
        source_shapes = [tuple(weight.shape) for weight in origin.weights]
        if type(target) is not type(origin) or shapes != source_shapes:
            raise ValueError(
                f"--init_{part}_from={source}: its {part} ({type(origin).__name__}, "
                f"{origin.count_params():,} parameters) does not match this run's "
                f"({type(target).__name__}, {target.count_params():,})"
            )
        target.set_weights(origin.get_weights())
        logging.info("initialised the %s from %s", part, source)


def _checkpoint_dir(config, strategy):
    """model_dir for the chief; a scratch folder for the other workers.

    Under MultiWorkerMirroredStrategy every worker must take part in a save (the
    variables' values are gathered collectively), but only the chief's copy is kept.
    """
    task_type, task_id = _task(strategy)
    if is_chief(strategy):
        return config.model_dir
    return os.path.join(config.model_dir, f"workertemp_{task_type}_{task_id}")


# ----------------------------------------------------------------------------- summaries


class _Progress:
    """Steps/sec over the time spent in train steps only (not validation or saving).

    The first step of a run is left out: it traces and compiles the step function.
    """

    def __init__(self):
        self.steps = 0
        self.seconds = 0.0
        self.first_done = False

    def add(self, seconds):
        if self.first_done:
            self.steps += 1
            self.seconds += seconds
        self.first_done = True

    def rate(self):
        """Steps/sec since the last call (NaN before any timed step)."""
        rate = self.steps / self.seconds if self.seconds > 0 else float("nan")
        self.steps, self.seconds = 0, 0.0
        return rate


class _StopOnSignal:
    """Turns SIGINT (Ctrl-C) and SIGTERM into a request to stop after the current step.

    The loop then saves a checkpoint of a step whose loss was checked, and raises
    KeyboardInterrupt. A second signal interrupts at once. Left off in multi-worker runs
    (a worker can't save alone: saving is collective) and outside the main thread
    (Python only handles signals there).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled=True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logging.warning("%s: stopping after this step (send it again to stop at once)",
                        signal.Signals(signum).name)

    def __enter__(self):
        if self.enabled:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(seconds)))


def _log_train(writer, step, config, losses, learning_rate, steps_per_sec):
    with writer.as_default(step=step):
        for name, value in losses.items():
            tf.summary.scalar(f"loss/{name}", value)
        tf.summary.scalar("learning_rate", learning_rate)
        if math.isfinite(steps_per_sec):
            tf.summary.scalar("steps_per_sec", steps_per_sec)
            tf.summary.scalar("examples_per_sec", steps_per_sec * config.batch_size)
    eta = (config.steps - step) / steps_per_sec if steps_per_sec > 0 else float("nan")
    terms = " ".join(f"{name}={value:.5f}" for name, value in losses.items())
    logging.info(
        "step %d/%d %s lr=%.3g %.2f steps/s ETA %s",
        step, config.steps, terms, learning_rate, steps_per_sec, _format_duration(eta),
    )


def _log_eval(writer, step, config, scores, images, offsets):
    with writer.as_default(step=step):
        for set_name, score in scores.items():
            gain = score["psnr_y"] - score["psnr_y_bicubic"]
            for name, value in score.items():
                tf.summary.scalar(f"{name}/{set_name}", value)
            tf.summary.scalar(f"psnr_y_gain/{set_name}", gain)
            logging.info(
                "eval step %d %s: PSNR(Y) %.3f dB, bicubic/bicubic %.3f, gain %+.3f; SSIM(Y) %.4f",
                step, set_name, score["psnr_y"], score["psnr_y_bicubic"], gain, score["ssim_y"],
            )
        for name, hr, lr, sr in images:
            tf.summary.image(f"{name}/hr", hr)
            tf.summary.image(f"{name}/lr", lr)
            tf.summary.image(f"{name}/sr", sr)
        for name, values in offsets.items():
            tf.summary.histogram(name, values)


# ----------------------------------------------------------------------------- the loop


def _default_dataset(config, first_step):
    return data.train_dataset(
        config.train_dirs,
        scale=config.scale,
        crop_size=config.crop_size,
        batch_size=config.batch_size,
        seed=config.seed,
        cache=config.cache,
        tfds_name=config.tfds_name or None,
        tfds_data_dir=config.tfds_data_dir or None,
        # A resumed run sees the batches the interrupted one would have seen next.
        start_step=first_step,
    )


def train(config, strategy=None, dataset=None):
    """Trains (or resumes) the run described by `config` until config.steps.

    Args:
      config: TrainConfig.
      strategy: a tf.distribute.Strategy; default `create_strategy()`.
      dataset: tf.data.Dataset of HR batches [batch_size, crop, crop, 3] (uint8, or float
        in [0,1]), repeated; default car_tf.data.train_dataset over config.train_dirs.

    Returns:
      dict with the final "step" and the last validation "scores" (see `validate`).

    Raises:
      NonFiniteLossError: a NaN/Inf loss or gradient; nothing is saved after it, so
        the latest checkpoint is the last good state.
      ModelDirMismatchError: model_dir holds a run of another model or mode.
      KeyboardInterrupt: after SIGINT (Ctrl-C) or SIGTERM, at the end of a step, once
        that step is saved.
    """
    strategy = strategy or create_strategy()
    chief = is_chief(strategy)
    logging.info("training with %s, %d replicas", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    if chief:
        prepare_model_dir(config)
    trainer = Trainer(config, strategy)
    checkpoint_dir = _checkpoint_dir(config, strategy)
    manager = tf.train.CheckpointManager(
        trainer.checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints,
        checkpoint_name=CHECKPOINT_PREFIX,
    )
    # Every worker resumes from the chief's checkpoint (model_dir is shared storage).
    latest = tf.train.latest_checkpoint(config.model_dir)
    if latest:
        trainer.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", latest, trainer.step)
    elif config.init_resampler_from or config.init_upscaler_from:
        initialize_from(trainer.model, config)
    step = trainer.step
    saved_step = step if latest else None

    def save():
        nonlocal saved_step
        if saved_step != step:
            logging.info("saved %s", manager.save(checkpoint_number=step))
            saved_step = step

    if chief:
        train_writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "train"))
        eval_writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "eval"))
    validating = chief and bool(config.val_dirs)

    def validate_and_log():
        scores = validate(trainer.model, config)
        _log_eval(eval_writer, step, config, scores, *summary_images(trainer.model, config))
        keep_if_best(trainer.model, config, step, scores)
        return scores

    scores = {}
    if validating:
        # The curves' starting point (or a resumed run's), and a bad --val_dirs shows up
        # before any training.
        scores = validate_and_log()
    if step < config.steps:
        if dataset is None:
            dataset = _default_dataset(config, step)
        batches = trainer.distribute(dataset)
        progress = _Progress()
        with _StopOnSignal(enabled=cluster_worker_count() == 1) as stop:
            while step < config.steps:
                started = time.perf_counter()
                losses = trainer.train_step(next(batches))
                total = float(losses["total"])
                progress.add(time.perf_counter() - started)
                step += 1
                if not math.isfinite(total) or float(losses["nonfinite_gradients"]) > 0:
                    what = f"the loss is {total}" if not math.isfinite(total) else "a gradient is NaN/Inf"
                    raise NonFiniteLossError(
                        f"training stopped at step {step}: {what}; nothing was saved after it, "
                        f"the last good checkpoint is {tf.train.latest_checkpoint(config.model_dir)}; "
                        "lower --learning_rate or check the data"
                    )
                last = step == config.steps
                if chief and (step % config.log_every == 0 or last):
                    values = {name: float(value) for name, value in losses.items()
                              if name != "nonfinite_gradients"}
                    _log_train(train_writer, step, config, values, trainer.learning_rate(),
                               progress.rate())
                if validating and (last or (config.val_every and step % config.val_every == 0)):
                    scores = validate_and_log()
                if last or (config.checkpoint_every and step % config.checkpoint_every == 0):
                    save()
                if stop.requested and not last:
                    save()
                    logging.info("interrupted after step %d", step)
                    raise KeyboardInterrupt
    save()
    if chief:
        train_writer.flush()
        eval_writer.flush()
        trainer.model.save(os.path.join(config.model_dir, KERAS_FILE))
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return {"step": step, "scores": scores}


# ----------------------------------------------------------------------------- benchmark


def peak_memory():
    """Peak resident memory of this process in MiB, and peak GPU memory per GPU."""
    result = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    for gpu in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(gpu.name)
        result[f"peak_{gpu.name.split(':', 1)[1].lower().replace(':', '')}_mib"] = info["peak"] / 2**20
    return result


def benchmark(config, steps=20, warmup_steps=3, dataset=None, strategy=None):
    """Times `steps` train steps after `warmup_steps` (tracing, allocation).

    Runs on random crops unless a dataset is given, so it measures the model and the
    step, not the input pipeline. Returns a JSON-ready dict.
    """
    strategy = strategy or create_strategy()
    trainer = Trainer(config, strategy)
    if dataset is None:
        crops = tf.random.stateless_uniform(
            [config.batch_size, config.crop_size, config.crop_size, 3], seed=[config.seed, 0],
            maxval=256, dtype=tf.int32,
        )
        dataset = tf.data.Dataset.from_tensors(tf.cast(crops, tf.uint8)).repeat()
    batches = trainer.distribute(dataset)
    started = time.perf_counter()
    for _ in range(warmup_steps):
        float(trainer.train_step(next(batches))["total"])
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        float(trainer.train_step(next(batches))["total"])
    seconds = time.perf_counter() - started
    return {
        "mode": config.mode,
        "model": config.model,
        "batch_size": config.batch_size,
        "crop_size": config.crop_size,
        "replicas": strategy.num_replicas_in_sync,
        "trainable_parameters": int(sum(np.prod(v.shape) for v in trainer.variables)),
        "warmup_steps": warmup_steps,
        "warmup_seconds": warmup_seconds,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "steps_per_sec": steps / seconds,
        "examples_per_sec": steps * config.batch_size / seconds,
        **peak_memory(),
    }
