"""Benchmarks the `car` command end to end: MP/s and peak RSS, beside a Pillow reference.

Makes one synthetic photo of --megapixels (the bundled butterfly.png enlarged
to 4:3, plus mild noise so that PNG coding does real work), then runs each
command as its own child process, exactly as a user would:

  python -m car_tf.cli COMMAND photo.png -o OUT --model M --tile T --quiet

and reads the child's wall time, CPU time and peak resident set size
(os.wait4's ru_maxrss, which covers the whole process: Python, TensorFlow,
the model, the decoded image and the output arrays). A run on a 64x64 image
measures the fixed start-up cost (imports, model load, tracing), reported
as `startup_s` (and its CPU time and peak RSS); `processing_mp_per_s` is
megapixels / (wall - startup), and `processing_cpu_s` the CPU time beyond
start-up. `cpu_s` is user + system CPU time summed over threads: on a machine
shared with other work it is the steadier figure, and wall can't be shorter
than cpu_s / cores.

Side by side, in one run: every --models entry, under every --checkouts entry
(LABEL=PATH: the car command runs with PYTHONPATH=PATH, e.g. a git worktree of an
older commit, so that before and after share the machine's load), and, for
downscale, the Pillow reference (`pillow`: a Python script that starts, decodes the
PNG, resizes it with Image.BICUBIC to 1/scale per side and writes it as PNG at zlib
level 6, as `car` does). The variants take turns, --repeats rounds; each figure is
the median over the rounds.

Model: --models, else the bundled default for the scale (pretrained
default_model_name(scale, "bicubic")), else -- until bundled weights exist --
the "lite" variant of default_config(scale, "bicubic") with random weights,
saved to a temporary model_dir; the output says which (`model_source`).
Random weights cost the same arithmetic as trained ones.

With --model_only, downscale is also timed without the file work: one child per
model (and one for Pillow) decodes the photo, builds what `car downscale` builds for
those flags (car_tf.cli.model_and_runner: car_tf.fixed_numpy's compiled twin for a
fixed-kernel model, else an inference.Runner), runs it once to warm up (tracing, first-touch memory), then times
--repeats runs on the in-memory array (`model_only`: median wall and CPU s, MP/s). That
is the processing a library user pays per image; the whole-run figures add start-up,
PNG decode and encode, which any downscaler pays.

The machine is reported with its load average, since other processes sharing
the cores slow every figure down.

Usage:
  python tools/benchmark_cli.py --megapixels 12 --scale 4 [--tile 1024] [--json]
  python tools/benchmark_cli.py --scale 4 --commands downscale \\
      --models car-x4-bicubic,car-x4-fixed --checkouts before=/tmp/main_before,after=. \\
      --repeats 3
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from car_tf.choices import IMPLEMENTATIONS, PRECISIONS
from car_tf.cli import COMMANDS

flags.DEFINE_float("megapixels", 12.0, "Size of the test photo (4:3), in millions of pixels.")
flags.DEFINE_integer("scale", 4, "Scale factor.")
flags.DEFINE_list("models", None, "Model names or paths (default: bundled, else lite random).")
flags.DEFINE_list("checkouts", None,
                  "LABEL=PATH entries: run the car command with PYTHONPATH=PATH for each "
                  "(default: this checkout only).")
flags.DEFINE_integer("repeats", 1, "Rounds; each figure is the median over them.")
flags.DEFINE_bool("pillow", True, "Time the Pillow reference beside `car downscale`.")
flags.DEFINE_integer("tile", None, "--tile for the car command (default: its default).")
flags.DEFINE_list("commands", ["downscale", "roundtrip"],
                  f"car commands to time, of {', '.join(COMMANDS)}.")
flags.DEFINE_enum("resampler_impl", "auto", IMPLEMENTATIONS,
                  "Adaptive resampler implementation.")
flags.DEFINE_enum("precision", None, PRECISIONS,
                  "--precision for the car command (default: its default; checkouts from "
                  "before the flag existed reject it).")
flags.DEFINE_bool("bfloat16", False, "Pass --bfloat16 to the car command.")
flags.DEFINE_bool("model_only", False,
                  "Also time downscale on the decoded photo in memory, without start-up, "
                  "decode or encode (this checkout only).")
flags.DEFINE_string("work_dir", None, "Where the photo and outputs go (default: a temp folder).")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
flags.DEFINE_bool("prepare", False,
                  "Internal: write the photos and the models into --work_dir, print JSON, exit.")
FLAGS = flags.FLAGS

# Python start, decode, bicubic resize, encode: what `car downscale` does, with Pillow.
PILLOW_SCRIPT = """
import sys
from PIL import Image
source, target, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Image.open(source) as image:
    small = image.convert("RGB").resize((-(-image.width // scale), -(-image.height // scale)),
                                        Image.BICUBIC)
small.save(target, compress_level=6)
"""

# Downscale of a decoded photo in memory, timed after one warm-up run: what `car downscale`
# runs for the given car arguments (or Pillow's resize), without start-up or file work.
MODEL_ONLY_SCRIPT = """
import json, sys, time
source, repeats, scale, car_args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
if car_args:
    from car_tf import cli
    from car_tf.image_io import read_image
    rgb = read_image(source).rgb
    _, runner = cli.model_and_runner(cli.build_parser().parse_args(car_args))
    downscale = runner.downscale
else:
    from PIL import Image
    image = Image.open(source).convert("RGB")
    size = (-(-image.width // scale), -(-image.height // scale))
    downscale = lambda _: image.resize(size, Image.BICUBIC)
    rgb = None
downscale(rgb)
walls, cpus = [], []
for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    downscale(rgb)
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
print(json.dumps({"walls_s": walls, "cpus_s": cpus}))
"""


def _make_photo(path, megapixels):
    from car_tf.image_io import write_image
    from car_tf.sample_data import synthetic_photo

    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    write_image(path, synthetic_photo(height, width))
    return height, width


def _resolve_models(work_dir):
    """[(model argument for the car command, where it came from)]."""
    from car_tf import pretrained

    if FLAGS.models:
        return [(model, "given") for model in FLAGS.models]
    name = pretrained.default_model_name(FLAGS.scale, "bicubic")
    if name in pretrained.bundled_models():
        return [(name, "bundled")]
    from car_tf.models import build_car_model, default_config

    model_dir = os.path.join(work_dir, "lite_random")
    os.makedirs(model_dir, exist_ok=True)
    config = default_config(FLAGS.scale, "bicubic", "lite")
    build_car_model(config).save_weights(os.path.join(model_dir, pretrained.WEIGHTS))
    with open(os.path.join(model_dir, pretrained.CONFIG), "w") as handle:
        json.dump(config, handle)
    return [(model_dir, f"lite variant with random weights ({name} is not bundled yet)")]


def _time_child(args, checkout=None):
    """Runs args as a child process (in checkout's folder, with its PYTHONPATH, if given);
    returns (wall s, cpu s, peak RSS MiB, exit status, stderr)."""
    env = cwd = None
    if checkout is not None:
        # `python -m` puts the working folder first on sys.path, before PYTHONPATH.
        cwd, env = checkout, dict(os.environ, PYTHONPATH=checkout)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors, env=env,
                                   cwd=cwd)
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
    if FLAGS.precision is not None:
        args += ["--precision", FLAGS.precision]
    if FLAGS.bfloat16:
        args.append("--bfloat16")
    return args


def _pillow(image, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, os.path.basename(image))
    return [sys.executable, "-c", PILLOW_SCRIPT, image, target, str(FLAGS.scale)]


def _checkouts():
    """[(label, absolute path or None for this checkout)], from --checkouts."""
    if not FLAGS.checkouts:
        return [("this", None)]
    checkouts = []
    for entry in FLAGS.checkouts:
        label, separator, path = entry.partition("=")
        if not separator or not os.path.isdir(os.path.join(path, "car_tf")):
            raise app.UsageError(f"--checkouts {entry!r}: want LABEL=PATH of a checkout with car_tf/")
        checkouts.append((label, os.path.abspath(path)))
    return checkouts


def _prepare(work_dir):
    """Writes photo.png, small.png and (if needed) the model; returns what the timing needs."""
    height, width = _make_photo(os.path.join(work_dir, "photo.png"), FLAGS.megapixels)
    _make_photo(os.path.join(work_dir, "small.png"), 64 * 64 / 1e6)
    return {"height": height, "width": width, "models": _resolve_models(work_dir)}


def _variants(command, models, work_dir):
    """[(name, (args of the small run, args of the big run), checkout)] for one command."""
    photo = os.path.join(work_dir, "photo.png")
    small = os.path.join(work_dir, "small.png")
    variants = []
    for label, checkout in _checkouts():
        for model, _ in models:
            name = f"{os.path.basename(model.rstrip('/'))} ({label})" if FLAGS.checkouts else model
            out = os.path.join(work_dir, "out", command, label, os.path.basename(model))
            variants.append((name, (_car(command, small, out + "_small", model),
                                    _car(command, photo, out, model)), checkout))
    if command == "downscale" and FLAGS.pillow:
        out = os.path.join(work_dir, "out", "pillow")
        variants.append(("pillow", (_pillow(small, out + "_small"), _pillow(photo, out)), None))
    return variants


def _summary(rounds, megapixels):
    """Medians over rounds of (startup, run) child timings, each (wall s, cpu s, peak MiB)."""
    walls = [run[0] for _, run in rounds]
    startups = [startup[0] for startup, _ in rounds]
    return {
        "wall_s": round(statistics.median(walls), 2),
        "cpu_s": round(statistics.median(run[1] for _, run in rounds), 2),
        "peak_rss_mib": round(statistics.median(run[2] for _, run in rounds), 1),
        "mp_per_s": round(megapixels / statistics.median(walls), 3),
        "startup_s": round(statistics.median(startups), 2),
        "startup_cpu_s": round(statistics.median(startup[1] for startup, _ in rounds), 2),
        "startup_peak_rss_mib": round(statistics.median(startup[2] for startup, _ in rounds), 1),
        # None when the big run took no longer than the small one (a tiny --megapixels).
        "processing_mp_per_s": (round(statistics.median(
            megapixels / (run[0] - startup[0]) for startup, run in rounds), 3)
            if all(run[0] > startup[0] for startup, run in rounds) else None),
        # CPU seconds beyond start-up: steadier than wall time on a shared machine.
        "processing_cpu_s": round(statistics.median(
            run[1] - startup[1] for startup, run in rounds), 2),
        "walls_s": [round(wall, 2) for wall in walls],
    }


def _model_only(models, work_dir, megapixels):
    """{name: median wall s, CPU s and MP/s} of downscale in memory (MODEL_ONLY_SCRIPT)."""
    photo = os.path.join(work_dir, "photo.png")
    runs = [(model, _car("downscale", photo, os.path.join(work_dir, "out", "model_only"),
                         model)[3:]) for model, _ in models]
    if FLAGS.pillow:
        runs.append(("pillow", []))
    timings = {}
    for name, car_args in runs:
        done = subprocess.run([sys.executable, "-c", MODEL_ONLY_SCRIPT, photo, str(FLAGS.repeats),
                               str(FLAGS.scale), *car_args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name} model-only run failed (exit {done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        wall = statistics.median(measured["walls_s"])
        timings[name] = {"wall_s": round(wall, 3),
                         "cpu_s": round(statistics.median(measured["cpus_s"]), 3),
                         "mp_per_s": round(megapixels / wall, 2),
                         "walls_s": [round(value, 3) for value in measured["walls_s"]]}
    return timings


def _level_differences(command, models, work_dir):
    """{model: {checkout: [max |level difference|, fraction of values that differ]}} of
    each checkout's output against the first checkout's, for models run under several."""
    checkouts = _checkouts()
    if len(checkouts) < 2:
        return {}
    import numpy as np
    from PIL import Image

    def output(label, model):
        path = os.path.join(work_dir, "out", command, label, os.path.basename(model),
                            "photo.png")
        with Image.open(path) as image:
            return np.asarray(image).astype(int)

    differences = {}
    for model, _ in models:
        first = output(checkouts[0][0], model)
        differences[model] = {}
        for label, _ in checkouts[1:]:
            difference = np.abs(output(label, model) - first)
            differences[model][label] = [int(difference.max()),
                                         round(float(np.mean(difference > 0)), 6)]
    return differences


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.repeats < 1:
        raise app.UsageError(f"--repeats must be >= 1, got {FLAGS.repeats}")
    work_dir = os.path.abspath(FLAGS.work_dir or tempfile.mkdtemp(prefix="car_benchmark_"))
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
         *([f"--models={','.join(FLAGS.models)}"] if FLAGS.models else [])],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    height, width = prepared["height"], prepared["width"]
    megapixels = height * width / 1e6
    result = {
        "image": f"{width}x{height}",
        "megapixels": round(megapixels, 2),
        "scale": FLAGS.scale,
        "models": dict(prepared["models"]),
        "checkouts": FLAGS.checkouts or ["this"],
        "repeats": FLAGS.repeats,
        "tile": FLAGS.tile,
        "resampler_impl": FLAGS.resampler_impl,
        "precision": FLAGS.precision,
        "bfloat16": FLAGS.bfloat16,
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "commands": {},
    }
    for command in FLAGS.commands:
        variants = _variants(command, prepared["models"], work_dir)
        rounds = {name: [] for name, _, _ in variants}
        for _ in range(FLAGS.repeats):
            for name, (small_args, big_args), checkout in variants:
                timings = []
                for args in (small_args, big_args):
                    wall, cpu, rss, status, stderr = _time_child(args, checkout)
                    if status != 0:
                        raise RuntimeError(f"{name} {command} failed (exit {status}): "
                                           f"{stderr.strip()[-2000:]}")
                    timings.append((wall, cpu, rss))
                rounds[name].append(tuple(timings))
        result["commands"][command] = {
            name: _summary(timings, megapixels) for name, timings in rounds.items()}
        if command != "roundtrip":
            result.setdefault("levels_moved", {})[command] = _level_differences(
                command, prepared["models"], work_dir)
    if FLAGS.model_only:
        result["model_only"] = _model_only(prepared["models"], work_dir, megapixels)
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    if FLAGS.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['image']} ({result['megapixels']} MP), x{FLAGS.scale}, "
          f"tile {FLAGS.tile or 'default'}, medians of {FLAGS.repeats}, {result['cpus']} CPUs, "
          f"load {result['load_average_before']} -> {result['load_average_after']}")
    for command, rows in result["commands"].items():
        print(f"{command:<28} wall_s  cpu_s  startup_s  MP/s  processing MP/s  "
              "processing cpu_s  peak RSS MiB")
        for name, row in rows.items():
            print(f"  {name:<26} {row['wall_s']:>6} {row['cpu_s']:>6} {row['startup_s']:>9} "
                  f"{row['mp_per_s']:>5} {str(row['processing_mp_per_s']):>16} "
                  f"{row['processing_cpu_s']:>17} {row['peak_rss_mib']:>13}")
        for model, moved in result.get("levels_moved", {}).get(command, {}).items():
            for label, (most, fraction) in moved.items():
                print(f"  {model} ({label}) against ({result['checkouts'][0].split('=')[0]}): "
                      f"at most {most} levels apart, {fraction:.4%} of values differ")
    if "model_only" in result:
        print("downscale in memory (no start-up, decode or encode): wall_s  cpu_s  MP/s")
        for name, row in result["model_only"].items():
            print(f"  {name:<26} {row['wall_s']:>6} {row['cpu_s']:>6} {row['mp_per_s']:>5}")


if __name__ == "__main__":
    app.run(main)
