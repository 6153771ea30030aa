"""Throughput of the Beam pipeline on the DirectRunner against `car downscale`, same folder.

Writes --images synthetic photos of --width x --height (the bundled sample images
enlarged, each cropped differently, plus mild noise so that PNG coding does real work)
into one folder, then times, as child processes, alternately --repeats times:

  python -m car_tf.cli downscale DIR -o OUT --model M --tile T --quiet
  python tools/beam_downscale.py downscale DIR -o OUT --model M --tile T --quiet \
      --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=W

Each run starts from an empty output folder, so everything is processed. Reported per
tool: wall time (start-up included: imports, model loading, Beam's worker processes),
images/s and MP/s (input megapixels), CPU time (the child's and its workers'), the
medians over the repeats, and the ratio of
the Beam figures to the CLI's. With --startup, each tool also runs on a one-image
folder, and `processing_mp_per_s` is MP / (wall - that start-up time). Both outputs
are compared: the largest difference between the two tools' LR pixels is reported.

Beam's launcher checks the model before the pipeline starts, loading it (TensorFlow)
the first time it sees it and reading a memo afterwards (car_tf.beam.model_check). The
children keep that memo in a folder of the work dir, emptied first; a one-image Beam run
before all others makes it (its wall time: `beam_first_check_startup_s`, in no median),
so the timed runs are what a user gets from the second run of a model on.

Other processes on the machine slow both tools down; runs alternate so that both see
the same load, and the load average is reported.

Usage:
  python tools/benchmark_beam.py --images 32 --width 1024 --height 768 --scale 4 [--json]
"""

import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from car_tf.beam import model_check

flags.DEFINE_integer("images", 32, "Photos in the folder.")
flags.DEFINE_integer("width", 1024, "Photo width in pixels.")
flags.DEFINE_integer("height", 768, "Photo height in pixels.")
flags.DEFINE_integer("scale", 4, "Scale factor.")
flags.DEFINE_string("model", None, "Model name or path (default: the bundled default).")
flags.DEFINE_integer("tile", None, "--tile for both tools (default: theirs).")
flags.DEFINE_integer("repeats", 2, "Runs of each tool, alternating.")
flags.DEFINE_integer("direct_num_workers", 2, "DirectRunner worker processes.")
flags.DEFINE_string("direct_running_mode", "multi_processing", "DirectRunner mode.")
flags.DEFINE_bool("startup", True, "Also time each tool on a one-image folder.")
flags.DEFINE_string("work_dir", None, "Where the photos and outputs go (default: a temp folder).")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _make_photos(folder, count, width, height):
    import numpy as np
    from PIL import Image

    from car_tf.image_io import write_image

    samples = sorted(glob.glob(os.path.join(REPO, "car_tf", "sample_data", "*.png")))
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        with Image.open(samples[index % len(samples)]) as image:
            side = 2 * max(width, height)
            big = np.asarray(image.convert("RGB").resize((side, side), Image.BICUBIC))
        y, x = rng.integers(0, side - height), rng.integers(0, side - width)
        crop = big[y:y + height, x:x + width].astype(np.float64)
        noisy = np.clip(crop + rng.normal(0, 3, crop.shape), 0, 255).astype(np.uint8)
        write_image(os.path.join(folder, f"photo_{index:03d}.png"), noisy)


def _children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(args, env):
    """(wall s, CPU s, exit status, stderr tail) of a child process; the CPU time counts
    its own children too (Beam's workers), which it waits for."""
    cpu, started = _children_cpu_s(), time.perf_counter()
    result = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)
    return (time.perf_counter() - started, _children_cpu_s() - cpu, result.returncode,
            result.stderr[-3000:])


def _timed_run(name, command, folder, out, env, cpu_times=None):
    """Wall s of one run of a tool into an emptied `out` (its CPU s appended to
    `cpu_times`); RuntimeError if it fails."""
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu, status, stderr = _time(command(folder, out), env)
    if status != 0:
        raise RuntimeError(f"{name} failed (exit {status}): {stderr}")
    if cpu_times is not None:
        cpu_times.append(round(cpu, 2))
    return round(wall, 2)


def _cpu_model():
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _model_flags():
    args = ["--model", FLAGS.model or f"car-x{FLAGS.scale}-bicubic", "--quiet"]
    return args + (["--tile", str(FLAGS.tile)] if FLAGS.tile is not None else [])


def _cli(folder, out):
    return [sys.executable, "-m", "car_tf.cli", "downscale", folder, "-o", out, *_model_flags()]


def _beam(folder, out):
    return [sys.executable, os.path.join(REPO, "tools", "beam_downscale.py"), "downscale", folder,
            "-o", out, *_model_flags(), "--runner=DirectRunner",
            f"--direct_running_mode={FLAGS.direct_running_mode}",
            f"--direct_num_workers={FLAGS.direct_num_workers}"]


def _largest_difference(folder_a, folder_b):
    import numpy as np
    from PIL import Image

    largest = 0
    for path in glob.glob(os.path.join(folder_a, "*.png")):
        with Image.open(path) as a, Image.open(os.path.join(folder_b, os.path.basename(path))) as b:
            largest = max(largest, int(np.abs(np.asarray(a, np.int16)
                                              - np.asarray(b, np.int16)).max()))
    return largest


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="car_beam_benchmark_")
    folder, single = os.path.join(work_dir, "photos"), os.path.join(work_dir, "one")
    _make_photos(folder, FLAGS.images, FLAGS.width, FLAGS.height)
    _make_photos(single, 1, FLAGS.width, FLAGS.height)
    memo = os.path.join(work_dir, "model_check_memo")
    shutil.rmtree(memo, ignore_errors=True)
    env = dict(os.environ, **{model_check.CACHE_ENV: memo})
    megapixels = FLAGS.images * FLAGS.width * FLAGS.height / 1e6
    tools = {"cli": _cli, "beam": _beam}
    result = {
        "images": FLAGS.images,
        "image": f"{FLAGS.width}x{FLAGS.height}",
        "megapixels": round(megapixels, 2),
        "scale": FLAGS.scale,
        "model": _model_flags()[1],
        "tile": FLAGS.tile,
        "beam_runner": (f"DirectRunner {FLAGS.direct_running_mode}, "
                        f"{FLAGS.direct_num_workers} workers"),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "runs": {name: [] for name in tools},
        "cpu_s": {name: [] for name in tools},
    }
    result["beam_first_check_startup_s"] = _timed_run(
        "beam", _beam, single, os.path.join(work_dir, "startup_beam"), env)
    if FLAGS.startup:
        result["startup_s"] = {
            name: _timed_run(name, command, single, os.path.join(work_dir, f"startup_{name}"),
                             env)
            for name, command in tools.items()}
    for _ in range(FLAGS.repeats):
        for name, command in tools.items():
            result["runs"][name].append(
                _timed_run(name, command, folder, os.path.join(work_dir, f"out_{name}"), env,
                           result["cpu_s"][name]))
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    for name in tools:
        wall = statistics.median(result["runs"][name])
        row = {"wall_s": round(wall, 2), "images_per_s": round(FLAGS.images / wall, 3),
               "mp_per_s": round(megapixels / wall, 3),
               "cpu_s": round(statistics.median(result["cpu_s"][name]), 2)}
        if FLAGS.startup:
            # None when the one-image run took as long as the whole folder: the load on
            # the machine changed between them, and the difference means nothing.
            processing = wall - result["startup_s"][name]
            row["processing_mp_per_s"] = (round(megapixels / processing, 3) if processing > 0
                                          else None)
        result[name] = row
    result["beam_over_cli"] = round(result["cli"]["wall_s"] / result["beam"]["wall_s"], 3)
    if FLAGS.startup:
        rates = [result[name]["processing_mp_per_s"] for name in ("beam", "cli")]
        result["beam_over_cli_processing"] = (round(rates[0] / rates[1], 3)
                                              if None not in rates else None)
    result["largest_pixel_difference"] = _largest_difference(
        os.path.join(work_dir, "out_cli"), os.path.join(work_dir, "out_beam"))
    if FLAGS.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{FLAGS.images} x {result['image']} ({result['megapixels']} MP), x{FLAGS.scale}, "
          f"model {result['model']}, {result['cpus']} CPUs ({result['cpu_model']}), load "
          f"{result['load_average_before']} -> {result['load_average_after']}; beam: "
          f"{result['beam_runner']}, first one-image run (model loaded to check it) "
          f"{result['beam_first_check_startup_s']} s")
    print("tool   wall_s (runs)            images/s   MP/s   cpu_s   startup_s  processing MP/s")
    for name in tools:
        row = result[name]
        runs = ", ".join(map(str, result["runs"][name]))
        print(f"{name:<6} {row['wall_s']:>6} ({runs:<16}) {row['images_per_s']:>9} "
              f"{row['mp_per_s']:>6} {row['cpu_s']:>7} "
              f"{result.get('startup_s', {}).get(name, '-'):>10} "
              f"{row.get('processing_mp_per_s') or '-':>16}")
    print(f"beam / cli throughput: {result['beam_over_cli']} end to end"
          + (f", {result['beam_over_cli_processing'] or '-'} after start-up" if FLAGS.startup
             else "")
          + f"; largest LR pixel difference {result['largest_pixel_difference']}")


if __name__ == "__main__":
    app.run(main)
