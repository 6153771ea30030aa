"""What both exports put in their graphs: the model with the resampler implementation they
write, and the model at any input size.

Any HR size of at least 1x1 is accepted: the graph extends the image at the bottom and
right by mirror reflection to the size the network takes (car_tf.padding), downscales,
and crops the LR image to ceil(H/s) x ceil(W/s): the LR pixels that cover at least one
real HR pixel. Other input shapes fail with a message naming the expected one.

With a tile, the downscale runs tile by tile inside the graph, as the CLI does
(car_tf.inference): cores of `tile` HR pixels with a halo of the model's reach, so that
memory follows the tile and not the image, and the result equals the untiled one up to
float rounding. The resampler runs on each core only (CARModel.downscale_region_uint8);
the ResamplerNet needs the halo, the resampler's taps much less of it.
"""

import tensorflow as tf

from car_tf.choices import PRECISIONS
from car_tf.models import build_car_model, size_multiple
from car_tf.ops import IMPLEMENTATIONS
from car_tf.ops.validation import shape_text
from car_tf.padding import lr_size, padded_size, reflect_indices, round_up
from car_tf.shapes import dimension

# Tile side in HR pixels of the SavedModel's downscale: the CLI's default (car_tf.cli),
# which bounds a lite x4 downscale near 1 GB whatever the image size.
EXPORT_TILE = 1024

# How an exported graph's ResamplerNet runs: car_tf.choices.PRECISIONS without "auto",
# since an export runs on machines other than the one that writes it.
EXPORT_PRECISIONS = tuple(name for name in PRECISIONS if name != "auto")


def check_car_model(model):
    """Raises ValueError unless `model` has CARModel's downscale/upscale interface."""
    for method in ("downscale_uint8", "upscale_uint8", "downscale"):
        if not hasattr(model, method):
            raise ValueError(
                f"{type(model).__name__} is not a CAR model (no {method}); export needs a CARModel"
            )


def with_resampler_impl(model, resampler_impl, local_fast_path=False, precision=None):
    """The same CAR model (same weights) using `resampler_impl`; `model` itself if it already does.

    A `.keras` file loads with the implementation it was saved with, so export
    rebuilds the model from its config to pick the one it writes. local_fast_path: the
    composite resampler may take its gather-free path (car_tf.ops.composite; the
    SavedModel export asks for it, TFLite can't run it). precision: None keeps the
    ResamplerNet's dtype policies as they are; "float32" or "mixed_bfloat16" rebuilds and
    sets them (ResamplerNet.set_body_dtype_policy). Both are set on a rebuilt copy, never
    on `model` itself.
    """
    if resampler_impl not in IMPLEMENTATIONS:
        raise ValueError(f"resampler_impl must be one of {IMPLEMENTATIONS}, got {resampler_impl!r}")
    check_car_model(model)
    # A fixed-kernel model has no resampler, hence nothing to choose.
    if "resampler_impl" not in model.config:
        return model
    if precision is not None and precision not in EXPORT_PRECISIONS:
        raise ValueError(f"precision must be one of {EXPORT_PRECISIONS}, got {precision!r}")
    if (model.config["resampler_impl"] == resampler_impl
            and model.downscaler.local_fast_path == local_fast_path and precision is None):
        return model
    rebuilt = build_car_model({**model.config, "resampler_impl": resampler_impl})
    rebuilt.set_weights(model.get_weights())
    rebuilt.downscaler.local_fast_path = local_fast_path
    if precision is not None:
        rebuilt.resampler.set_body_dtype_policy(precision)
    return rebuilt


def pad_hr(hr, scale):
    """hr [N, H, W, C] (any dtype) -> [N, Hp, Wp, C] extended at the bottom and right by
    mirror reflection to padded_size(H), padded_size(W); unchanged if those equal H, W."""
    height, width = dimension(hr, 1), dimension(hr, 2)
    new_height, new_width = padded_size(height, scale), padded_size(width, scale)
    # With static shapes (TFLite), a size that needs no padding costs no gather.
    if not (isinstance(height, int) and new_height == height):
        hr = tf.gather(hr, reflect_indices(0, new_height, height), axis=1)
    if not (isinstance(width, int) and new_width == width):
        hr = tf.gather(hr, reflect_indices(0, new_width, width), axis=2)
    return hr


def check_image_input(image, name):
    """`image` uint8 [N, H, W, 3] behind a run-time check that H, W >= 1, whose message names
    the expected shape (an empty image otherwise fails deep inside with a gather's index error)."""
    height, width = dimension(image, 1), dimension(image, 2)
    if isinstance(height, int) and isinstance(width, int):
        if min(height, width) < 1:
            raise ValueError(f"{name} must be uint8 [N, H, W, 3] with H, W >= 1, got "
                             f"{shape_text(image)}")
        return image
    message = tf.strings.join([f"{name} must be uint8 [N, H, W, 3] with H, W >= 1, got ",
                               shape_text(image)])
    ok = tf.logical_and(tf.shape(image)[1] >= 1, tf.shape(image)[2] >= 1)
    with tf.control_dependencies([tf.debugging.Assert(ok, [message])]):
        return tf.identity(image)


def _downscale_tiled(model, hr, tile):
    """uint8 [N, H, W, 3] (H, W multiples of size_multiple) -> model.downscale_uint8(hr), computed
    tile by tile in while loops, one tile at a time. Spans as car_tf.inference.plan_tiles."""
    scale = model.scale
    multiple = size_multiple(scale)
    tile = round_up(tile, multiple)
    halo = round_up(model.downscale_reach(), multiple)
    height, width = tf.shape(hr)[1], tf.shape(hr)[2]

    def span(index, size):
        start = index * tile
        end = tf.minimum(start + tile, size)
        return start, end, tf.maximum(0, start - halo), tf.minimum(size, end + halo)

    def count(size):
        return (size + tile - 1) // tile

    def pieces(total, piece):
        """TensorArray of piece(i) for i < total, run one after the other."""
        def body(index, array):
            return index + 1, array.write(index, piece(index))

        empty = tf.TensorArray(tf.uint8, size=total, infer_shape=False)
        return tf.while_loop(lambda index, _: index < total, body, (tf.constant(0), empty),
                             parallel_iterations=1)[1]

    def tile_row(row):
        y0, y1, wy0, wy1 = span(row, height)

        def core(column):
            x0, x1, wx0, wx1 = span(column, width)
            lr = model.downscale_region_uint8(
                hr[:, wy0:wy1, wx0:wx1], ((y0 - wy0) // scale, (y1 - wy0) // scale,
                                          (x0 - wx0) // scale, (x1 - wx0) // scale))
            return tf.transpose(lr, [2, 0, 1, 3])  # columns first, to concatenate

        strip = tf.transpose(pieces(count(width), core).concat(), [1, 2, 0, 3])
        return tf.transpose(strip, [1, 0, 2, 3])  # rows first

    return tf.transpose(pieces(count(height), tile_row).concat(), [1, 0, 2, 3])


def downscale_any_size(model, hr_uint8, tile=0):
    """uint8 [N, H, W, 3], any H, W >= 1 -> uint8 [N, ceil(H/s), ceil(W/s), 3] (see the module
    docstring). tile: HR pixels per tile core, 0 for the whole image at once."""
    scale = model.scale
    hr_uint8 = check_image_input(hr_uint8, "hr")
    height, width = dimension(hr_uint8, 1), dimension(hr_uint8, 2)
    padded = pad_hr(hr_uint8, scale)
    lr = _downscale_tiled(model, padded, tile) if tile else model.downscale_uint8(padded)
    return lr[:, : lr_size(height, scale), : lr_size(width, scale), :]
