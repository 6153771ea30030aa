"""Trained models: the ones bundled in the package, `.keras` files and training model_dirs.

A bundled model lives in car_tf/pretrained/<name>/ as
  model.weights.h5   the weights
  config.json        the model config (the keys of car_tf.models.default_config)
  metrics.json       final validation metrics, and how they were obtained
  train_config.json  every training setting it was trained with
  MANIFEST.sha256    sha256 of the files above, checked at load time

Any model folder that carries a MANIFEST.sha256 (a copy of a bundled model, say) is checked
against it before anything is built from it; a bundled model must carry one
(check_manifest: car_tf.fixed_numpy checks a folder the same way). The module imports
no TensorFlow or Keras until a model is built.
"""

import hashlib
import json
import os
import shutil
import zipfile

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
MANIFEST = "MANIFEST.sha256"
WEIGHTS = "model.weights.h5"
CONFIG = "config.json"
BEST = "best"


class ModelNotFoundError(ValueError):
    """A model name or path that names nothing loadable."""


def bundled_models():
    """Names of the models shipped in the package (those with weights present)."""
    if not os.path.isdir(PRETRAINED_DIR):
        return []
    return sorted(
        name
        for name in os.listdir(PRETRAINED_DIR)
        if os.path.isfile(os.path.join(PRETRAINED_DIR, name, WEIGHTS))
    )


def default_model_name(scale, upscaler="bicubic"):
    """The bundled CAR model used by default for a scale and upscaler."""
    suffix = "bicubic" if upscaler == "bicubic" else "edsr-lite"
    return f"car-x{int(scale)}-{suffix}"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_manifest(model_dir):
    """Raises ValueError naming the file whose sha256 differs from MANIFEST.sha256, or the
    manifest itself when it is missing."""
    manifest = os.path.join(model_dir, MANIFEST)
    if not os.path.isfile(manifest):
        raise ValueError(f"{manifest} is missing; reinstall car_tf")
    with open(manifest) as handle:
        for line in handle:
            if not line.strip():
                continue
            expected, name = line.split(maxsplit=1)
            path = os.path.join(model_dir, name.strip())
            if not os.path.isfile(path) or _sha256(path) != expected:
                raise ValueError(f"{path}: missing or sha256 mismatch with {manifest}; reinstall car_tf")


def write_manifest(model_dir, names):
    """Writes MANIFEST.sha256 for `names` inside model_dir."""
    with open(os.path.join(model_dir, MANIFEST), "w") as handle:
        for name in sorted(names):
            handle.write(f"{_sha256(os.path.join(model_dir, name))}  {name}\n")


def read_config(model_dir):
    with open(os.path.join(model_dir, CONFIG)) as handle:
        return json.load(handle)


def _build_from_config(config, resampler_impl):
    # Imported here so that `import car_tf.pretrained` stays cheap.
    from car_tf.models import build_model

    return build_model(config, resampler_impl)


def check_manifest(model_dir, require_manifest=False):
    """verify_manifest(model_dir) when it carries a MANIFEST.sha256 or `require_manifest`
    (a bundled model); ValueError as verify_manifest's."""
    if require_manifest or os.path.isfile(os.path.join(model_dir, MANIFEST)):
        verify_manifest(model_dir)


def _load_model_dir(model_dir, resampler_impl, checkpoint=None, require_manifest=False):
    import tensorflow as tf

    check_manifest(model_dir, require_manifest)
    config = read_config(model_dir)
    model = _build_from_config(config, resampler_impl)
    weights = os.path.join(model_dir, WEIGHTS)
    if checkpoint == BEST:
        # car_tf.train.validation keeps the best-validated weights there.
        weights = os.path.join(model_dir, BEST, WEIGHTS)
        if not os.path.isfile(weights):
            raise ModelNotFoundError(f"{model_dir}: no {BEST}/{WEIGHTS}; the run has not validated yet")
        model.load_weights(weights)
        return model
    if checkpoint is None and os.path.isfile(weights):
        model.load_weights(weights)
        return model
    latest = checkpoint or tf.train.latest_checkpoint(model_dir)
    if latest is None:
        raise ModelNotFoundError(f"{model_dir}: has config.json but neither {WEIGHTS} nor a checkpoint")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return model


def load_model_checkpoint(model_dir, checkpoint=None, resampler_impl="auto"):
    """A training model_dir's model at `checkpoint` (a prefix; default the latest)."""
    if not os.path.isfile(os.path.join(model_dir, CONFIG)):
        raise ModelNotFoundError(f"{model_dir}: no config.json; pass a training model_dir")
    return _load_model_dir(model_dir, resampler_impl, checkpoint)


def resolve(name_or_path):
    """Returns ("bundled"|"keras"|"model_dir"|"checkpoint", path) for a model name or path."""
    if os.path.isfile(name_or_path + ".index"):
        # A checkpoint prefix of a training model_dir, such as runs/x/ckpt-5000.
        return "checkpoint", name_or_path
    if name_or_path in bundled_models():
        return "bundled", os.path.join(PRETRAINED_DIR, name_or_path)
    if name_or_path.endswith(".keras") and os.path.isfile(name_or_path):
        return "keras", name_or_path
    if os.path.isfile(os.path.join(name_or_path, CONFIG)):
        return "model_dir", name_or_path
    known = ", ".join(bundled_models()) or "none bundled in this install"
    raise ModelNotFoundError(
        f"model {name_or_path!r} is neither a bundled name ({known}), a .keras file, "
        "nor a training model_dir with config.json"
    )


def load_model(name_or_path, resampler_impl="auto"):
    """Loads a CAR model (or an SR baseline) by bundled name, `.keras` path, model_dir or a
    checkpoint prefix model_dir/ckpt-N.

    resampler_impl picks the resampler implementation of a rebuilt model
    ("auto", "custom" or "composite"); a `.keras` file keeps the one it was saved with.
    """
    kind, path = resolve(name_or_path)
    if kind == "keras":
        import keras

        import car_tf.models  # noqa: F401  registers the serialisable classes

        if not zipfile.is_zipfile(path):
            # Keras itself reports such a file as "File not found".
            raise ValueError(f"{path}: not a valid .keras file (not a zip archive); save it again")

        return keras.models.load_model(path, safe_mode=True)
    if kind == "checkpoint":
        return load_model_checkpoint(os.path.dirname(path), path, resampler_impl)
    return _load_model_dir(path, resampler_impl, require_manifest=kind == "bundled")


TRAIN_CONFIG = "train_config.json"
METRICS = "metrics.json"


def training_mode(model_dir):
    """"car" or "sr_baseline": how a training model_dir (or bundled model) was trained."""
    path = os.path.join(model_dir, TRAIN_CONFIG)
    if not os.path.isfile(path):
        return "car"
    with open(path) as handle:
        return json.load(handle).get("mode", "car")


def package_model(model_dir, name, metrics, destination=PRETRAINED_DIR, checkpoint=None):
    """Turns a training model_dir into a bundled model destination/<name>/.

    Writes the weights of `checkpoint` (a checkpoint prefix such as
    model_dir/ckpt-3000, "best" for the best-validated weights training kept,
    default the latest) as model.weights.h5, copies
    config.json and train_config.json, writes `metrics` (a JSON-able dict: the
    final validation scores and how they were obtained) as metrics.json, and
    the sha256 manifest. Returns the new folder.
    """
    model = _load_model_dir(model_dir, "auto", checkpoint)
    target = os.path.join(destination, name)
    os.makedirs(target, exist_ok=True)
    model.save_weights(os.path.join(target, WEIGHTS))
    names = [WEIGHTS, CONFIG, METRICS]
    shutil.copyfile(os.path.join(model_dir, CONFIG), os.path.join(target, CONFIG))
    if os.path.isfile(os.path.join(model_dir, TRAIN_CONFIG)):
        shutil.copyfile(os.path.join(model_dir, TRAIN_CONFIG), os.path.join(target, TRAIN_CONFIG))
        names.append(TRAIN_CONFIG)
    with open(os.path.join(target, METRICS), "w") as handle:
        json.dump(metrics, handle, indent=2)
        handle.write("\n")
    write_manifest(target, names)
    return target
