"""Benchmarks the adaptive resampler: the custom op against its pure-TF twin.

Times one training step of the op, forward plus backward for all four inputs
(image, kernels, offsets_x, offsets_y), on the training shape: a batch of
`--crop_size`-pixel HR crops, C = 3, k = 3 * scale + 1 (13 at scale 4), output
crop_size / scale pixels square. Both implementations run inside one tf.function,
as they do in training, through car_tf.ops.adaptive_resample.

Each implementation is measured in a fresh subprocess of this script, so that
neither inherits the other's allocations, and the parent prints one JSON
object (`--json`) or a short table.

Time: the median (and minimum) wall time of `--repeats` steps after
`--warmup` untimed steps (the first one traces the tf.function). `*_cpu_ms` is
the median CPU time of the process per step (all threads, user + system): on a
machine shared with other jobs it varies far less than wall time, and
`cpu_speedup` compares the work the two implementations do.

Memory ("extra memory over the inputs"): the child creates the inputs and the
upstream gradient as tensors, loads the op library and then reads its
resident set size (VmRSS). It resets the kernel's peak-RSS counter
(`echo 5 > /proc/self/clear_refs`), runs warm-up and timed steps, and reads the
peak (VmHWM). `*_peak_mib` = peak - that RSS, in MiB. It therefore includes
everything a step needs beyond its inputs: the outputs and the four gradients,
the intermediates kept for the backward pass, transient buffers, and the small
cost of tracing the tf.function. Where clear_refs is not writable the peak is
ru_maxrss instead (`memory_method` says which); it can then only be larger.

Throughput: `custom_gflops` is effective GFLOP/s,
N * h * w * k^2 * C * 34 / time, counting only the per-channel arithmetic of the
op as written in custom_ops/cc/kernels/adaptive_resample.h, per tap and
channel: forward 8 (4 multiply-adds of the bilinear corners), parameter
gradients 18, image gradient 8 (4 multiply-adds of the scatter). Locating the
taps (positions, floors, reflections, bilinear weights) is not counted.

Usage:
  python tools/benchmark_op.py --scale 4 --batch_size 16 --crop_size 192 --json

(--batch and --patch, the old names of --batch_size and --crop_size, still work for one
release.)
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

from car_tf import renamed_flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("scale", 4, "Downscaling factor; offset_unit and the kernel size follow it.")
flags.DEFINE_integer("batch_size", 16, "Crops per step.")
flags.DEFINE_integer("crop_size", 192, "HR crop side in pixels; must be a multiple of --scale.")
renamed_flags.define_old_name("batch")
renamed_flags.define_old_name("patch")
flags.DEFINE_integer("kernel_size", None, "Kernel side k; default the model's, 3 * scale + 1.")
flags.DEFINE_integer("channels", 3, "Image channels.")
flags.DEFINE_integer("repeats", 10, "Timed steps per implementation.")
flags.DEFINE_integer("warmup", 2, "Untimed steps before timing (the first traces).")
flags.DEFINE_integer("seed", 0, "Seed of the random inputs.")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
flags.DEFINE_enum(
    "worker", None, ["custom", "composite"],
    "Internal: measure this implementation in this process and print its JSON.",
)

FLOPS_PER_TAP_CHANNEL = 8 + 18 + 8


def _reset_peak_rss():
    """Resets VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _make_inputs(tf, np, k):
    """Random inputs shaped like a training batch: normalised positive kernels
    and offsets in (-1, 1), as ResamplerNet produces them."""
    rng = np.random.default_rng(FLAGS.seed)
    lr = FLAGS.patch // FLAGS.scale
    taps_shape = (FLAGS.batch, lr, lr, k * k)
    image = rng.random((FLAGS.batch, FLAGS.patch, FLAGS.patch, FLAGS.channels), np.float32)
    kernels = rng.random(taps_shape, np.float32)
    kernels /= kernels.sum(axis=-1, keepdims=True)
    offsets_x = np.tanh(rng.standard_normal(taps_shape, np.float32))
    offsets_y = np.tanh(rng.standard_normal(taps_shape, np.float32))
    grad_output = rng.standard_normal((FLAGS.batch, lr, lr, FLAGS.channels), np.float32)
    return [tf.constant(a) for a in (image, kernels, offsets_x, offsets_y, grad_output)]


def _measure(impl):
    """Times and measures one implementation in this process; returns a dict."""
    import numpy as np
    import tensorflow as tf

    from car_tf import ops
    from car_tf.memory import proc_status_kib
    from car_tf.models import kernel_size_for

    if impl == "custom" and not ops.custom_op_available():
        raise app.UsageError(f"the custom op cannot load: {ops.op_library_error()}")
    k = FLAGS.kernel_size or kernel_size_for(FLAGS.scale)
    image, kernels, offsets_x, offsets_y, grad_output = _make_inputs(tf, np, k)
    offset_unit = float(FLAGS.scale)

    @tf.function
    def step(image, kernels, offsets_x, offsets_y, grad_output):
        inputs = [image, kernels, offsets_x, offsets_y]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            output = ops.adaptive_resample(*inputs, offset_unit, impl=impl)
        return output, tape.gradient(output, inputs, output_gradients=grad_output)

    base_kib = proc_status_kib("VmRSS")
    exact_peak = base_kib is not None and _reset_peak_rss()
    for _ in range(FLAGS.warmup):
        step(image, kernels, offsets_x, offsets_y, grad_output)
    times_ms, cpu_ms = [], []
    for _ in range(FLAGS.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        step(image, kernels, offsets_x, offsets_y, grad_output)
        times_ms.append((time.perf_counter() - start) * 1e3)
        cpu_ms.append((time.process_time() - start_cpu) * 1e3)
    if exact_peak:
        peak_kib = proc_status_kib("VmHWM")
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux.
        base_kib = base_kib or 0
    return {
        "kernel_size": k,
        "median_ms": statistics.median(times_ms),
        "min_ms": min(times_ms),
        "cpu_ms": statistics.median(cpu_ms),
        "peak_mib": (peak_kib - base_kib) / 1024.0,
        "memory_method": "VmHWM after clear_refs" if exact_peak else "ru_maxrss",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
    }


def _run_worker(impl):
    """Runs this script as a fresh process measuring one implementation."""
    argv = [sys.executable, os.path.abspath(__file__), f"--worker={impl}"]
    for name in ("scale", "batch_size", "crop_size", "kernel_size", "channels", "repeats", "warmup", "seed"):
        value = getattr(FLAGS, name)
        if value is not None:
            argv.append(f"--{name}={value}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"benchmark_op: the {impl} worker failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.crop_size % FLAGS.scale:
        raise app.UsageError(
            f"--crop_size {FLAGS.crop_size} must be a multiple of --scale {FLAGS.scale}")
    if FLAGS.worker:
        print(json.dumps(_measure(FLAGS.worker)))
        return
    custom = _run_worker("custom")
    composite = _run_worker("composite")
    k = custom["kernel_size"]
    lr = FLAGS.crop_size // FLAGS.scale
    flops = FLAGS.batch_size * lr * lr * k * k * FLAGS.channels * FLOPS_PER_TAP_CHANNEL
    report = {
        "scale": FLAGS.scale,
        "batch_size": FLAGS.batch_size,
        "crop_size": FLAGS.crop_size,
        "out_size": lr,
        "kernel_size": k,
        "channels": FLAGS.channels,
        "repeats": FLAGS.repeats,
        "intra_op_threads": custom["intra_op_threads"],
        "custom_ms": round(custom["median_ms"], 2),
        "composite_ms": round(composite["median_ms"], 2),
        "custom_min_ms": round(custom["min_ms"], 2),
        "composite_min_ms": round(composite["min_ms"], 2),
        "speedup": round(composite["median_ms"] / custom["median_ms"], 2),
        "custom_cpu_ms": round(custom["cpu_ms"], 2),
        "composite_cpu_ms": round(composite["cpu_ms"], 2),
        "cpu_speedup": round(composite["cpu_ms"] / custom["cpu_ms"], 2),
        "custom_peak_mib": round(custom["peak_mib"], 1),
        "composite_peak_mib": round(composite["peak_mib"], 1),
        "memory_ratio": round(custom["peak_mib"] / composite["peak_mib"], 4),
        "memory_method": custom["memory_method"],
        "custom_gflops": round(flops / (custom["median_ms"] * 1e6), 2),
        "composite_gflops": round(flops / (composite["median_ms"] * 1e6), 2),
    }
    if FLAGS.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    app.run(main)
