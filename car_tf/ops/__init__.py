"""TensorFlow ops of car_tf."""

from car_tf.ops.adaptive_resample import (
    IMPLEMENTATIONS,
    adaptive_resample,
    custom_op_available,
    load_op_library,
    op_library_error,
    resolve_impl,
)
from car_tf.ops.composite import adaptive_resample_composite, unmoved_tap_positions

__all__ = [
    "IMPLEMENTATIONS",
    "adaptive_resample",
    "adaptive_resample_composite",
    "custom_op_available",
    "load_op_library",
    "op_library_error",
    "resolve_impl",
    "unmoved_tap_positions",
]
