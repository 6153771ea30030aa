"""Benchmarks the `car` command end to end: MP/s and peak RSS of downscale and roundtrip.

Makes one synthetic photo of --megapixels (the bundled butterfly.png enlarged
to 4:3, plus mild noise so that PNG coding does real work), then runs each
command as its own child process, exactly as a user would:

  python -m car_tf.cli COMMAND photo.png -o OUT --model M --tile T --quiet

and reads the child's wall time, CPU time and peak resident set size
(os.wait4's ru_maxrss, which covers the whole process: Python, TensorFlow,
the model, the decoded image and the output arrays). A run on a 64x64 image
measures the fixed start-up cost (imports, model load, tracing), reported
as `startup_s` (and its CPU time and peak RSS); `processing_mp_per_s` is
megapixels / (wall - startup). `cpu_s` is user + system CPU time summed over
threads: on a machine shared with other work it is the steadier figure, and
wall can't be shorter than cpu_s / cores.

Model: --model, else the bundled default for the scale (pretrained
default_model_name(scale, "bicubic")), else -- until bundled weights exist --
the "lite" variant of default_config(scale, "bicubic") with random weights,
saved to a temporary model_dir; the output says which (`model_source`).
Random weights cost the same arithmetic as trained ones.

The machine is reported with its load average, since other processes sharing
the cores slow every figure down.

Usage:
  python tools/benchmark_cli.py --megapixels 12 --scale 4 [--tile 1024] [--json]
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from car_tf.cli import COMMANDS
from car_tf.ops import IMPLEMENTATIONS

flags.DEFINE_float("megapixels", 12.0, "Size of the test photo (4:3), in millions of pixels.")
flags.DEFINE_integer("scale", 4, "Scale factor.")
flags.DEFINE_string("model", None, "Model name or path (default: bundled, else lite random).")
flags.DEFINE_integer("tile", None, "--tile for the car command (default: its default).")
flags.DEFINE_list("commands", ["downscale", "roundtrip"],
                  f"car commands to time, of {', '.join(COMMANDS)}.")
flags.DEFINE_enum("resampler_impl", "auto", IMPLEMENTATIONS,
                  "Adaptive resampler implementation.")
flags.DEFINE_bool("bfloat16", False, "Pass --bfloat16 to the car command.")
flags.DEFINE_string("work_dir", None, "Where the photo and outputs go (default: a temp folder).")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
flags.DEFINE_bool("prepare", False,
                  "Internal: write the photos and the model into --work_dir, print JSON, exit.")
FLAGS = flags.FLAGS


def _make_photo(path, megapixels):
    import numpy as np
    from PIL import Image

    from car_tf.image_io import write_image

    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    source = os.path.join(os.path.dirname(os.path.abspath(__import__("car_tf").__file__)),
                          "sample_data", "butterfly.png")
    with Image.open(source) as image:
        big = np.asarray(image.convert("RGB").resize((width, height), Image.BICUBIC))
    noise = np.random.default_rng(0).normal(0, 3, big.shape)
    write_image(path, np.clip(big + noise, 0, 255).astype(np.uint8))
    return height, width


def _resolve_model(work_dir):
    """(model argument for the car command, where it came from)."""
    from car_tf import pretrained

    if FLAGS.model:
        return FLAGS.model, "given"
    name = pretrained.default_model_name(FLAGS.scale, "bicubic")
    if name in pretrained.bundled_models():
        return name, "bundled"
    from car_tf.models import build_car_model, default_config

    model_dir = os.path.join(work_dir, "lite_random")
    os.makedirs(model_dir, exist_ok=True)
    config = default_config(FLAGS.scale, "bicubic", "lite")
    build_car_model(config).save_weights(os.path.join(model_dir, pretrained.WEIGHTS))
    with open(os.path.join(model_dir, pretrained.CONFIG), "w") as handle:
        json.dump(config, handle)
    return model_dir, f"lite variant with random weights ({name} is not bundled yet)"


def _time_child(args):
    """Runs args as a child process; returns (wall s, cpu s, peak RSS MiB, exit status, stderr)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024.0, process.returncode, stderr


def _car(command, image, out_dir, model):
    args = [sys.executable, "-m", "car_tf.cli", command, image, "-o", out_dir, "--model", model,
            "--scale", str(FLAGS.scale), "--resampler_impl", FLAGS.resampler_impl, "--quiet"]
    if FLAGS.tile is not None:
        args += ["--tile", str(FLAGS.tile)]
    if FLAGS.bfloat16:
        args.append("--bfloat16")
    return args


def _prepare(work_dir):
    """Writes photo.png, small.png and (if needed) the model; returns what the timing needs."""
    height, width = _make_photo(os.path.join(work_dir, "photo.png"), FLAGS.megapixels)
    _make_photo(os.path.join(work_dir, "small.png"), 64 * 64 / 1e6)
    model, source = _resolve_model(work_dir)
    return {"height": height, "width": width, "model": model, "model_source": source}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="car_benchmark_")
    os.makedirs(work_dir, exist_ok=True)
    if FLAGS.prepare:
        print(json.dumps(_prepare(work_dir)))
        return
    # Preparing imports TensorFlow; doing it in a child keeps this process
    # small. Linux counts the memory a child had before exec (a copy of this
    # process) in its peak RSS, so a large parent would inflate every figure.
    prepared = json.loads(subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--prepare", f"--work_dir={work_dir}",
         f"--megapixels={FLAGS.megapixels}", f"--scale={FLAGS.scale}",
         *([f"--model={FLAGS.model}"] if FLAGS.model else [])],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    height, width = prepared["height"], prepared["width"]
    model, source = prepared["model"], prepared["model_source"]
    photo = os.path.join(work_dir, "photo.png")
    small = os.path.join(work_dir, "small.png")
    megapixels = height * width / 1e6
    result = {
        "image": f"{width}x{height}",
        "megapixels": round(megapixels, 2),
        "scale": FLAGS.scale,
        "model": model,
        "model_source": source,
        "tile": FLAGS.tile,
        "resampler_impl": FLAGS.resampler_impl,
        "bfloat16": FLAGS.bfloat16,
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "commands": {},
    }
    for command in FLAGS.commands:
        startup = _time_child(_car(command, small, os.path.join(work_dir, "small_" + command),
                                   model))
        wall, cpu, rss, status, stderr = _time_child(
            _car(command, photo, os.path.join(work_dir, command), model))
        if status != 0 or startup[3] != 0:
            raise RuntimeError(f"car {command} failed (exit {status}): {stderr.strip()[-2000:]}")
        result["commands"][command] = {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(rss, 1),
            "mp_per_s": round(megapixels / wall, 3),
            "startup_s": round(startup[0], 2),
            "startup_cpu_s": round(startup[1], 2),
            "startup_peak_rss_mib": round(startup[2], 1),
            "processing_mp_per_s": round(megapixels / max(wall - startup[0], 1e-9), 3),
        }
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    if FLAGS.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['image']} ({result['megapixels']} MP), x{FLAGS.scale}, model: {source}, "
          f"tile {FLAGS.tile or 'default'}, bfloat16 {FLAGS.bfloat16}, {result['cpus']} CPUs, load "
          f"{result['load_average_before']} -> {result['load_average_after']}")
    print("command    wall_s  cpu_s  startup_s  startup_cpu_s  MP/s  processing MP/s  "
          "peak RSS MiB")
    for command, row in result["commands"].items():
        print(f"{command:<10} {row['wall_s']:>6} {row['cpu_s']:>6} {row['startup_s']:>9} "
              f"{row['startup_cpu_s']:>13} {row['mp_per_s']:>5} {row['processing_mp_per_s']:>16} "
              f"{row['peak_rss_mib']:>13}")


if __name__ == "__main__":
    app.run(main)
