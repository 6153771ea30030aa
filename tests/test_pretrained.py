"""car_tf.pretrained: bundling a training model_dir, sha256 checks, and loading by name or path."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from car_tf import pretrained
from car_tf.models import build_car_model, default_config


def _hr():
    return tf.constant(np.random.default_rng(0).random((1, 16, 16, 3)), tf.float32)


def _model_dir(tmp_path):
    """A model_dir as car_tf.train writes it: config.json and two checkpoints of different weights."""
    config = default_config(2, "bicubic", "tiny")
    model = build_car_model(config)
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(config))
    checkpoint = tf.train.Checkpoint(model=model)
    first = checkpoint.write(str(model_dir / "ckpt-1"))
    first_lr = model.downscale(_hr()).numpy()
    for variable in model.trainable_variables:
        variable.assign(variable + 0.05)
    manager = tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=3)
    manager.save(checkpoint_number=2)
    return str(model_dir), first, first_lr, model.downscale(_hr()).numpy()


def test_package_and_load_by_name(tmp_path, monkeypatch):
    model_dir, _, _, last_lr = _model_dir(tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", str(tmp_path / "bundled"))
    target = pretrained.package_model(model_dir, "car-x2-test", {"note": "test"},
                                      destination=pretrained.PRETRAINED_DIR)
    assert sorted(os.listdir(target)) == sorted(
        ["MANIFEST.sha256", "config.json", "metrics.json", "model.weights.h5"])
    assert pretrained.bundled_models() == ["car-x2-test"]
    model = pretrained.load_model("car-x2-test", resampler_impl="composite")
    np.testing.assert_allclose(model.downscale(_hr()).numpy(), last_lr, atol=1 / 255 + 1e-6)


def test_training_mode_reads_train_config(tmp_path):
    assert pretrained.training_mode(str(tmp_path)) == "car"
    (tmp_path / "train_config.json").write_text(json.dumps({"mode": "sr_baseline"}))
    assert pretrained.training_mode(str(tmp_path)) == "sr_baseline"


def test_a_specific_checkpoint_can_be_packaged(tmp_path):
    model_dir, first, first_lr, _ = _model_dir(tmp_path)
    target = pretrained.package_model(model_dir, "early", {}, destination=str(tmp_path / "b"),
                                      checkpoint=first)
    np.testing.assert_array_equal(
        pretrained.load_model(target + "/").downscale(_hr()).numpy(), first_lr)
    np.testing.assert_array_equal(
        pretrained.load_model_checkpoint(model_dir, first).downscale(_hr()).numpy(), first_lr)
    # load_model takes the checkpoint prefix itself too.
    assert pretrained.resolve(first) == ("checkpoint", first)
    np.testing.assert_array_equal(pretrained.load_model(first).downscale(_hr()).numpy(), first_lr)


def test_a_changed_file_fails_the_manifest_check(tmp_path, monkeypatch):
    model_dir, _, _, _ = _model_dir(tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", str(tmp_path / "bundled"))
    target = pretrained.package_model(model_dir, "car-x2-test", {}, destination=pretrained.PRETRAINED_DIR)
    with open(os.path.join(target, "config.json"), "a") as handle:
        handle.write(" ")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        pretrained.load_model("car-x2-test")


def test_unknown_names_are_one_line_errors(tmp_path):
    with pytest.raises(pretrained.ModelNotFoundError, match="neither a bundled name"):
        pretrained.load_model(str(tmp_path / "nothing"))
    with pytest.raises(pretrained.ModelNotFoundError, match="no config.json"):
        pretrained.load_model_checkpoint(str(tmp_path))


def test_default_model_names():
    assert pretrained.default_model_name(4) == "car-x4-bicubic"
    assert pretrained.default_model_name(2, "edsr") == "car-x2-edsr-lite"


def _flip_one_byte(path, offset=None):
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0xFF
    with open(path, "wb") as handle:
        handle.write(data)


def test_a_copied_model_with_a_flipped_byte_is_refused_by_path(tmp_path):
    # A copy of a bundled model given as a path is checked against its own manifest.
    copy = tmp_path / "copy-of-car-x4-bicubic"
    shutil.copytree(os.path.join(pretrained.PRETRAINED_DIR, "car-x4-bicubic"), copy)
    pretrained.load_model(str(copy) + "/")
    _flip_one_byte(copy / "model.weights.h5")
    with pytest.raises(ValueError, match=r"model\.weights\.h5: missing or sha256 mismatch"):
        pretrained.load_model(str(copy) + "/")


def test_a_model_dir_without_a_manifest_still_loads(tmp_path):
    model_dir, _, _, last_lr = _model_dir(tmp_path)
    np.testing.assert_array_equal(pretrained.load_model(model_dir).downscale(_hr()).numpy(), last_lr)


def test_a_bundled_model_without_its_manifest_is_refused(tmp_path, monkeypatch):
    model_dir, _, _, _ = _model_dir(tmp_path)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", str(tmp_path / "bundled"))
    target = pretrained.package_model(model_dir, "car-x2-test", {}, destination=pretrained.PRETRAINED_DIR)
    os.remove(os.path.join(target, pretrained.MANIFEST))
    with pytest.raises(ValueError, match="MANIFEST.sha256 is missing"):
        pretrained.load_model("car-x2-test")


def test_every_bundled_model_carries_a_manifest_of_all_its_files():
    assert pretrained.bundled_models()
    for name in pretrained.bundled_models():
        folder = os.path.join(pretrained.PRETRAINED_DIR, name)
        with open(os.path.join(folder, pretrained.MANIFEST)) as handle:
            listed = {line.split(maxsplit=1)[1].strip() for line in handle if line.strip()}
        assert listed == set(os.listdir(folder)) - {pretrained.MANIFEST}, name
        pretrained.verify_manifest(folder)


def test_a_corrupt_keras_file_is_named_as_not_a_keras_file(tmp_path):
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"garbage\.keras: not a valid \.keras file") as caught:
        pretrained.load_model(str(garbage))
    assert "not found" not in str(caught.value).lower()
