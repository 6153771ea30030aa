"""car_tf.export.litert, and the export and benchmark tools end to end."""

import json
import os
import sys

import pytest
import tensorflow as tf

import car_tf
from car_tf.export import litert
from car_tf.models import build_car_model, default_config
from export_fixtures import REPO, tflite_bicubic  # noqa: F401 (a fixture)
from export_fixtures import images as _images
from export_fixtures import run as _run


def test_run_tflite_rejects_another_input_shape(tflite_bicubic):
    _, paths = tflite_bicubic
    with pytest.raises(ValueError, match="takes uint8"):
        litert.run_tflite(paths["float32"]["downscaler"], _images((1, 16, 16, 3)))


def test_benchmark_tflite_reports_size_and_latency(tflite_bicubic):
    _, paths = tflite_bicubic
    path = paths["float32"]["upscaler"]
    result = litert.benchmark_tflite(path, runs=2, warmup=1, num_threads=1)
    assert result["size_bytes"] == os.path.getsize(path)
    assert result["input_shape"] == [1, 11, 15, 3] and result["output_shape"] == [1, 22, 30, 3]
    assert 0 < result["min_ms"] <= result["median_ms"]


@pytest.mark.slow
def test_tools_export_and_benchmark(tmp_path):
    model = build_car_model(default_config(2, "bicubic", "tiny"))
    keras_file = str(tmp_path / "model.keras")
    model.save(keras_file)

    result = _run([sys.executable, "tools/export_savedmodel.py", f"--model={keras_file}",
                   f"--export_base={tmp_path / 'serving'}", "--version=3"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "serving" / "3")
    lr = car_tf.load_saved_model(str(tmp_path / "serving")).signatures["downscale"](
        hr=tf.constant(_images((1, 16, 16, 3))))["lr"]
    assert lr.shape == (1, 8, 8, 3)

    result = _run([sys.executable, "tools/export_tflite.py", f"--model={keras_file}",
                   f"--output_dir={tmp_path / 'lite'}", "--height=16", "--width=24"])
    assert result.returncode == 0, result.stderr[-3000:]
    # The old name of --out_dir still works, with a one-line warning.
    assert ("warning: --output_dir is deprecated and will be removed in the next release; "
            "use --out_dir") in result.stderr
    files = result.stdout.split()
    assert [os.path.basename(f) for f in files] == [
        "downscaler_16x24_float32.tflite", "upscaler_8x12_float32.tflite"]

    result = _run([sys.executable, "tools/benchmark_tflite.py", "--runs=1", "--warmup=0", "--json"]
                  + [f"--tflite={f}" for f in files])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["input_shape"] for r in json.loads(result.stdout)] == [[1, 16, 24, 3], [1, 8, 12, 3]]

    result = _run([sys.executable, "tools/export_savedmodel.py", "--model=no-such-model",
                   f"--export_base={tmp_path / 'x'}"])
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("export_savedmodel: model 'no-such-model'")
