"""The adaptive resampler built from standard TensorFlow ops only.

This is the pure-TF twin of the custom op in custom_ops/: the same inputs, the
same outputs, the same edge rules (see custom_ops/cc/kernels/adaptive_resample.h).
It needs nothing but floor, gather, select and arithmetic, so it runs where the
op library can't load, serves as the oracle in tests, and exports to stock TF
Serving and to TFLite. Gradients come from TF's autodiff.

It sums the taps one kernel row at a time, so its extra memory is that of four
[N, h, w, k, C] gathers (about 1/k of gathering every tap at once): at 25 MP x4 and
k = 13 one row's gathers of a whole image still take ~1 GB, which is why the
exports also tile (car_tf.export.graph). It is slower and hungrier for memory than
the custom op. Inputs are checked by car_tf.ops.validation, as the op's are.

With local_fast_path=True (what the SavedModel export asks for), inputs that allow it
skip the gathers: for CAR's k = 3s + 1 at an integer scale s the unmoved taps sit on HR
pixels, and a tap that moves by less than one HR pixel along each axis only blends the
3 x 3 pixels around its unmoved one. The whole resample is then, per LR pixel, one
(k+2) x (k+2) weight window (each tap's kernel weight spread over its bilinear
neighbours) applied to a strided patch of the reflect-padded image: matrix products and
patches instead of 4k gathers, about 1.8x faster on a 1120 x 1120 x4 tile on the 2-core
CPU (0.58 s against 1.07 s), for ~5x the gather path's memory (traced, 300 x 300 LR
pixels at k = 13: 807 MiB above the inputs against 152 MiB; ~9 KB per LR pixel), which
the export's tiles bound. A run-time check on the offsets
picks it, and any other input takes the gather path, so the result is the same for
every input up to float rounding, gradients included (tests/test_composite.py). It
computes a tap's move as offset_unit * offset, where the gather path rounds the absolute
position first: at 1000 HR pixels that rounding is ~6e-5 pixels, so the two differ by
that much of a pixel step.
"""

import numpy as np
import tensorflow as tf

from car_tf.ops.validation import check_resample_inputs, kernel_size_of
from car_tf.shapes import dimension


def _reflect_index(index, length, pad):
    """tf.pad(mode="REFLECT") by `pad` followed by clamping to the padded edge."""
    index = tf.clip_by_value(index, -pad, length - 1 + pad)
    index = tf.abs(index)
    return tf.where(index > length - 1, 2 * (length - 1) - index, index)


def _safe_floor(floor_pos, length, pad):
    """Floor clamped into [-pad-1, length-1+pad] as int32; NaN maps to the low end.

    The bilinear fractions are taken from the unclamped position, so a
    non-finite position still gives NaN weights, hence a NaN output, while
    every gather index stays in range.
    """
    lowest = tf.cast(-pad - 1, floor_pos.dtype)
    highest = tf.cast(length - 1 + pad, floor_pos.dtype)
    clamped = tf.where(floor_pos >= lowest, tf.minimum(floor_pos, highest), lowest)
    return tf.cast(clamped, tf.int32)


def unmoved_tap_positions(kernel_size):
    """[k] float64 numpy: where unmoved tap j of a k-tap row sits, in HR pixels from the
    LR pixel's centre: j - k/2 with a real k/2 (eq. 2's m/2). The same for rows (i).

    For CAR's k = 3s + 1 these are half-integers, so unmoved taps land on HR pixel
    centres. The op (and adaptive_resample_composite below, in TF) place taps here.
    """
    k = int(kernel_size)
    return np.arange(k, dtype=np.float64) - k / 2.0


def _local_scale(kernel_size):
    """The integer scale s with kernel_size = 3s + 1 (CAR's k), or None."""
    if not isinstance(kernel_size, int) or kernel_size < 4 or (kernel_size - 1) % 3:
        return None
    return (kernel_size - 1) // 3


def _shift_matrix(kernel_size, dtype):
    """[3k, k+2] of 0 and 1: row (d, j) has its 1 in column j + d, where neighbour d - 1 of
    tap j lies in its (k+2)-wide window."""
    k = kernel_size
    matrix = np.zeros((3, k, k + 2))
    for d in range(3):
        matrix[d, np.arange(k), np.arange(k) + d] = 1.0
    return tf.constant(matrix.reshape(3 * k, k + 2), dtype)


def _neighbour_weights(moves):
    """moves e [..., 1, k] (HR pixels, |e| < 1) -> three [..., 1, k]: the bilinear weights of
    the pixels one before, at and one after each tap's unmoved one.

    e < 0 reads (before, at) and e >= 0 (at, after), as the gather path's floor does. At
    e = 0 the derivative is the gather path's too (-1 at, +1 after): tf.maximum sends a
    tie's gradient to its first argument, and "at" is 1 minus the other two, not 1 - |e|.
    """
    after = tf.maximum(moves, 0)
    # max(0, -e) in one pass (exact: e - e is 0), with its derivative (0 at the tie).
    before = after - moves
    return before, 1 - after - before, after


def _resample_local(image, kernels, moves_x, moves_y, scale):
    """The resample as a per-pixel local convolution (see the module docstring).

    image [N, H, W, C] with H = scale * h, W = scale * w; kernels [N, h, w, k*k] with
    k = 3 * scale + 1; moves_x, moves_y [N*h*w, k, 1, k]: each tap's move in HR pixels,
    all of magnitude < 1. Returns [N, h, w, C].
    """
    windows = weight_windows(kernels, moves_x, moves_y, scale)
    with tf.control_dependencies([windows]):  # the patches once the window's parts are freed
        return apply_windows(image, windows, tf.shape(kernels)[:3], scale)


def weight_windows(kernels, moves_x, moves_y, scale):
    """[N*h*w, k+2, k+2]: each LR pixel's weights over the (k+2) x (k+2) HR pixels around
    its unmoved taps, each tap's kernel weight spread over its bilinear neighbours.

    kernels [N, h, w, k*k], k = 3 * scale + 1; moves_x, moves_y [N*h*w, k, 1, k] in HR
    pixels, all of magnitude < 1 (_resample_local's arguments).
    """
    dtype = kernels.dtype
    k = 3 * scale + 1
    pixels = tf.reduce_prod(tf.shape(kernels)[:3])
    tap_weights = tf.reshape(kernels, [pixels, k, 1, k])
    rows = _neighbour_weights(moves_y)
    columns = tf.concat(_neighbour_weights(moves_x), axis=2)  # [pixels, k, 3, k]
    # window[p, q]: the weight of pixel (p, q) of the LR pixel's (k+2) x (k+2) window,
    # summed over the taps that blend it; kernel row i's neighbours d - 1 lie in window
    # row i + d, and the matrix product places each column neighbour.
    shift = _shift_matrix(k, dtype)
    window = tf.zeros([pixels, k + 2, k + 2], dtype)
    for d, row_weights in enumerate(rows):
        # One row neighbour's [pixels, k, 3, k] at a time: the graph would otherwise
        # compute all three at once, and hold them.
        with tf.control_dependencies([window]):
            spread = (tap_weights * row_weights) * columns
        placed = tf.reshape(tf.matmul(tf.reshape(spread, [pixels * k, 3 * k]), shift),
                            [pixels, k, k + 2])
        window = window + tf.pad(placed, [[0, 0], [d, 2 - d], [0, 0]])
    return window


def apply_windows(image, windows, lr_shape, scale):
    """[N, h, w, C]: each LR pixel's weight window (weight_windows) applied to its strided
    (k+2) x (k+2) patch of `image` [N, H, W, C], under the op's edge rule; lr_shape is
    [N, h, w] (a tensor)."""
    k = 3 * scale + 1
    batch, out_height, out_width = tf.unstack(lr_shape)
    pixels = batch * out_height * out_width
    # Window row p of LR row y is HR row y*scale - reach + p: the unmoved taps start at
    # y*scale - scale - 1 and reach one pixel further. The indices follow the op's edge
    # rule (reflect, then clamp), which also covers a reach beyond k // 2.
    reach = scale + 2
    pad = k // 2

    def edge_indices(out_size, in_size):
        return _reflect_index(tf.range((out_size - 1) * scale + k + 2) - reach, in_size, pad)

    padded = tf.gather(image, edge_indices(out_height, tf.shape(image)[1]), axis=1)
    padded = tf.gather(padded, edge_indices(out_width, tf.shape(image)[2]), axis=2)
    patches = tf.image.extract_patches(padded, [1, k + 2, k + 2, 1], [1, scale, scale, 1],
                                       [1, 1, 1, 1], "VALID")
    channels = tf.shape(image)[3]
    patches = tf.reshape(patches, [pixels, (k + 2) ** 2, channels])
    output = tf.matmul(tf.reshape(windows, [pixels, 1, (k + 2) ** 2]), patches)
    return tf.reshape(output, [batch, out_height, out_width, channels])


def adaptive_resample_composite(image, kernels, offsets_x, offsets_y, offset_unit,
                                local_fast_path=False):
    """Content adaptive resampling with built-in TF ops.

    Args:
      image: [N, H, W, C] float tensor.
      kernels: [N, h, w, k*k] tap weights; tap t = i*k + j, i the kernel row.
      offsets_x: [N, h, w, k*k] horizontal offsets, in units of offset_unit HR pixels.
      offsets_y: [N, h, w, k*k] vertical offsets, likewise.
      offset_unit: Python float, HR pixels per unit of offset.
      local_fast_path: take the gather-free path where it applies (float32 or float64,
        k = 3s + 1 known when traced, H = s*h, W = s*w, every |offset_unit * offset| < 1;
        see the module docstring). Its graph uses ExtractImagePatches, which TFLite's
        built-in ops lack, so the TFLite export leaves it off.

    Returns:
      [N, h, w, C] tensor of image's dtype.
    """
    image, kernels, offsets_x, offsets_y = check_resample_inputs(
        image, kernels, offsets_x, offsets_y, offset_unit)
    if local_fast_path:
        scale = _local_scale(kernel_size_of(dimension(kernels, 3)))
        if scale is not None and image.dtype in (tf.float32, tf.float64):
            return _resample_local_or_gather(image, kernels, offsets_x, offsets_y,
                                             offset_unit, scale)
    return _resample_gather(image, kernels, offsets_x, offsets_y, offset_unit)


def _resample_local_or_gather(image, kernels, offsets_x, offsets_y, offset_unit, scale):
    """_resample_local where its preconditions hold at run time, else the gather path."""
    k = 3 * scale + 1
    unit = tf.cast(offset_unit, image.dtype)
    in_size, out_size = tf.shape(image)[1:3], tf.shape(kernels)[1:3]
    # Every |unit * offset| < 1, tested as unit * max |offset| < 1: rounding a product is
    # monotonic, so the two agree, and this reads each offset once instead of three times.
    # A NaN makes the max NaN (TF's max propagates it; tested), which fails `< 1`, so
    # non-finite offsets take the gather path and give its NaNs.
    moves_below_one = [unit * tf.reduce_max(tf.abs(offsets)) < 1
                       for offsets in (offsets_x, offsets_y)]
    applies = tf.reduce_all(tf.stack([
        tf.reduce_all(tf.logical_and(tf.equal(in_size, scale * out_size), out_size > 0)),
        *moves_below_one]))

    def local():
        shape = [-1, k, 1, k]
        moves_x = unit * tf.reshape(offsets_x, shape)
        moves_y = unit * tf.reshape(offsets_y, shape)
        return _resample_local(image, kernels, moves_x, moves_y, scale)

    # The fallback loops over kernel rows instead of unrolling them: it is there only for
    # inputs the local path can't take, and unrolled it made the SavedModel's graph so large
    # that loading it and its first call took ~1 s longer (docs/BENCHMARKS.md).
    return tf.cond(applies, local,
                   lambda: _resample_gather(image, kernels, offsets_x, offsets_y, offset_unit,
                                            unroll_rows=False))


def _resample_gather(image, kernels, offsets_x, offsets_y, offset_unit, unroll_rows=True):
    """The general path: every tap's four bilinear corners gathered, one kernel row at a time.

    unroll_rows: with a kernel size known when traced, one copy of the row's ops per kernel
    row (built-in ops only, as TFLite needs); otherwise a while loop over the rows, as for a
    kernel size known only at run time.
    """
    dtype = image.dtype

    batch = tf.shape(image)[0]
    in_height = tf.shape(image)[1]
    in_width = tf.shape(image)[2]
    channels = dimension(image, 3)
    out_height = tf.shape(kernels)[1]
    out_width = tf.shape(kernels)[2]
    taps = dimension(kernels, 3)
    k = kernel_size_of(taps)
    pad = k // 2

    def centres(out_size, in_size):
        # Eq. 1 of the paper, generalised to non-integer ratios.
        ratio = tf.cast(in_size, dtype) / tf.cast(out_size, dtype)
        return (tf.cast(tf.range(out_size), dtype) + 0.5) * ratio - 0.5

    # Tap (i, j) sits at (i - k/2, j - k/2) (a real k/2, eq. 2's m/2) from the pixel
    # centre: computed as (2j - k) / 2, exactly the custom op's floats.
    half = tf.constant(0.5, dtype)
    tap_dx = tf.cast(2 * tf.range(k) - k, dtype) * half
    unit = tf.cast(offset_unit, dtype)
    centre_x = centres(out_width, in_width)[None, None, :, None] + tap_dx
    centre_y = centres(out_height, in_height)[None, :, None, None]

    flat_image = tf.reshape(image, [-1, channels])
    # int64: N * H * W passes 2^31 (a batch of 16 crops of 12 MP images) and int32 would wrap.
    width64 = tf.cast(in_width, tf.int64)
    image_base = (tf.range(tf.cast(batch, tf.int64)) * tf.cast(in_height, tf.int64)
                  * width64)[:, None, None, None]
    one = tf.constant(1, dtype)

    def kernel_row(i):
        """[N, h, w, C]: the sum over the k taps of kernel row i (a Python int or a scalar)."""
        def take(tensor):
            return tf.slice(tensor, [0, 0, 0, i * k], [-1, -1, -1, k])

        pos_x = centre_x + unit * take(offsets_x)
        pos_y = centre_y + tf.cast(2 * i - k, dtype) * half + unit * take(offsets_y)
        floor_x = tf.floor(pos_x)
        floor_y = tf.floor(pos_y)
        frac_x = (pos_x - floor_x)[..., None]
        frac_y = (pos_y - floor_y)[..., None]
        x0 = _safe_floor(floor_x, in_width, pad)
        y0 = _safe_floor(floor_y, in_height, pad)
        left = _reflect_index(x0, in_width, pad)
        right = _reflect_index(x0 + 1, in_width, pad)
        top = _reflect_index(y0, in_height, pad)
        bottom = _reflect_index(y0 + 1, in_height, pad)

        def corner(rows, cols):
            return tf.gather(flat_image, image_base + tf.cast(rows, tf.int64) * width64
                             + tf.cast(cols, tf.int64))

        sampled = (
            (one - frac_y) * ((one - frac_x) * corner(top, left) + frac_x * corner(top, right))
            + frac_y * ((one - frac_x) * corner(bottom, left) + frac_x * corner(bottom, right))
        )
        return tf.reduce_sum(take(kernels)[..., None] * sampled, axis=3)

    if isinstance(k, int) and unroll_rows:
        # Unrolled: built-in ops only, for TFLite; rows are freed as they are summed.
        output = kernel_row(0)
        for i in range(1, k):
            output = output + kernel_row(i)
        return output
    # k known only at run time (a signature with every dimension open), or not unrolled.
    zeros = tf.zeros(tf.stack([batch, out_height, out_width, channels]), dtype)
    _, output = tf.while_loop(lambda i, total: i < k,
                              lambda i, total: (i + 1, total + kernel_row(i)),
                              (tf.constant(0), zeros), parallel_iterations=1)
    return output
