"""Whole images through a CAR model: any size, in tiles, with bounded memory.

The networks want HR sides that are multiples of size_multiple(scale)
(lcm(8, scale)). An image of any size is therefore reflection-padded at its
bottom and right edges to such a multiple; the LR result is then cropped to
ceil(H / scale) x ceil(W / scale). When H or W is not a multiple of the scale,
the last LR row/column covers a few reflected HR pixels, and upscaling that LR
image gives up to scale - 1 pixels more than the original (car roundtrip
crops them off; car upscale can't know the original size and keeps them).

Tiling. The padded image is cut into cores of `tile` pixels (a multiple of the
size multiple, so every space-to-depth block falls the same way in a tile as
in the whole image); each core is run with a halo of context of at least the
model's receptive field on every side where the image continues. Each output
pixel then sees exactly the inputs it sees in the untiled run (at the image
border the tile's edge *is* the image edge, so the padding the layers apply is
the same), and the tiled result equals the untiled one up to float rounding
(at most one 8-bit level). Each network states its own receptive field
(CARModel.downscale_reach / upscale_reach, see car_tf.models.receptive_field).

Memory: each tile is read from the source array through reflected indices (no
padded copy of the image is made), converted to float and run; its core is
written into a preallocated uint8 output. Peak memory is then the source and
output uint8 arrays, which scale with the image, plus one tile's activations,
which scale with the tile size.

Precision (car_tf.choices.PRECISIONS). Nearly all of a CAR downscale's time is the
ResamplerNet's convolutions. "mixed_bfloat16" runs them in bfloat16, except the kernel
head's last one (ResamplerNet.set_body_dtype_policy); on a CPU with bfloat16 instructions
that halves the network's CPU time and moves LR pixels by at most one level. XLA
(jit_compile) was tried for the network and was slower on CPU than TensorFlow's oneDNN
convolutions (docs/BENCHMARKS.md).
"""

import dataclasses
from fractions import Fraction

import numpy as np
import tensorflow as tf

from car_tf.choices import PRECISIONS
from car_tf.models import size_multiple
from car_tf.models.bicubic import CUBIC_REACH
from car_tf.padding import lr_size, padded_size, reflect_indices, round_up


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile along both axes, in input pixels: the core it produces and the window it reads."""

    core: tuple  # (y0, y1, x0, x1)
    window: tuple  # (y0, y1, x0, x1), contains core


def _spans(size, tile, halo):
    """[(core_start, core_end, window_start, window_end)] covering [0, size)."""
    spans = []
    for start in range(0, size, tile):
        end = min(start + tile, size)
        spans.append((start, end, max(0, start - halo), min(size, end + halo)))
    return spans


def plan_tiles(height, width, tile, halo, align=1):
    """Tiles covering a height x width input.

    Args:
      tile: core side in pixels, rounded up to a multiple of `align`;
        0 or >= the image side means one tile along that axis.
      halo: context pixels each side, rounded up to a multiple of `align`.
      align: cores and windows start and end on multiples of this (or at the
        image edge, which must itself be a multiple).

    Returns:
      A list of Tile, row-major.
    """
    halo = round_up(halo, align)
    tile_h = round_up(tile, align) if tile else height
    tile_w = round_up(tile, align) if tile else width
    return [
        Tile((cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1))
        for cy0, cy1, wy0, wy1 in _spans(height, max(tile_h, align), halo)
        for cx0, cx1, wx0, wx1 in _spans(width, max(tile_w, align), halo)
    ]


def read_window(source, tile):
    """The uint8 window of `source` [H, W, C] that `tile` reads; past its bottom/right
    edges (the padding to the size multiple) the source reads reflected."""
    height, width = source.shape[:2]
    wy0, wy1, wx0, wx1 = tile.window
    rows = reflect_indices(wy0, wy1, height).numpy()
    cols = reflect_indices(wx0, wx1, width).numpy()
    return source[rows[:, None], cols[None, :]]


def write_core(output, tile, result, factor):
    """Copies the part of `result` (the output for the tile's window) that is the tile's
    core into its place in `output`, clipped to output's (unpadded) size.

    factor: output pixels per input pixel, a Fraction (1/scale or scale); its products
      with the tile coordinates must be whole numbers.
    """

    def out(value):
        scaled = value * factor
        if scaled.denominator != 1:
            raise ValueError(f"tile coordinate {value} times {factor} is not whole: misaligned")
        return int(scaled)

    wy0, _, wx0, _ = tile.window
    cy0, cy1, cx0, cx1 = tile.core
    oy0, oy1 = out(cy0), min(out(cy1), output.shape[0])
    ox0, ox1 = out(cx0), min(out(cx1), output.shape[1])
    if oy1 > oy0 and ox1 > ox0:
        ry0, rx0 = out(cy0 - wy0), out(cx0 - wx0)
        output[oy0:oy1, ox0:ox1] = result[ry0:ry0 + oy1 - oy0, rx0:rx0 + ox1 - ox0]


def run_tiled(source, fn, out_shape, factor, tiles, progress=None):
    """Runs fn over tiles of `source` and assembles the uint8 output.

    Args:
      source: uint8 [H, W, C] numpy array; windows past its bottom/right edges
        read it reflected (the padding to the size multiple).
      fn: uint8 [h, w, C] window -> uint8 [h * factor, w * factor, C'] numpy.
      out_shape: (H_out, W_out, C') of the result; output pixels past it (the
        padding) are dropped.
      factor: output pixels per input pixel, a Fraction (1/scale or scale);
        its products with the tile coordinates must be whole numbers.
      tiles: from plan_tiles, over the padded input size.
      progress: optional callable(done, total) after each tile.

    Returns:
      uint8 numpy array of out_shape.
    """
    output = np.empty(out_shape, np.uint8)
    for index, tile in enumerate(tiles):
        write_core(output, tile, fn(read_window(source, tile)), factor)
        if progress is not None:
            progress(index + 1, len(tiles))
    return output


def enable_bfloat16():
    """Lets TensorFlow run convolutions and matmuls in bfloat16 through oneDNN, process-wide.

    Grappler's oneDNN auto-mixed-precision pass rewrites every graph traced
    afterwards (so call it before building a Runner). Worth it on CPUs with
    AVX512-BF16 or AMX, where it cut a lite x4 downscale's CPU time by ~30%;
    LR pixels then differ from float32 by one level in a few percent of places.
    """
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})


def cpu_has_bfloat16():
    """Whether the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX-BF16),
    which oneDNN's bfloat16 convolutions need to be faster than float32 ones."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = set(handle.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision):
    """Maps "auto" to "mixed_bfloat16" on a CPU with bfloat16 instructions and no GPU,
    else to "float32"; checks the name."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if cpu_has_bfloat16() and not tf.config.list_physical_devices("GPU"):
        return "mixed_bfloat16"
    return "float32"


def _tf_fn(fn):
    """Wraps a tf function of a [1, h, w, C] uint8 batch as numpy [h, w, C] -> numpy."""

    def run(window):
        return fn(tf.convert_to_tensor(window[np.newaxis]))[0].numpy()

    return run


def compiled_fixed_kernel(model):
    """`model`'s kernel as a car_tf.fixed_numpy.FixedKernel when `model` is a FixedKernelModel
    and the compiled twin is built, else None.

    The twin is what `car downscale` runs for a fixed model (0.029 s for a decoded 12 MP image
    at x4: docs/BENCHMARKS.md, "Fast downscaling"), within one level of TensorFlow's depthwise
    convolution. The kernel is read once: later changes to the model's weights don't reach it.
    """
    from car_tf.models.fixed import FixedKernelModel

    if not isinstance(model, FixedKernelModel):
        return None
    from car_tf import fixed_numpy  # only for fixed models: it loads the .so

    if fixed_numpy.native_library() is None:
        return None
    side = model.kernel_size
    return fixed_numpy.FixedKernel(model.kernel().numpy().reshape(side, side), model.scale)


class Runner:
    """Downscales and upscales whole uint8 images with a CARModel, tile by tile.

    Args:
      model: a CARModel (or a FixedKernelModel).
      tile: tile core side in HR pixels (0: whole image at once).
      precision: of PRECISIONS, how a CARModel's ResamplerNet runs; the Runner sets it
        on the model (resolve_precision's choice), so it holds for that model object.
      native_fixed: a FixedKernelModel downscales through the compiled twin, as `car
        downscale` does (compiled_fixed_kernel; the whole image at once, in bands, within
        one level of TensorFlow's result), where it is built; False keeps TensorFlow.
    """

    def __init__(self, model, tile, precision="float32", native_fixed=True):
        if tile < 0:
            raise ValueError(f"tile must be >= 0 (0 = no tiling), got {tile}")
        self.model = model
        self.fixed_kernel = compiled_fixed_kernel(model) if native_fixed else None
        self.precision = resolve_precision(precision)
        if hasattr(model, "resampler"):
            # The two precisions are Keras dtype policy names.
            model.resampler.set_body_dtype_policy(self.precision)
        self.scale = int(model.scale)
        self.tile = int(tile)
        self.multiple = size_multiple(self.scale)
        self.downscale_halo = model.downscale_reach()
        self.upscale_halo = model.upscale_reach()
        spec = tf.TensorSpec([1, None, None, 3], tf.uint8)
        self._downscale = _tf_fn(tf.function(model.downscale_uint8, input_signature=[spec]))
        self._upscale = _tf_fn(tf.function(model.upscale_uint8, input_signature=[spec]))
        self._alpha = AlphaResampler(self.scale, self.tile)

    def downscale_tiles(self, height, width):
        """The tiles a height x width HR image is downscaled in (over its padded size)."""
        return plan_tiles(padded_size(height, self.scale), padded_size(width, self.scale),
                          self.tile, self.downscale_halo, self.multiple)

    def upscale_tiles(self, height, width):
        """The tiles a height x width LR image is upscaled in (tile measured in HR pixels)."""
        return plan_tiles(height, width, lr_size(self.tile, self.scale), self.upscale_halo)

    def downscale(self, rgb, progress=None):
        """uint8 [H, W, 3] of any size -> uint8 LR [ceil(H/s), ceil(W/s), 3]."""
        height, width = _check_image(rgb, 3, "rgb")
        if self.fixed_kernel is not None:
            from car_tf import fixed_numpy

            return fixed_numpy.downscale_uint8(rgb, self.fixed_kernel, progress, native=True)
        out_shape = (lr_size(height, self.scale), lr_size(width, self.scale), 3)
        return run_tiled(rgb, self._downscale, out_shape, Fraction(1, self.scale),
                         self.downscale_tiles(height, width), progress)

    def upscale(self, lr, progress=None):
        """uint8 LR [h, w, 3] -> uint8 SR [h*s, w*s, 3]."""
        height, width = _check_image(lr, 3, "lr")
        out_shape = (height * self.scale, width * self.scale, 3)
        return run_tiled(lr, self._upscale, out_shape, Fraction(self.scale),
                         self.upscale_tiles(height, width), progress)

    def downscale_alpha(self, alpha):
        """uint8 [H, W] -> uint8 [ceil(H/s), ceil(W/s)] (AlphaResampler.downscale_alpha)."""
        return self._alpha.downscale_alpha(alpha)

    def upscale_alpha(self, alpha):
        """uint8 [h, w] -> uint8 [h*s, w*s] (AlphaResampler.upscale_alpha)."""
        return self._alpha.upscale_alpha(alpha)


class AlphaResampler:
    """Alpha planes, resized by bicubic interpolation in tiles: a Runner's, and the
    TensorFlow-free fixed-kernel runner's (car_tf.fixed_numpy) once an image has one.

    Args:
      scale: the model's scale factor.
      tile: tile core side in HR pixels (0: whole plane at once).
    """

    def __init__(self, scale, tile):
        self.scale = int(scale)
        self.tile = int(tile)
        self.multiple = size_multiple(self.scale)
        plane = tf.TensorSpec([1, None, None, 1], tf.uint8)
        self._alpha_down = _tf_fn(tf.function(self._alpha_downscale_fn, input_signature=[plane]))
        self._alpha_up = _tf_fn(tf.function(self._alpha_upscale_fn, input_signature=[plane]))

    def _alpha_downscale_fn(self, alpha):
        size = tf.shape(alpha)[1:3] // self.scale
        resized = tf.image.resize(tf.cast(alpha, tf.float32), size, method="bicubic",
                                  antialias=True)
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)

    def _alpha_upscale_fn(self, alpha):
        size = tf.shape(alpha)[1:3] * self.scale
        resized = tf.image.resize(tf.cast(alpha, tf.float32), size, method="bicubic")
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)

    def downscale_alpha(self, alpha):
        """uint8 [H, W] -> uint8 [ceil(H/s), ceil(W/s)]; antialiased bicubic, padded as the RGB."""
        height, width = _check_image(alpha, None, "alpha")
        # Keys' cubic stretched by the scale reaches 2 * scale HR pixels.
        tiles = plan_tiles(padded_size(height, self.scale), padded_size(width, self.scale),
                           self.tile, CUBIC_REACH * self.scale + 1, self.multiple)
        out_shape = (lr_size(height, self.scale), lr_size(width, self.scale), 1)
        return run_tiled(alpha[:, :, np.newaxis], self._alpha_down, out_shape,
                         Fraction(1, self.scale), tiles)[:, :, 0]

    def upscale_alpha(self, alpha):
        """uint8 [h, w] -> uint8 [h*s, w*s] by bicubic interpolation."""
        height, width = _check_image(alpha, None, "alpha")
        tiles = plan_tiles(height, width, lr_size(self.tile, self.scale), CUBIC_REACH + 1)
        out_shape = (height * self.scale, width * self.scale, 1)
        return run_tiled(alpha[:, :, np.newaxis], self._alpha_up, out_shape, Fraction(self.scale),
                         tiles)[:, :, 0]


def _check_image(array, channels, name):
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        kind = getattr(array, "dtype", type(array))
        raise ValueError(f"{name} must be a uint8 numpy array, got {kind}")
    expected = 3 if channels else 2
    if array.ndim != expected or (channels and array.shape[2] != channels):
        shape = f"[H, W, {channels}]" if channels else "[H, W]"
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if min(array.shape[:2]) < 1:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    return array.shape[0], array.shape[1]
