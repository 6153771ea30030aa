"""Distributed training: 2 replicas compute what 1 does; 2 workers train and checkpoint.

Both need a fresh TensorFlow (logical devices and the collective runtime are set before
TF initialises), so they run in subprocesses: this file doubles as the child script.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import synthetic_images
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _two_device_child(out_path):
    """One step of the same global batch under 1 and under 2 replicas; saves what to compare."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from car_tf import models, train

    config = train.TrainConfig(
        model=models.default_config(2, "edsr", "tiny"), model_dir="", batch_size=4, crop_size=32,
        steps=1, learning_rate=1e-3,
    )
    batch = tf.cast(
        tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], maxval=256, dtype=tf.int32), tf.uint8
    )
    strategies = {
        "one": tf.distribute.OneDeviceStrategy("/cpu:0"),
        "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
    saved, initial = {}, None
    for name, strategy in strategies.items():
        trainer = train.Trainer(config, strategy)
        if initial is None:
            initial = [v.numpy() for v in trainer.variables]
        else:  # the same starting point, whatever each strategy's initialisers drew
            for variable, value in zip(trainer.variables, initial):
                variable.assign(value)
        batches = trainer.distribute(tf.data.Dataset.from_tensors(batch).repeat())
        losses = trainer.train_step(next(batches))
        saved[f"{name}_replicas"] = strategy.num_replicas_in_sync
        for key, value in losses.items():
            saved[f"{name}_loss_{key}"] = float(value)
        for index, variable in enumerate(trainer.variables):
            saved[f"{name}_weight_{index}"] = variable.numpy()
        # Adam's moments: its update is nearly blind to the gradient's scale, they aren't.
        for index, variable in enumerate(trainer.optimizer.variables):
            saved[f"{name}_optimizer_{index}"] = np.asarray(variable.numpy())
    saved["initial_count"] = len(initial)
    for index, value in enumerate(initial):
        saved[f"initial_{index}"] = value
    np.savez(out_path, **saved)


def _run(args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env or CHILD_ENV, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_two_replicas_give_the_loss_and_update_of_one(tmp_path):
    out = tmp_path / "result.npz"
    result = _run([os.path.abspath(__file__), "two_devices", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    assert saved["one_replicas"] == 1 and saved["two_replicas"] == 2
    for key in ("total", "l1", "offset", "tv"):
        np.testing.assert_allclose(saved[f"two_loss_{key}"], saved[f"one_loss_{key}"], rtol=1e-5)
    moved = 0
    for index in range(int(saved["initial_count"])):
        one, two = saved[f"one_weight_{index}"], saved[f"two_weight_{index}"]
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6, err_msg=f"weight {index}")
        moved += not np.allclose(one, saved[f"initial_{index}"])
    assert moved == int(saved["initial_count"]), "every variable should have been updated"
    optimizer_keys = [key for key in saved.files if key.startswith("one_optimizer_")]
    assert optimizer_keys
    for key in optimizer_keys:
        np.testing.assert_allclose(saved[key.replace("one_", "two_", 1)], saved[key], rtol=1e-4,
                                   atol=1e-9, err_msg=key)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _write_images(folder, count, size):
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(synthetic_images.photo(size, size, index)).save(folder / f"image_{index}.png")


@pytest.mark.slow
def test_two_workers_train_and_write_one_checkpoint(tmp_path):
    data = tmp_path / "train"
    _write_images(data, 3, 48)
    model_dir = tmp_path / "model"
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, "tools/train.py", "--flagfile=configs/smoke.cfg", f"--train_dirs={data}",
             f"--model_dir={model_dir}", "--steps=3", "--checkpoint_every=3", "--batch_size=4"],
            cwd=REPO, env={**CHILD_ENV, "TF_CONFIG": json.dumps(tf_config)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300)[0])
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-3")
    assert sorted(p.name for p in model_dir.glob("ckpt-*.index")) == ["ckpt-3.index"]
    # The other worker's scratch copy is gone; only the chief wrote summaries.
    assert not list(model_dir.glob("workertemp_*"))
    assert len(list((model_dir / "train").glob("events.out.tfevents.*"))) == 1
    # MultiWorkerMirroredStrategy's class name.
    assert "CollectiveAllReduceStrategy, 2 replicas" in outputs[0]


if __name__ == "__main__":
    if sys.argv[1] == "two_devices":
        _two_device_child(sys.argv[2])
