"""Exports a CAR model for deployment: a SavedModel for TF Serving, `.tflite` files for LiteRT.

SavedModel (`export_saved_model`), written to `<export_base>/<version>/` as TF Serving
expects. Signatures, all with a dynamic batch N and dynamic H and W:
  downscale              hr uint8 [N, H, W, 3] -> lr uint8 [N, ceil(H/s), ceil(W/s), 3]
  serving_default        the same as downscale
  upscale                lr uint8 [N, h, w, 3] -> sr uint8 [N, h*s, w*s, 3]
  downscale_image_bytes  image_bytes string [N] (PNG/JPEG/BMP/GIF) -> lr_png_bytes string [N]
  upscale_image_bytes    image_bytes string [N] -> sr_png_bytes string [N]
The string signatures exist for TF Serving's REST API, which carries binary strings as
{"b64": ...}; their output names end in `_bytes`, so TF Serving base64-encodes them too.

Any HR size of at least 1x1 is accepted: the network needs H and W to be multiples of
size_multiple(scale) = lcm(8, s), and at least min_hr_size(scale), so the graph extends
the image at the bottom and right by mirror reflection (as tf.pad "REFLECT", repeated
for images smaller than the padding), downscales, and crops the LR image to
ceil(H/s) x ceil(W/s): the LR pixels that cover at least one real HR pixel.

`.tflite` (`export_tflite`): a downscaler and an upscaler with fixed shapes (batch 1,
HR size given at export), built-in ops only, in float32, float16 or with dynamic-range
quantised weights. TFLite has no bicubic resize, so a bicubic upscaler is rebuilt from
gathers (`car_tf.models.bicubic.bicubic_upscale_builtin`), equal to tf.image.resize to float round-off.

The default resampler implementation is "composite" (built-in TF ops only), loadable by
stock TensorFlow and TF Serving. "custom" keeps the compiled AdaptiveResample op: such a
SavedModel loads only in a process that has car_tf's op library (`import car_tf` loads
it), see `load_saved_model`.
"""

import json
import math
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

import car_tf
from car_tf.models.bicubic import bicubic_upscale_builtin
from car_tf.models.resampler_net import min_hr_size, size_multiple
from car_tf.ops import IMPLEMENTATIONS, load_op_library, op_library_error

DEFAULT_RESAMPLER_IMPL = "composite"
QUANTIZATIONS = ("float32", "float16", "dynamic_range")
SIGNATURES = (
    "downscale",
    "serving_default",
    "upscale",
    "downscale_image_bytes",
    "upscale_image_bytes",
)
# Written next to the SavedModel; TF Serving and tf.saved_model.load ignore assets.extra/.
METADATA_PATH = os.path.join("assets.extra", "car_tf_export.json")
CUSTOM_OP_NAME = "AdaptiveResample"


class MissingOpError(RuntimeError):
    """A SavedModel needs car_tf's AdaptiveResample op, which this process hasn't registered."""


def check_car_model(model):
    """Raises ValueError unless `model` has CARModel's downscale/upscale interface."""
    for method in ("downscale_uint8", "upscale_uint8", "downscale"):
        if not hasattr(model, method):
            raise ValueError(
                f"{type(model).__name__} is not a CAR model (no {method}); export needs a CARModel"
            )


def with_resampler_impl(model, resampler_impl):
    """The same CAR model (same weights) using `resampler_impl`; `model` itself if it already does.

    A `.keras` file loads with the implementation it was saved with, so export
    rebuilds the model from its config to pick the one it writes.
    """
    from car_tf.models import build_car_model

    if resampler_impl not in IMPLEMENTATIONS:
        raise ValueError(f"resampler_impl must be one of {IMPLEMENTATIONS}, got {resampler_impl!r}")
    check_car_model(model)
    if model.config["resampler_impl"] == resampler_impl:
        return model
    rebuilt = build_car_model({**model.config, "resampler_impl": resampler_impl})
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def padded_size(size, scale):
    """The smallest size >= `size` that the network takes: a multiple of size_multiple(scale),
    at least min_hr_size(scale). `size` is a Python int or an int32 scalar tensor."""
    multiple = size_multiple(scale)
    rounded = (size + multiple - 1) // multiple * multiple
    if isinstance(size, int):
        return max(rounded, min_hr_size(scale))
    return tf.maximum(rounded, min_hr_size(scale))


def reflect_indices(size, new_size):
    """int32 [new_size] indices into [0, size) that extend it by mirror reflection.

    The same as tf.pad(mode="REFLECT") at the end (the edge pixel is not repeated),
    continued back and forth when new_size - size >= size; size 1 repeats its pixel.
    """
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(tf.range(new_size), period)
    return tf.where(index < size, index, period - index)


def _dimension(images, axis):
    static = images.shape[axis]
    return static if static is not None else tf.shape(images)[axis]


def pad_hr(hr, scale):
    """hr [N, H, W, C] (any dtype) -> [N, Hp, Wp, C] extended at the bottom and right by
    mirror reflection to padded_size(H), padded_size(W); unchanged if those equal H, W."""
    height, width = _dimension(hr, 1), _dimension(hr, 2)
    new_height, new_width = padded_size(height, scale), padded_size(width, scale)
    # With static shapes (TFLite), a size that needs no padding costs no gather.
    if not (isinstance(height, int) and new_height == height):
        hr = tf.gather(hr, reflect_indices(height, new_height), axis=1)
    if not (isinstance(width, int) and new_width == width):
        hr = tf.gather(hr, reflect_indices(width, new_width), axis=2)
    return hr


def downscale_any_size(model, hr_uint8):
    """uint8 [N, H, W, 3], any H, W >= 1 -> uint8 [N, ceil(H/s), ceil(W/s), 3] (see module doc)."""
    scale = model.scale
    height, width = _dimension(hr_uint8, 1), _dimension(hr_uint8, 2)
    lr = model.downscale_uint8(pad_hr(hr_uint8, scale))
    return lr[:, : (height + scale - 1) // scale, : (width + scale - 1) // scale, :]


def _upscale_uint8_builtin(model, lr_uint8):
    """model.upscale_uint8 with the bicubic resize replaced by bicubic_upscale_builtin."""
    if model.upscaler_name != "bicubic":
        return model.upscale_uint8(lr_uint8)
    sr = bicubic_upscale_builtin(tf.cast(lr_uint8, tf.float32) / 255.0, model.scale)
    # The same rounding as CARModel.upscale_uint8.
    return tf.cast(tf.round(tf.clip_by_value(sr, 0.0, 1.0) * 255.0), tf.uint8)


def _png_signature(transform):
    """string [N] encoded images -> string [N] PNGs of transform(decoded uint8 [1, H, W, 3])."""

    def one(data):
        rgb = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.io.encode_png(transform(rgb[None])[0])

    def run(image_bytes):
        # Each image has its own size, so they go through the model one at a time.
        return tf.map_fn(one, image_bytes, fn_output_signature=tf.string)

    return run


def _metadata(model, resampler_impl):
    return {
        "car_tf_version": car_tf.__version__,
        "resampler_impl": resampler_impl,
        "requires_custom_op": CUSTOM_OP_NAME if resampler_impl == "custom" else None,
        "scale": model.scale,
        "model_config": model.config,
        "signatures": list(SIGNATURES),
        "padding": "bottom/right mirror reflection to a multiple of "
        f"{size_multiple(model.scale)} (at least {min_hr_size(model.scale)}), "
        "LR cropped to ceil(H/scale) x ceil(W/scale)",
    }


def export_saved_model(model, export_base, version=1, resampler_impl=DEFAULT_RESAMPLER_IMPL,
                       overwrite=False):
    """Writes `model` as a SavedModel to `<export_base>/<version>/` and returns that path.

    Args:
      model: a CARModel (any resampler_impl; the export uses `resampler_impl`).
      export_base: the model base path TF Serving watches.
      version: positive int, the version directory.
      resampler_impl: "composite" (built-in ops only) or "custom" (needs the op library
        wherever the SavedModel is loaded).
      overwrite: replace an existing version directory instead of refusing.

    The SavedModel is written to a temporary folder inside export_base and renamed
    into place, so a watching TF Serving never sees a half-written version.
    """
    import keras

    if resampler_impl not in ("composite", "custom"):
        raise ValueError(f"resampler_impl must be 'composite' or 'custom', got {resampler_impl!r}")
    if resampler_impl == "custom" and load_op_library() is None:
        raise RuntimeError(f"--resampler_impl=custom needs the op library: {op_library_error()}")
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    target = os.path.join(export_base, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pick another version or overwrite it")
    model = with_resampler_impl(model, resampler_impl)

    def image_spec(name):
        return tf.TensorSpec([None, None, None, 3], tf.uint8, name=name)

    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    archive = keras.export.ExportArchive()
    archive.track(model)
    # Keras also serves the first endpoint as serving_default.
    archive.add_endpoint(
        "downscale", lambda hr: {"lr": downscale_any_size(model, hr)}, [image_spec("hr")]
    )
    archive.add_endpoint("upscale", lambda lr: {"sr": model.upscale_uint8(lr)}, [image_spec("lr")])
    downscale_png = _png_signature(lambda hr: downscale_any_size(model, hr))
    upscale_png = _png_signature(model.upscale_uint8)
    archive.add_endpoint(
        "downscale_image_bytes",
        lambda image_bytes: {"lr_png_bytes": downscale_png(image_bytes)},
        [bytes_spec],
    )
    archive.add_endpoint(
        "upscale_image_bytes",
        lambda image_bytes: {"sr_png_bytes": upscale_png(image_bytes)},
        [bytes_spec],
    )

    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=export_base)
    try:
        archive.write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, os.path.dirname(METADATA_PATH)), exist_ok=True)
        with open(os.path.join(staging, METADATA_PATH), "w") as handle:
            json.dump(_metadata(model, resampler_impl), handle, indent=2)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return target


def saved_model_dir(path):
    """`path` if it holds saved_model.pb, else its highest numbered version subdirectory."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [name for name in os.listdir(path) if name.isdigit()] if os.path.isdir(path) else []
    for name in sorted(versions, key=int, reverse=True):
        candidate = os.path.join(path, name)
        if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"{path}: no saved_model.pb in it or in a numbered version folder")


def missing_op_error(error, path):
    """A MissingOpError explaining `error` if it is TF's "Op type not registered" error, else None."""
    message = str(error)
    if "Op type not registered" not in message:
        return None
    op = CUSTOM_OP_NAME if CUSTOM_OP_NAME in message else "a custom op"
    reason = op_library_error() or "the op library is loaded but does not register it"
    return MissingOpError(
        f"{path} uses {op}, which is not registered in this process ({reason}); "
        "`import car_tf` (with its op library built: `pip install -e .`) before loading, "
        "or export again with --resampler_impl=composite"
    )


def load_saved_model(path):
    """tf.saved_model.load for car_tf exports, after registering the custom op.

    `path` is a version directory or a model base (the highest version is loaded).
    Raises MissingOpError, with what to do, if the SavedModel needs the custom op
    and car_tf's op library can't provide it.
    """
    path = saved_model_dir(path)
    load_op_library()
    try:
        return tf.saved_model.load(path)
    except (RuntimeError, tf.errors.NotFoundError) as error:
        explained = missing_op_error(error, path)
        if explained is None:
            raise
        raise explained from error


def tflite_sizes(model, height, width):
    """((1, H, W, 3), (1, h, w, 3)): the downscaler's and the upscaler's TFLite input shapes."""
    scale = model.scale
    return (1, height, width, 3), (1, math.ceil(height / scale), math.ceil(width / scale), 3)


def _tflite_endpoints(model, height, width):
    """{"downscaler": (fn hr -> {"lr"}, spec), "upscaler": (fn lr -> {"sr"}, spec)}, uint8, static."""
    hr_shape, lr_shape = tflite_sizes(model, height, width)

    def downscaler(hr):
        return {"lr": downscale_any_size(model, hr)}

    def upscaler(lr):
        return {"sr": _upscale_uint8_builtin(model, lr)}

    return {
        "downscaler": (downscaler, tf.TensorSpec(hr_shape, tf.uint8, name="hr")),
        "upscaler": (upscaler, tf.TensorSpec(lr_shape, tf.uint8, name="lr")),
    }


def _convert(model, function, spec, quantization):
    """One endpoint of `model` -> TFLite flatbuffer bytes, built-in ops only.

    The converter goes through a SavedModel: converted straight from a concrete
    function, Keras 3 variables stay resource variables (VAR_HANDLE/READ_VARIABLE)
    that the LiteRT interpreter reads uninitialised, instead of becoming constants.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", function, [spec])
    with tempfile.TemporaryDirectory() as staging:
        archive.write_out(staging, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(staging)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def export_tflite(model, output_dir, height=512, width=512, quantization="float32"):
    """Writes the downscaler and the upscaler as `.tflite` files and returns their paths.

    Args:
      model: a CARModel; the export uses the composite resampler whatever it has.
      output_dir: folder for downscaler_<H>x<W>_<quantization>.tflite and
        upscaler_<h>x<w>_<quantization>.tflite (h, w = ceil(H/s), ceil(W/s)).
      height, width: the HR size the downscaler takes (any size >= 1; padded inside as
        in the SavedModel); the upscaler takes the LR size that comes out.
      quantization: "float32", "float16" (float16 weights) or "dynamic_range" (int8
        weights, float activations).

    Returns:
      {"downscaler": path, "upscaler": path}.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if height < 1 or width < 1:
        raise ValueError(f"TFLite input size must be at least 1x1, got {height}x{width}")
    model = with_resampler_impl(model, "composite")
    hr_shape, lr_shape = tflite_sizes(model, height, width)
    names = {
        "downscaler": f"downscaler_{hr_shape[1]}x{hr_shape[2]}_{quantization}.tflite",
        "upscaler": f"upscaler_{lr_shape[1]}x{lr_shape[2]}_{quantization}.tflite",
    }
    os.makedirs(output_dir, exist_ok=True)
    paths = {}
    for part, (function, spec) in _tflite_endpoints(model, height, width).items():
        flatbuffer = _convert(model, function, spec, quantization)
        paths[part] = os.path.join(output_dir, names[part])
        with open(paths[part], "wb") as handle:
            handle.write(flatbuffer)
    return paths


def _litert_interpreter(path, num_threads=None):
    # The LiteRT runtime is the `export` extra: tf.lite.Interpreter is deprecated.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(
            "running .tflite files needs LiteRT: pip install 'car_tf[export]' (ai-edge-litert)"
        ) from error
    interpreter = Interpreter(model_path=path, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(path, image, num_threads=None):
    """Runs a car_tf `.tflite` file on one uint8 array shaped as its input; returns its output."""
    interpreter = _litert_interpreter(path, num_threads)
    input_detail = interpreter.get_input_details()[0]
    expected = tuple(input_detail["shape"])
    if tuple(image.shape) != expected or image.dtype != np.uint8:
        raise ValueError(
            f"{path} takes uint8 {expected}, got {image.dtype} {tuple(image.shape)}; "
            "export again with --height/--width for another size"
        )
    interpreter.set_tensor(input_detail["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def benchmark_tflite(path, runs=10, warmup=2, num_threads=None, seed=0):
    """Times `runs` invocations of a `.tflite` file on random uint8 input, after `warmup` ones.

    Returns a dict: path, size_bytes, input_shape, output_shape, num_threads, runs,
    median_ms, mean_ms, min_ms.
    """
    interpreter = _litert_interpreter(path, num_threads)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    image = np.random.default_rng(seed).integers(
        0, 256, size=input_detail["shape"], dtype=np.uint8
    )
    interpreter.set_tensor(input_detail["index"], image)
    for _ in range(warmup):
        interpreter.invoke()
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "path": path,
        "size_bytes": os.path.getsize(path),
        "input_shape": [int(d) for d in input_detail["shape"]],
        "output_shape": [int(d) for d in output_detail["shape"]],
        "num_threads": num_threads,
        "runs": runs,
        "median_ms": float(np.median(times_ms)),
        "mean_ms": float(np.mean(times_ms)),
        "min_ms": float(np.min(times_ms)),
    }
