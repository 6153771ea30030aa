"""A CAR model as a SavedModel for TF Serving, and loading one back.

Written to `<export_base>/<version>/` as TF Serving expects. Signatures, all with a
dynamic batch N and dynamic H and W:
  downscale              hr uint8 [N, H, W, 3] -> lr uint8 [N, ceil(H/s), ceil(W/s), 3]
  serving_default        the same as downscale
  upscale                lr uint8 [N, h, w, 3] -> sr uint8 [N, h*s, w*s, 3]
  downscale_image_bytes  image_bytes string [N] (PNG/JPEG/BMP/GIF) -> lr_png_bytes string [N]
  upscale_image_bytes    image_bytes string [N] -> sr_png_bytes string [N]
The string signatures exist for TF Serving's REST API, which carries binary strings as
{"b64": ...}; their output names end in `_bytes`, so TF Serving base64-encodes them too.
Any HR size is accepted (car_tf.export.graph); the downscale runs in tiles of `tile` HR
pixels inside the graph, so its memory does not grow with the image.

The default resampler implementation is "composite" (built-in TF ops only), loadable by
stock TensorFlow and TF Serving. "custom" keeps the compiled AdaptiveResample op: such a
SavedModel loads only in a process that has car_tf's op library (`import car_tf` loads
it), see `load_saved_model`.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

import car_tf
from car_tf.export.graph import (EXPORT_TILE, check_image_input, downscale_any_size,
                                 with_resampler_impl)
from car_tf.models.resampler_net import min_hr_size, size_multiple
from car_tf.ops import load_op_library, op_library_error


DEFAULT_RESAMPLER_IMPL = "composite"


SIGNATURES = (
    "downscale",
    "serving_default",
    "upscale",
    "downscale_image_bytes",
    "upscale_image_bytes",
)


METADATA_PATH = os.path.join("assets.extra", "car_tf_export.json")


CUSTOM_OP_NAME = "AdaptiveResample"


class MissingOpError(RuntimeError):
    """A SavedModel needs car_tf's AdaptiveResample op, which this process hasn't registered."""


def _png_signature(transform):
    """string [N] encoded images -> string [N] PNGs of transform(decoded uint8 [1, H, W, 3])."""

    def one(data):
        rgb = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.io.encode_png(transform(rgb[None])[0])

    def run(image_bytes):
        # Each image has its own size, so they go through the model one at a time.
        return tf.map_fn(one, image_bytes, fn_output_signature=tf.string)

    return run


def _metadata(model, resampler_impl, tile, precision):
    return {
        "downscale_tile": tile,
        "precision": precision,
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
                       overwrite=False, tile=EXPORT_TILE, precision="float32"):
    """Writes `model` as a SavedModel to `<export_base>/<version>/` and returns that path.

    Args:
      model: a CARModel (any resampler_impl; the export uses `resampler_impl`).
      export_base: the model base path TF Serving watches.
      version: positive int, the version directory.
      resampler_impl: "composite" (built-in ops only) or "custom" (needs the op library
        wherever the SavedModel is loaded).
      overwrite: replace an existing version directory instead of refusing.
      tile: HR pixels per tile core of the downscale signatures (0: the whole image at once);
        memory then follows the tile, not the image (car_tf.export.graph).
      precision: how the graph's ResamplerNet runs, as `car downscale --precision`:
        "float32", or "mixed_bfloat16" (bfloat16 convolutions but the kernel head's last one),
        about half the network's time on a CPU with AVX512-BF16 or AMX and slower on one
        without; LR within a level of float32's. A fixed-kernel model has no ResamplerNet.

    The SavedModel is written to a temporary folder inside export_base and renamed
    into place, so a watching TF Serving never sees a half-written version.
    """
    import keras

    if resampler_impl not in ("composite", "custom"):
        raise ValueError(f"resampler_impl must be 'composite' or 'custom', got {resampler_impl!r}")
    if resampler_impl == "custom" and load_op_library() is None:
        raise RuntimeError(f"--resampler_impl=custom needs the op library: {op_library_error()}")
    if tile < 0:
        raise ValueError(f"tile must be >= 0 (0 = the whole image at once), got {tile}")
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    target = os.path.join(export_base, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; pick another version or overwrite it")
    # The composite's gather-free path: about 1.8x faster resampling where the offsets allow.
    # A given precision also rebuilds the model, so that a dtype policy a Runner set on
    # `model` does not leak into the export.
    model = with_resampler_impl(model, resampler_impl, local_fast_path=True, precision=precision)

    def image_spec(name):
        return tf.TensorSpec([None, None, None, 3], tf.uint8, name=name)

    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    archive = keras.export.ExportArchive()
    archive.track(model)
    # Keras also serves the first endpoint as serving_default.
    def downscale(hr):
        return downscale_any_size(model, hr, tile)

    def upscale(lr):
        return model.upscale_uint8(check_image_input(lr, "lr"))

    archive.add_endpoint("downscale", lambda hr: {"lr": downscale(hr)}, [image_spec("hr")])
    archive.add_endpoint("upscale", lambda lr: {"sr": upscale(lr)}, [image_spec("lr")])
    downscale_png = _png_signature(downscale)
    upscale_png = _png_signature(upscale)
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
            json.dump(_metadata(model, resampler_impl, tile, precision), handle, indent=2)
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
