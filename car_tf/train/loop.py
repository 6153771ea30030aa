"""The training loop: resume or start, step, log, validate, checkpoint, stop cleanly.

What the loop needs is imported: the step from car_tf.train.trainer, the files from
car_tf.train.model_dir, the scores from car_tf.train.validation and the TensorBoard
output from car_tf.train.summaries.
"""

import logging
import math
import os
import shutil
import signal
import threading

import tensorflow as tf

from car_tf import data
from car_tf.progress import Progress
from car_tf.train import model_dir as model_dir_lib
from car_tf.train import summaries
from car_tf.train.strategy import cluster_worker_count, create_strategy, is_chief
from car_tf.train.trainer import Trainer
from car_tf.train.validation import keep_if_best, validate


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN or Inf; the run stops without saving."""


class StopOnSignal:
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


def default_dataset(config, first_step):
    """car_tf.data.train_dataset over the config's data, starting at batch `first_step`."""
    source = data.DataSource(
        config.train_dirs, tfds_name=config.tfds_name or None,
        tfds_data_dir=config.tfds_data_dir or None,
    )
    return data.train_dataset(
        source,
        scale=config.scale,
        crop_size=config.crop_size,
        batch_size=config.batch_size,
        seed=config.seed,
        cache=config.cache,
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
      dict with the final "step" and the last validation "scores" (see
      car_tf.train.validation.validate).

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
        model_dir_lib.prepare_model_dir(config)
    trainer = Trainer(config, strategy)
    checkpoint_dir = model_dir_lib.checkpoint_dir(config, strategy)
    manager = tf.train.CheckpointManager(
        trainer.checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints,
        checkpoint_name=model_dir_lib.CHECKPOINT_PREFIX,
    )
    # Every worker resumes from the chief's checkpoint (model_dir is shared storage).
    latest = tf.train.latest_checkpoint(config.model_dir)
    if latest:
        trainer.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", latest, trainer.step)
    elif config.init_resampler_from or config.init_upscaler_from:
        model_dir_lib.initialize_from(trainer.model, config)
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
        summaries.log_eval(eval_writer, step, config, scores,
                           *summaries.summary_images(trainer.model, config))
        keep_if_best(trainer.model, config, step, scores)
        return scores

    scores = {}
    if validating:
        # The curves' starting point (or a resumed run's), and a bad --val_dirs shows up
        # before any training.
        scores = validate_and_log()
    if step < config.steps:
        if dataset is None:
            dataset = default_dataset(config, step)
        batches = trainer.distribute(dataset)
        # Times the train steps only (not validation or saving); the first step traces.
        step_timer = Progress(config.steps - step, quiet=True, untimed_first=True)
        with StopOnSignal(enabled=cluster_worker_count() == 1) as stop:
            while step < config.steps:
                step_timer.start()
                losses = trainer.train_step(next(batches))
                total = float(losses["total"])
                step_timer.finish()
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
                    summaries.log_train(train_writer, step, config, values,
                                        trainer.learning_rate(), step_timer.rate())
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
        trainer.model.save(os.path.join(config.model_dir, model_dir_lib.KERAS_FILE))
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return {"step": step, "scores": scores}
