"""What both exports put in their graphs: the model with the resampler implementation they
write, and the model at any input size.

Any HR size of at least 1x1 is accepted: the graph extends the image at the bottom and
right by mirror reflection to the size the network takes (car_tf.padding), downscales,
and crops the LR image to ceil(H/s) x ceil(W/s): the LR pixels that cover at least one
real HR pixel.
"""

import tensorflow as tf

from car_tf.models import build_car_model
from car_tf.ops import IMPLEMENTATIONS
from car_tf.padding import lr_size, padded_size, reflect_indices
from car_tf.shapes import dimension


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
    if resampler_impl not in IMPLEMENTATIONS:
        raise ValueError(f"resampler_impl must be one of {IMPLEMENTATIONS}, got {resampler_impl!r}")
    check_car_model(model)
    # A fixed-kernel model has no resampler, hence nothing to choose.
    if model.config.get("resampler_impl", resampler_impl) == resampler_impl:
        return model
    rebuilt = build_car_model({**model.config, "resampler_impl": resampler_impl})
    rebuilt.set_weights(model.get_weights())
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


def downscale_any_size(model, hr_uint8):
    """uint8 [N, H, W, 3], any H, W >= 1 -> uint8 [N, ceil(H/s), ceil(W/s), 3] (see the module docstring)."""
    scale = model.scale
    height, width = dimension(hr_uint8, 1), dimension(hr_uint8, 2)
    lr = model.downscale_uint8(pad_hr(hr_uint8, scale))
    return lr[:, : lr_size(height, scale), : lr_size(width, scale), :]
