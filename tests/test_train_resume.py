"""tools/train.py for real: a full smoke run, and a run killed with SIGKILL then resumed."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import synthetic_images
import tensorflow as tf
from PIL import Image

from car_tf import models, pretrained, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _write_images(folder, count, size, seed=0):
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(synthetic_images.photo(size, size, seed + index)).save(folder / f"image_{index}.png")


def _train_command(train_dir, model_dir, *extra):
    return [sys.executable, "tools/train.py", "--flagfile=configs/smoke.cfg",
            f"--train_dirs={train_dir}", f"--model_dir={model_dir}", *extra]


def _run(command, timeout=300):
    result = subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def _summary_tags(folder):
    tags = set()
    for path in tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.slow
def test_smoke_config_trains_end_to_end(tmp_path):
    _write_images(tmp_path / "train", 3, 48)
    _write_images(tmp_path / "Set", 2, 40, seed=1)
    model_dir = tmp_path / "model"
    log = _run(_train_command(tmp_path / "train", model_dir, f"--val_dirs={tmp_path / 'Set'}"))

    assert "step 4/4" in log and "gain" in log
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    with open(model_dir / "config.json") as handle:
        config = json.load(handle)
    assert config == models.default_config(2, "edsr", "tiny")
    with open(model_dir / "train_config.json") as handle:
        assert json.load(handle)["mode"] == "car"

    assert {"loss/total", "loss/l1", "loss/offset", "loss/tv", "learning_rate",
            "steps_per_sec"} <= _summary_tags(model_dir / "train")
    eval_tags = _summary_tags(model_dir / "eval")
    assert {"psnr_y/Set", "ssim_y/Set", "psnr_y_bicubic/Set", "psnr_y_gain/Set",
            "offsets_x", "offsets_y"} <= eval_tags
    assert {"image_0/hr", "image_0/lr", "image_0/sr"} <= eval_tags

    # The exported .keras model and the checkpoint (as the model loader reads a model_dir)
    # hold the same, trained, weights.
    exported = tf.keras.models.load_model(model_dir / "model.keras")
    restored = pretrained.load_model(str(model_dir))
    untrained = models.build_car_model(config)
    hr = tf.random.stateless_uniform([1, 32, 32, 3], seed=[0, 1])
    np.testing.assert_allclose(exported(hr)["sr"], restored(hr)["sr"], atol=1e-6)
    assert not np.allclose(untrained(hr)["sr"], restored(hr)["sr"], atol=1e-4)


def _start(command, log_path):
    """The command in the background, its stdout and stderr going to log_path."""
    with open(log_path, "w") as log_file:
        return subprocess.Popen(command, cwd=REPO, env=CHILD_ENV, stdout=log_file, stderr=subprocess.STDOUT)


def _wait_until(condition, process, log_path, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training exited early:\n{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out:\n{log_path.read_text()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    _write_images(tmp_path / "train", 3, 48)
    model_dir = tmp_path / "model"
    log_path = tmp_path / "killed.log"
    process = _start(_train_command(tmp_path / "train", model_dir, "--steps=100000", "--checkpoint_every=3"),
                     log_path)
    try:
        _wait_until(lambda: tf.train.latest_checkpoint(str(model_dir)), process, log_path)
        time.sleep(0.5)  # let it run on past the checkpoint, maybe into the next one
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    latest = tf.train.latest_checkpoint(str(model_dir))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert killed_at % 3 == 0 and killed_at >= 3

    # What a restart restores: step, weights, Adam's moments and the learning rate.
    with open(model_dir / "train_config.json") as handle:
        config = train.TrainConfig(**json.load(handle))
    fresh = train.Trainer(config)
    restored = train.Trainer(config)
    restored.checkpoint.restore(latest).assert_consumed()
    assert restored.step == killed_at
    assert restored.learning_rate() == pytest.approx(1e-3 * 0.5 ** (killed_at // 2))
    for before, after in zip(fresh.variables, restored.variables):
        assert not np.array_equal(before.numpy(), after.numpy()), before.path
    moments = [v for v in restored.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    assert len(moments) == 2 * len(restored.variables)
    assert all(np.any(v.numpy() != 0) for v in moments)

    log = _run(_train_command(tmp_path / "train", model_dir, f"--steps={killed_at + 2}"))
    assert f"resumed from {latest} at step {killed_at}" in log
    first_step = int(re.search(r"step (\d+)/", log).group(1))
    assert first_step == killed_at + 1
    next_rate = 1e-3 * 0.5 ** ((killed_at + 1) // 2)
    assert re.search(rf"step {killed_at + 1}/{killed_at + 2} .* lr={next_rate:.3g} ", log)
    final = tf.train.latest_checkpoint(str(model_dir))
    assert final.endswith(f"ckpt-{killed_at + 2}")
    iterations = tf.train.load_checkpoint(final).get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")
    assert iterations == killed_at + 2


@pytest.mark.slow
def test_ctrl_c_stops_after_the_step_and_saves_it(tmp_path):
    _write_images(tmp_path / "train", 3, 48)
    model_dir = tmp_path / "model"
    log_path = tmp_path / "interrupted.log"
    process = _start(_train_command(tmp_path / "train", model_dir, "--steps=100000", "--checkpoint_every=0"),
                     log_path)
    try:
        _wait_until(lambda: "step 2/" in log_path.read_text(), process, log_path)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        process.kill()
    log = log_path.read_text()
    assert process.returncode == 1, log[-3000:]
    assert "SIGINT: stopping after this step" in log
    assert "interrupted; run the same command again to resume" in log
    stopped_at = int(re.search(r"interrupted after step (\d+)", log).group(1))
    assert tf.train.latest_checkpoint(str(model_dir)).endswith(f"ckpt-{stopped_at}")
