"""Python entry point of the adaptive resampler: loads the op library once,
registers its gradient, and dispatches between the custom op and its pure-TF
twin (car_tf.ops.composite)."""

import glob
import logging
import os
import threading

import tensorflow as tf
from tensorflow.python.framework import kernels as registered_kernels

from car_tf.choices import IMPLEMENTATIONS
from car_tf.ops.composite import adaptive_resample_composite
from car_tf.ops.validation import check_resample_inputs

_LIBRARY_GLOB = os.path.join(os.path.dirname(__file__), "_adaptive_resample_ops*.so")
_lock = threading.Lock()
_library = None
_load_error = None
_warned_fallback = False


def load_op_library():
    """Loads the compiled op library once and returns it, or None if it can't load.

    The reason for a failure is kept for `op_library_error()`.
    """
    global _library, _load_error
    with _lock:
        if _library is not None or _load_error is not None:
            return _library
        candidates = sorted(glob.glob(_LIBRARY_GLOB))
        if not candidates:
            _load_error = (
                f"no compiled op library matches {_LIBRARY_GLOB}; "
                "build it with `pip install -e .` (or `make build`)"
            )
            return None
        try:
            _library = tf.load_op_library(candidates[0])
        except (tf.errors.NotFoundError, OSError) as error:
            _load_error = f"{candidates[0]} failed to load: {error}"
        return _library


def op_library_error():
    """Why the op library could not be loaded, or None."""
    load_op_library()
    return _load_error


def custom_op_available():
    return load_op_library() is not None


@tf.RegisterGradient("AdaptiveResample")
def _adaptive_resample_grad(op, grad_output):
    library = load_op_library()
    return library.adaptive_resample_grad(
        op.inputs[0],
        op.inputs[1],
        op.inputs[2],
        op.inputs[3],
        grad_output,
        offset_unit=op.get_attr("offset_unit"),
    )


# Second-order gradients would need the derivative of the scatter and of the
# bilinear weights; nothing in CAR needs them.
tf.no_gradient("AdaptiveResampleGrad")


def _has_gpu_half_kernel():
    """Whether the op library registers a float16 kernel on GPU and a GPU is visible: the op
    has no float16 CPU kernel (TF would say "Could not find device for node")."""
    if not tf.config.list_logical_devices("GPU"):
        return False
    half = tf.float16.as_datatype_enum
    return any(
        kernel.device_type == "GPU"
        and any(half in constraint.allowed_values.list.type for constraint in kernel.constraint)
        for kernel in registered_kernels.get_registered_kernels_for_op("AdaptiveResample").kernel
    )


def resolve_impl(impl):
    """Maps "auto" to "custom" or "composite"; checks the name."""
    global _warned_fallback
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "composite":
        return impl
    if custom_op_available():
        return "custom"
    if impl == "custom":
        raise RuntimeError(f"impl='custom' requested but the op library is unavailable: {_load_error}")
    if not _warned_fallback:
        _warned_fallback = True
        logging.warning(
            "car_tf: using the pure-TF adaptive resampler (slower, more memory) because %s",
            _load_error,
        )
    return "composite"


def adaptive_resample(image, kernels, offsets_x, offsets_y, offset_unit, impl="auto",
                      local_fast_path=False):
    """Content adaptive resampling (CAR, Sun & Chen 2020, eqs. 1-3).

    out[n,y,x,c] = sum_t kernels[n,y,x,t] * bilinear(image[n,:,:,c], py, px), where
    tap t = i*k + j and
      px = (x + 0.5) * W/w - 0.5 + (j - k/2) + offset_unit * offsets_x[n,y,x,t]
      py = (y + 0.5) * H/h - 0.5 + (i - k/2) + offset_unit * offsets_y[n,y,x,t]
    with k/2 a real division, as eq. 2's m/2: for CAR's k = 3s + 1 the unmoved taps
    land on HR pixel centres (px = x*s - s - 1 + j), one pixel each. Samples outside the image read it as if padded by REFLECT by k//2 and then
    clamped to that padded edge.

    Args:
      image: [N, H, W, C] float16, float32 or float64. The custom op computes float16
        in float16 on GPU, and through float32 where it has no float16 kernel (CPU).
      kernels: [N, h, w, k*k], same dtype.
      offsets_x, offsets_y: [N, h, w, k*k], same dtype.
      offset_unit: Python float, HR pixels per unit of offset (the scale, in CAR).
      impl: "custom" (compiled op), "composite" (built-in ops only) or "auto"
        (custom when the library loads, otherwise composite with one warning).
      local_fast_path: let the composite implementation take its gather-free path where
        it applies (car_tf.ops.composite); the custom op is fast without it.

    Returns:
      [N, h, w, C] tensor of image's dtype.

    Raises:
      Both implementations check their inputs alike (car_tf.ops.validation): eagerly
      tf.errors.InvalidArgumentError, at trace time ValueError, with the op's messages.
    """
    offset_unit = float(offset_unit)
    if resolve_impl(impl) == "composite":
        return adaptive_resample_composite(image, kernels, offsets_x, offsets_y, offset_unit,
                                           local_fast_path=local_fast_path)
    inputs = check_resample_inputs(image, kernels, offsets_x, offsets_y, offset_unit)
    dtype = inputs[0].dtype
    if dtype == tf.float16 and not _has_gpu_half_kernel():
        inputs = [tf.cast(tensor, tf.float32) for tensor in inputs]
    output = load_op_library().adaptive_resample(*inputs, offset_unit=offset_unit)
    return tf.cast(output, dtype)
