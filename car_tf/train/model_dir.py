"""What a training run keeps in its model_dir, and the checks that keep one run per folder.

Files under model_dir:
  config.json          the resolved model config (car_tf.models.build_car_model's input)
  train_config.json    every training setting, mode included
  checkpoint, ckpt-N.* tf.train.Checkpoint(model=CARModel, optimizer=Adam); N = step
  model.keras          the whole model, written at a clean exit
  best/                the weights with the best validation PSNR-Y so far (first val set),
                       model.weights.h5 + best.json (step and scores); the paper selects its
                       models by validation the same way (car_tf.train.validation)
  train/, eval/        TensorBoard event files
car_tf.pretrained reads these files back; the names are its.
"""

import json
import logging
import os

from car_tf import models, pretrained
from car_tf.train.strategy import is_chief, task

CONFIG_FILE = pretrained.CONFIG
TRAIN_CONFIG_FILE = "train_config.json"
KERAS_FILE = "model.keras"
BEST_DIR = pretrained.BEST
BEST_WEIGHTS = pretrained.WEIGHTS
BEST_JSON = "best.json"
CHECKPOINT_PREFIX = "ckpt"
# Model config keys that may change between runs on the same model_dir: they pick an
# implementation, not the weights.
INTERCHANGEABLE_KEYS = ("resampler_impl",)


class ModelDirMismatchError(ValueError):
    """model_dir holds a run whose model config or mode differs from the requested one."""


def write_json(path, content):
    """Writes `content` as JSON beside `path`, then renames: a kill never leaves half a file."""
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
            existing = json.load(handle)
        if models.architecture_of(existing) == "car":
            existing = {**models.LATER_KEY_DEFAULTS, **existing}
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
    write_json(config_path, config.model)
    write_json(train_config_path, config.to_json())


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


def checkpoint_dir(config, strategy):
    """model_dir for the chief; a scratch folder for the other workers.

    Under MultiWorkerMirroredStrategy every worker must take part in a save (the
    variables' values are gathered collectively), but only the chief's copy is kept.
    """
    task_type, task_id = task(strategy)
    if is_chief(strategy):
        return config.model_dir
    return os.path.join(config.model_dir, f"workertemp_{task_type}_{task_id}")
