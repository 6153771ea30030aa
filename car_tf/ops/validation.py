"""The one input contract of the adaptive resampler, for both implementations.

`check_resample_inputs` runs the checks of the op's ValidateResampleInputs
(custom_ops/cc/kernels/adaptive_resample_op.cc), in its order and with its
messages, before either implementation runs. What the static shapes decide is
decided while tracing; what they leave open becomes a run-time assertion.

Error classes, the same for "custom" and "composite":
  - run eagerly, a bad input raises tf.errors.InvalidArgumentError, as the op does;
  - while tracing a tf.function, a bad static shape raises ValueError, as the op's
    shape function does; a bad run-time shape raises InvalidArgumentError when run.
"""

import math

import numpy as np
import tensorflow as tf


def shape_text(tensor):
    """The shape as the op writes it ("[2,4,4,9]"): a str when static, else a string tensor."""
    if tensor.shape.is_fully_defined():
        return "[" + ",".join(str(size) for size in tensor.shape) + "]"
    return tf.strings.join(["[", tf.strings.reduce_join(tf.strings.as_string(tf.shape(tensor)),
                                                         separator=","), "]"])


def _size(tensor, axis):
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]


def _text(value):
    if isinstance(value, tf.Tensor):
        return value if value.dtype == tf.string else tf.strings.as_string(value)
    return value if isinstance(value, str) else str(value)


class _Checks:
    """Collects the run-time assertions; raises at once for what is known statically."""

    def __init__(self):
        self.assertions = []

    def require(self, ok, *parts):
        """`ok` a Python bool or a bool tensor; `parts` the message, str or string tensors."""
        if isinstance(ok, (bool, np.bool_)):
            if not ok:
                parts = [_text(part) for part in parts]
                if any(isinstance(part, tf.Tensor) for part in parts):
                    # A static verdict with a partly unknown shape in its message.
                    parts = ["?" if isinstance(part, tf.Tensor) else part for part in parts]
                message = "".join(parts)
                if tf.executing_eagerly():
                    raise tf.errors.InvalidArgumentError(None, None, message)
                raise ValueError(message)
            return
        message = tf.strings.join([_text(part) for part in parts])
        self.assertions.append(tf.debugging.Assert(ok, [message]))


def _any(*conditions):
    """Logical or of Python bools and bool tensors, staying a Python bool when it can."""
    if any(isinstance(c, (bool, np.bool_)) and c for c in conditions):
        return True
    dynamic = [c for c in conditions if not isinstance(c, (bool, np.bool_))]
    if not dynamic:
        return False
    return tf.reduce_any(tf.stack(dynamic))


def _all(*conditions):
    """Logical and of Python bools and bool tensors, staying a Python bool when it can."""
    static = [c for c in conditions if isinstance(c, (bool, np.bool_))]
    if not all(static):
        return False
    dynamic = [c for c in conditions if not isinstance(c, (bool, np.bool_))]
    if not dynamic:
        return True
    return tf.reduce_all(tf.stack(dynamic))


def _equal(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return tf.equal(a, b)


def _greater(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a > b
    return tf.greater(a, b)


def _same_shape(tensor, reference):
    if tensor.shape.rank != reference.shape.rank:
        return False
    return _all(*(_equal(_size(tensor, axis), _size(reference, axis))
                  for axis in range(reference.shape.rank)))


def kernel_size_of(taps):
    """k from a tap count k*k (a Python int, or an int32 scalar tensor when unknown)."""
    if isinstance(taps, int):
        return int(round(math.sqrt(taps)))
    return tf.cast(tf.round(tf.sqrt(tf.cast(taps, tf.float64))), tf.int32)


def check_resample_inputs(image, kernels, offsets_x, offsets_y, offset_unit):
    """Validates the resampler's inputs as the op does (see the module docstring).

    Args:
      image: [N, H, W, C] float tensor or array.
      kernels, offsets_x, offsets_y: [N, h, w, k*k]; converted to image's dtype.
      offset_unit: Python float; checked as the op's float32 attribute.

    Returns:
      (image, kernels, offsets_x, offsets_y) as tensors; `image` behind the run-time
      assertions, if any were needed.
    """
    image = tf.convert_to_tensor(image)
    kernels = tf.convert_to_tensor(kernels, dtype=image.dtype)
    offsets_x = tf.convert_to_tensor(offsets_x, dtype=image.dtype)
    offsets_y = tf.convert_to_tensor(offsets_y, dtype=image.dtype)
    for name, tensor in (("image", image), ("kernels", kernels)):
        if tensor.shape.rank is None:
            raise ValueError(f"{name} must have a known rank (4) when traced")
    checks = _Checks()
    checks.require(image.dtype in (tf.float16, tf.float32, tf.float64),
                   "image must be float16, float32 or float64, got ", image.dtype.name)
    checks.require(image.shape.rank == 4, "image must be rank 4 [N, H, W, C], got shape ",
                   shape_text(image))
    checks.require(kernels.shape.rank == 4, "kernels must be rank 4 [N, h, w, k*k], got shape ",
                   shape_text(kernels))
    for name, offsets in (("offsets_x", offsets_x), ("offsets_y", offsets_y)):
        checks.require(_same_shape(offsets, kernels), f"{name} must have the shape of kernels ",
                       shape_text(kernels), ", got ", shape_text(offsets))
    batch, kernels_batch = _size(image, 0), _size(kernels, 0)
    checks.require(_equal(kernels_batch, batch), "kernels batch size ", _text(kernels_batch),
                   " differs from image batch size ", _text(batch))
    taps = _size(kernels, 3)
    k = kernel_size_of(taps)
    if isinstance(taps, int):
        square = taps >= 1 and k * k == taps
    else:
        square = tf.logical_and(taps >= 1, k * k == taps)
    checks.require(square, "the last dimension of kernels must be a positive perfect square k*k, "
                   "got ", _text(taps))
    with np.errstate(over="ignore"):  # 1e39 becomes inf in the op's float32 attribute too
        unit = np.float32(offset_unit)
    checks.require(bool(np.isfinite(unit)), "offset_unit must be finite, got ",
                   str(unit).lower())
    # REFLECT padding by k/2 mirrors around the edge pixel, which needs at least k/2 + 1
    # pixels along each axis; an empty result reads nothing.
    pad = k // 2
    out_pixels = [batch, _size(kernels, 1), _size(kernels, 2)]
    if all(isinstance(size, int) for size in out_pixels + [_size(image, 3)]):
        empty = math.prod(out_pixels) == 0 or _size(image, 3) == 0
    else:
        empty = tf.logical_or(tf.reduce_prod(tf.stack([tf.cast(s, tf.int64) for s in out_pixels]))
                              == 0, tf.equal(_size(image, 3), 0))
    fits = _all(_greater(_size(image, 1), pad), _greater(_size(image, 2), pad))
    checks.require(_any(empty, fits), "image height and width must exceed k/2 = ", _text(pad),
                   " for reflection padding, got ", shape_text(image), " with k = ", _text(k))
    if checks.assertions:
        with tf.control_dependencies(checks.assertions):
            image = tf.identity(image)
    return image, kernels, offsets_x, offsets_y
