"""Where one tile of an adaptive downscale spends its CPU: the ResamplerNet layer by layer, and
the resampler (the custom op; the composite twin's local path, split into building the weight
windows and applying them).

Each part runs as its own tf.function on the outputs of the parts before it, on a random
--size x --size tile (the CLI's tile of 1024 plus its halo is about 1120); the figure is the
least CPU time (user + system, both cores) of --repeats runs after one warm-up. With
--levels_moved it also downscales the bundled sample images at --precision and at float32
through car_tf.inference.Runner and prints how many LR values differ, and by how much.

  python tools/profile_downscale.py --model=car-x2-bicubic --precision=mixed_bfloat16
"""

import os
import time

import numpy as np
from absl import app, flags

flags.DEFINE_string("model", "car-x4-bicubic", "An adaptive CAR model: bundled name or path.")
flags.DEFINE_enum("precision", "mixed_bfloat16", ["float32", "mixed_bfloat16"],
                  "How the ResamplerNet runs (car_tf.inference's precisions).")
flags.DEFINE_integer("size", 1120, "Tile side in HR pixels.")
flags.DEFINE_integer("repeats", 3, "Timed runs per part; the least CPU time is printed.")
flags.DEFINE_bool("resampler", True, "Also time the resampler (off: the network only, which "
                  "also runs against older checkouts, through PYTHONPATH).")
flags.DEFINE_bool("levels_moved", False,
                  "Also compare --precision's LR with float32's on the bundled sample images.")
FLAGS = flags.FLAGS


def _cpu_seconds(fn, *args):
    """(least CPU seconds of FLAGS.repeats runs of tf.function(fn), its outputs)."""
    import tensorflow as tf

    traced = tf.function(fn)
    outputs = traced(*args)
    best = float("inf")
    for _ in range(FLAGS.repeats):
        started = time.process_time()
        outputs = traced(*args)
        for tensor in tf.nest.flatten(outputs):
            tensor.numpy()
        best = min(best, time.process_time() - started)
    return best, outputs


def _report(name, seconds):
    print(f"  {name:<36} {seconds:7.3f}")


def _network(net, hr):
    """Times the ResamplerNet's parts in call order; returns (kernels, offsets_x, offsets_y)."""
    try:
        from car_tf.models.layers import run_chain  # space-to-depth pairs fused, as call runs them
    except ImportError:  # a checkout from before the fusion (--resampler=false, PYTHONPATH)
        def run_chain(layers, x):
            for layer in layers:
                x = layer(x)
            return x

    def chain(layers):
        return lambda x: run_chain(layers, x)

    seconds, x = _cpu_seconds(chain([net.sub_mean, *net.encoder]), hr)
    _report("stem and space-to-depth (H to H/4)", seconds)
    if net.res_blocks:
        seconds, x = _cpu_seconds(lambda x: x + chain(net.res_blocks)(x), x)
        _report("residual blocks", seconds)
    seconds, x = _cpu_seconds(chain(net.bottleneck), x)
    _report("bottleneck (H/8)", seconds)
    for trunk, heads in (("kernel_trunk", ["kernel_head"]),
                         ("offset_trunk", ["offset_x_head", "offset_y_head"])):
        features = x
        for layer in getattr(net, trunk):
            seconds, features = _cpu_seconds(layer, features)
            _report(f"{layer.name} ({layer.compute_dtype})", seconds)
        for head in heads:
            values = features
            for layer in getattr(net, head):
                seconds, values = _cpu_seconds(layer, values)
                _report(f"{layer.name} ({layer.compute_dtype})", seconds)
    seconds, result = _cpu_seconds(net, hr)
    _report("whole network", seconds)
    return result


def _resampler(model, hr, kernels, offsets_x, offsets_y):
    import tensorflow as tf

    from car_tf import ops
    from car_tf.ops import composite

    scale = model.scale
    k = 3 * scale + 1
    if ops.custom_op_available():
        _report("resampler: custom op", _cpu_seconds(
            lambda *a: ops.adaptive_resample(*a, float(scale), impl="custom"),
            hr, kernels, offsets_x, offsets_y)[0])
    _report("resampler: composite local path", _cpu_seconds(
        lambda *a: ops.adaptive_resample_composite(*a, float(scale), local_fast_path=True),
        hr, kernels, offsets_x, offsets_y)[0])
    moves_x = float(scale) * tf.reshape(offsets_x, [-1, k, 1, k])
    moves_y = float(scale) * tf.reshape(offsets_y, [-1, k, 1, k])
    seconds, windows = _cpu_seconds(
        lambda *a: composite.weight_windows(*a, scale), kernels, moves_x, moves_y)
    _report("  of which: weight_windows", seconds)
    _report("  of which: apply_windows", _cpu_seconds(
        lambda image, w: composite.apply_windows(image, w, tf.shape(kernels)[:3], scale),
        hr, windows)[0])


def _levels_moved(model):
    from car_tf import image_io, inference, sample_data

    folder = os.path.dirname(sample_data.__file__)
    images = [image_io.read_image(os.path.join(folder, name)).rgb
              for name in sorted(os.listdir(folder)) if name.endswith(".png")]
    exact = [inference.Runner(model, 256, "float32").downscale(image) for image in images]
    runner = inference.Runner(model, 256, FLAGS.precision)
    moved = most = values = 0
    for image, reference in zip(images, exact):
        difference = np.abs(runner.downscale(image).astype(int) - reference)
        moved += np.count_nonzero(difference)
        most = max(most, int(difference.max()))
        values += difference.size
    print(f"{FLAGS.precision} against float32 on {len(images)} sample images: "
          f"{moved / values:.3%} of LR values differ, by at most {most} level(s)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import tensorflow as tf

    from car_tf import pretrained

    model = pretrained.load_model(FLAGS.model)
    if not hasattr(model, "resampler"):
        raise app.UsageError(f"--model {FLAGS.model} has no ResamplerNet to profile")
    model.resampler.set_body_dtype_policy(FLAGS.precision)
    hr = tf.random.stateless_uniform([1, FLAGS.size, FLAGS.size, 3], seed=[0, 0])
    print(f"{FLAGS.model}, {FLAGS.precision}, one {FLAGS.size} x {FLAGS.size} tile, "
          f"least CPU s of {FLAGS.repeats} runs ({os.cpu_count()} CPUs)")
    # As the model's AdaptiveDownscale layer casts them: under mixed_bfloat16 the offset
    # heads give bfloat16, and the resampler computes in float32.
    kernels, offsets_x, offsets_y = (tf.cast(tensor, tf.float32)
                                     for tensor in _network(model.resampler, hr))
    if FLAGS.resampler:
        _resampler(model, hr, kernels, offsets_x, offsets_y)
    if FLAGS.levels_moved:
        _levels_moved(model)


if __name__ == "__main__":
    app.run(main)
