"""Benchmarks the exported SavedModel's downscale on one big image, beside the `car` command.

Makes one synthetic photo (the bundled butterfly.png enlarged to --height x --width, plus
mild noise) as a PNG, then:
  1. `python -m car_tf.cli downscale photo.png ...` as a child process: its wall time and
     peak RSS (getrusage of the waited child, started before this process imports TensorFlow,
     so that its figure is the CLI's own);
  2. exports --model as a SavedModel (composite resampler, --tile, --export_precision) in
     this process;
  3. a fresh child process that imports TensorFlow only (never car_tf) loads the
     SavedModel, decodes the PNG with tf.io, runs the `downscale` signature and writes the
     LR PNG: its wall time (load, run) and its own peak RSS (VmHWM: getrusage would count
     this process's size at the spawn);
and prints the figures and the largest difference between the two LR images, in 8-bit levels.

Usage:
  python tools/benchmark_savedmodel.py --height 5000 --width 5000 --model car-x4-bicubic \
      [--cli_precision float32] [--export_precision mixed_bfloat16] [--json]
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer("height", 5000, "Photo height in pixels.")
flags.DEFINE_integer("width", 5000, "Photo width in pixels.")
flags.DEFINE_string("model", "car-x4-bicubic", "CAR model: a bundled name or a path.")
flags.DEFINE_integer("tile", 1024, "Tile side in HR pixels, for the export and the CLI alike.")
flags.DEFINE_bool("skip_cli", False, "Measure the SavedModel only.")
flags.DEFINE_string("cli_precision", None, "--precision for the car command (default: its own "
                    "default, auto, which is mixed_bfloat16 on a CPU with AMX; the SavedModel "
                    "computes in --export_precision).")
flags.DEFINE_enum("export_precision", "float32", ["float32", "mixed_bfloat16"],
                  "--precision of the export (tools/export_savedmodel.py).")
flags.DEFINE_string("work_dir", None, "Folder for the photo, the export and the outputs "
                    "(default: a temporary one, removed afterwards).")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")

FLAGS = flags.FLAGS

# Runs in a fresh process: TensorFlow only, so that the figures are those of a plain
# `tf.saved_model.load` as TF Serving would do it.
_SAVED_MODEL_CHILD = """
import json, sys, time
started = time.perf_counter()
import tensorflow as tf
saved_model, photo, out = sys.argv[1:]
hr = tf.io.decode_png(tf.io.read_file(photo), channels=3)[None]
imported = time.perf_counter()
loaded = tf.saved_model.load(saved_model)
loaded_at = time.perf_counter()
lr = loaded.signatures["downscale"](hr=hr)["lr"]
ran_at = time.perf_counter()
tf.io.write_file(out, tf.io.encode_png(lr[0]))
print(json.dumps({
    "import_and_decode_s": imported - started,
    "load_s": loaded_at - imported,
    "run_s": ran_at - loaded_at,
    "peak_rss_mib": peak_rss_mib(),
    "car_tf_modules": sorted(m for m in sys.modules if m.split(".")[0] == "car_tf"),
}))
"""


def _make_photo(path, height, width):
    from car_tf.image_io import write_image
    from car_tf.sample_data import synthetic_photo

    write_image(path, synthetic_photo(height, width))


def _run_cli(photo, out_dir):
    args = [sys.executable, "-m", "car_tf.cli", "downscale", photo, "-o", out_dir, "--model",
            FLAGS.model, "--tile", str(FLAGS.tile), "--format", "png", "--quiet"]
    if FLAGS.cli_precision:
        args += ["--precision", FLAGS.cli_precision]
    started = time.perf_counter()
    subprocess.run(args, check=True)
    # The children's peak: this is the first child waited for.
    return {"wall_s": time.perf_counter() - started,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def _child_script():
    """_SAVED_MODEL_CHILD behind car_tf.memory's peak_rss_mib, copied in as source: the child
    must not import car_tf, and its peak must be its own program's (VmHWM; ru_maxrss carries
    this benchmark's size across fork and exec)."""
    from car_tf import memory

    return memory.peak_rss_source() + _SAVED_MODEL_CHILD


def _run_saved_model(path, photo, out):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", _child_script(), path, photo, out],
                           capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"benchmark_savedmodel: the SavedModel child failed:\n{child.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(child.stdout.strip().splitlines()[-1])}


def _level_difference(a_path, b_path):
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(path), np.int32) for path in (a_path, b_path))
    if a.shape != b.shape:
        raise SystemExit(f"benchmark_savedmodel: LR shapes differ: {a.shape} vs {b.shape}")
    return int(np.abs(a - b).max())


def _benchmark(work_dir):
    photo = os.path.join(work_dir, "photo.png")
    _make_photo(photo, FLAGS.height, FLAGS.width)
    report = {"height": FLAGS.height, "width": FLAGS.width, "model": FLAGS.model,
              "tile": FLAGS.tile, "cli_precision": FLAGS.cli_precision or "default (auto)",
              "export_precision": FLAGS.export_precision,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    if not FLAGS.skip_cli:
        report["cli"] = _run_cli(photo, os.path.join(work_dir, "cli"))
    from car_tf import pretrained
    from car_tf.export import savedmodel

    model = pretrained.load_model(FLAGS.model, "composite")
    export = savedmodel.export_saved_model(model, os.path.join(work_dir, "export"), 1,
                                           overwrite=True, tile=FLAGS.tile,
                                           precision=FLAGS.export_precision)
    out = os.path.join(work_dir, "saved_model_lr.png")
    report["saved_model"] = _run_saved_model(export, photo, out)
    if not FLAGS.skip_cli:
        report["max_level_difference"] = _level_difference(out, os.path.join(work_dir, "cli", "photo.png"))
        report["wall_ratio"] = report["saved_model"]["wall_s"] / report["cli"]["wall_s"]
    return report


def main(argv):
    del argv
    if FLAGS.work_dir:
        os.makedirs(FLAGS.work_dir, exist_ok=True)
        report = _benchmark(FLAGS.work_dir)
    else:
        with tempfile.TemporaryDirectory() as work_dir:
            report = _benchmark(work_dir)
    if FLAGS.json:
        print(json.dumps(report))
        return
    print(f"{FLAGS.height}x{FLAGS.width}, {FLAGS.model}, tile {FLAGS.tile}, "
          f"car --precision {report['cli_precision']}, "
          f"export --precision {report['export_precision']}, "
          f"{report['cpu_count']} cores, load {report['load_average']}")
    for name in ("cli", "saved_model"):
        if name in report:
            print(f"{name:12s} wall {report[name]['wall_s']:8.1f} s   "
                  f"peak RSS {report[name]['peak_rss_mib']:8.0f} MiB")
    if "wall_ratio" in report:
        print(f"SavedModel / CLI wall: {report['wall_ratio']:.2f}; "
              f"largest LR difference: {report['max_level_difference']} level(s)")


if __name__ == "__main__":
    app.run(main)
