"""A CAR model as `.tflite` files for LiteRT: a downscaler and an upscaler.

Fixed shapes (batch 1, HR size given at export), built-in ops only, in float32, float16 or
with dynamic-range quantised weights. TFLite has no bicubic resize, so a bicubic upscaler
is rebuilt from gathers (`car_tf.models.bicubic.bicubic_upscale_builtin`), equal to
tf.image.resize to float round-off. The composite resampler is always used.
"""

import math
import os
import tempfile

import tensorflow as tf

from car_tf.export.graph import downscale_any_size, with_resampler_impl
from car_tf.models.bicubic import bicubic_upscale_builtin


QUANTIZATIONS = ("float32", "float16", "dynamic_range")


def tflite_sizes(model, height, width):
    """((1, H, W, 3), (1, h, w, 3)): the downscaler's and the upscaler's TFLite input shapes."""
    scale = model.scale
    return (1, height, width, 3), (1, math.ceil(height / scale), math.ceil(width / scale), 3)


def _upscale_uint8_builtin(model, lr_uint8):
    """model.upscale_uint8 with the bicubic resize replaced by bicubic_upscale_builtin."""
    if model.upscaler_name != "bicubic":
        return model.upscale_uint8(lr_uint8)
    sr = bicubic_upscale_builtin(tf.cast(lr_uint8, tf.float32) / 255.0, model.scale)
    # The same rounding as CARModel.upscale_uint8.
    return tf.cast(tf.round(tf.clip_by_value(sr, 0.0, 1.0) * 255.0), tf.uint8)


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


def export_tflite(model, out_dir, height=512, width=512, quantization="float32"):
    """Writes the downscaler and the upscaler as `.tflite` files and returns their paths.

    Args:
      model: a CARModel; the export uses the composite resampler whatever it has.
      out_dir: folder for downscaler_<H>x<W>_<quantization>.tflite and
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
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for part, (function, spec) in _tflite_endpoints(model, height, width).items():
        flatbuffer = _convert(model, function, spec, quantization)
        paths[part] = os.path.join(out_dir, names[part])
        with open(paths[part], "wb") as handle:
            handle.write(flatbuffer)
    return paths
