"""Lossy codecs for the LR image: the real ones (through Pillow) and a differentiable JPEG.

In the pipelines CAR is for, the LR image is stored as JPEG or WebP before anyone
upscales it. Two halves:

  real codecs   `compress(lr_uint8, codec, quality)` encodes with Pillow the way a web
                pipeline saves a file (JPEG: baseline, 4:2:0 chroma, the standard Annex K
                tables scaled by quality, standard Huffman tables; WebP: lossy, Pillow's
                default method) and decodes it again; evaluation measures rate and
                distortion with it.
  differentiable_jpeg
                the same JPEG computed in TensorFlow, as libjpeg(-turbo) computes it:
                RGB -> YCbCr (JFIF), edge replication to whole 16x16 MCUs, 2x2 chroma
                averaging, 8x8 DCT, quantisation by the quality-scaled tables, then the
                decoder's dequantisation, inverse DCT, "fancy" (triangle) chroma
                upsampling and YCbCr -> RGB. Training puts it between the quantised LR
                and the upscaler.

Gradient of the rounding. Each integer rounding a decoder or encoder does on pixel
values (colour conversion, chroma averaging, the IDCT's and the upsampler's output)
is passed straight through: they move a value by at most half a level, and an identity
gradient is their exact slope on average. The rounding of the DCT coefficients is
the codec's real loss: there the forward pass rounds exactly, and the backward pass
uses the soft-round slope of paper eq. 7 (as car_tf.quantize does for 8-bit pixels),
1 - alpha * cos(2*pi*c/q) for coefficient c and quantiser step q. alpha = 0 is the
straight-through estimator. With alpha > 0 a coefficient that sits on a level (0
included, where most high frequencies end) gets a smaller gradient than one halfway
between levels, which is where a small change flips the rounding; the expected
slope stays 1, so the gradient is not biased in scale.
"""

import io
import math

import numpy as np
import tensorflow as tf
from PIL import Image, features

CODECS = ("png", "jpeg", "webp")
LOSSY_CODECS = ("jpeg", "webp")

# Annex K of ITU-T T.81 (the tables libjpeg scales by quality), in natural (row-major)
# order, row = vertical frequency.
LUMINANCE_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], np.int32)
# The chrominance table is 99 everywhere but its low-frequency 4x4 corner.
CHROMINANCE_TABLE = np.full((8, 8), 99, np.int32)
CHROMINANCE_TABLE[:4, :4] = [
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
]
# JFIF's full-range BT.601 conversion, what libjpeg codes (Cb and Cr then offset by 128),
# and the decoder's inverse; rows are output components, columns the inputs (R, G, B / Y, Cb, Cr).
JFIF_RGB_TO_YCBCR = np.array([
    [0.299, 0.587, 0.114],
    [-0.168735892, -0.331264108, 0.5],
    [0.5, -0.418687589, -0.081312411],
])
JFIF_YCBCR_TO_RGB = np.array([
    [1.0, 0.0, 1.402],
    [1.0, -0.344136286, -0.714136286],
    [1.0, 1.772, 0.0],
])
BLOCK = 8
# 4:2:0: one minimum coded unit covers 16x16 pixels (four luma blocks, one per chroma plane).
MCU = 16

# Fitted so that the rate proxy of differentiable_jpeg approximates the size of Pillow's
# file in bits (tests/test_codecs.py checks the fit).
RATE_PROXY_SCALE = 2.67

# Pillow's feature name for each lossy codec.
_PILLOW_FEATURES = {"jpeg": "jpg", "webp": "webp"}


class CodecError(ValueError):
    """An unknown codec, a quality outside 1..100, or a codec this Pillow was built without."""


def check_codec(codec, qualities=()):
    """Raises CodecError (one line) unless `codec` is usable here with every quality given.

    Args:
      codec: one of CODECS ("png" is lossless and takes no quality).
      qualities: iterable of qualities; each must be an integer in 1..100.
    """
    if codec not in CODECS:
        raise CodecError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    qualities = list(qualities)
    if codec == "png":
        if qualities:
            raise CodecError("png is lossless and takes no quality; drop the qualities "
                             "or choose jpeg or webp")
        return
    if codec in _PILLOW_FEATURES and not features.check(_PILLOW_FEATURES[codec]):
        raise CodecError(f"this Pillow ({Image.__version__}) was built without {codec} "
                         "support; install a Pillow wheel with it")
    if not qualities:
        raise CodecError(f"{codec} needs at least one quality (1..100)")
    for quality in qualities:
        if isinstance(quality, bool) or int(quality) != quality or not 1 <= quality <= 100:
            raise CodecError(f"{codec} quality must be an integer in 1..100, got {quality!r}")


def encode(image_uint8, codec, quality=None):
    """uint8 [H, W, 3] -> the encoded file's bytes (what a pipeline would store)."""
    image = Image.fromarray(np.ascontiguousarray(image_uint8, np.uint8), "RGB")
    buffer = io.BytesIO()
    if codec == "jpeg":
        # 4:2:0 and the standard (not optimised) Huffman tables: Pillow's and libjpeg's
        # defaults, and what most web pipelines write.
        image.save(buffer, "JPEG", quality=int(quality), subsampling="4:2:0")
    elif codec == "webp":
        image.save(buffer, "WEBP", quality=int(quality), lossless=False)
    elif codec == "png":
        image.save(buffer, "PNG", optimize=True)
    else:
        raise CodecError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    return buffer.getvalue()


def decode(encoded):
    """Encoded bytes -> uint8 [H, W, 3]."""
    with Image.open(io.BytesIO(encoded)) as image:
        return np.asarray(image.convert("RGB"))


def compress(image_uint8, codec, quality=None):
    """Round trip through a real codec: (decoded uint8 [H, W, 3], encoded size in bytes)."""
    encoded = encode(image_uint8, codec, quality)
    return decode(encoded), len(encoded)


def quality_scaled_table(base_table, quality):
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table(force_baseline=TRUE), in TF.

    Args:
      base_table: int [8, 8], an Annex K table.
      quality: int or float tensor, scalar or [N], values 1..100.

    Returns:
      float32 [8, 8] (scalar quality) or [N, 8, 8]: the quantiser steps, 1..255.
    """
    quality = tf.clip_by_value(tf.cast(tf.round(tf.cast(quality, tf.float32)), tf.int32), 1, 100)
    scaling = tf.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    scaling = tf.reshape(scaling, tf.concat([tf.shape(scaling), [1, 1]], axis=0))
    steps = (tf.constant(base_table, tf.int32) * scaling + 50) // 100
    return tf.cast(tf.clip_by_value(steps, 1, 255), tf.float32)


def dct_matrix():
    """The orthonormal 8-point DCT-II, D[u, x] = c(u) cos((2x + 1) u pi / 16): JPEG's FDCT
    of a block is D @ block @ D^T."""
    u = np.arange(BLOCK)[:, None]
    x = np.arange(BLOCK)[None, :]
    matrix = np.cos((2 * x + 1) * u * math.pi / (2 * BLOCK)) * math.sqrt(2.0 / BLOCK)
    matrix[0] /= math.sqrt(2.0)
    return matrix.astype(np.float32)


_DCT = dct_matrix()


def _straight_through(x, forward):
    """forward(x) in the forward pass, identity in the backward pass."""
    return x + tf.stop_gradient(forward(x) - x)


def _round_half_away(x):
    """Rounds halves away from zero, as libjpeg's quantiser does (tf.round goes to even)."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


def _round_straight_through(x):
    """round(x) forward, identity backward."""
    return _straight_through(x, tf.round)


def _round_soft_gradient(x, alpha):
    """round(x) forward; backward slope 1 - alpha * cos(2 pi x) (paper eq. 7's soft round)."""
    if alpha == 0.0:
        return _straight_through(x, _round_half_away)

    @tf.custom_gradient
    def _round(values):
        def grad(upstream):
            return upstream * (1.0 - alpha * tf.cos(2.0 * math.pi * values))

        return _round_half_away(values), grad

    return _round(x)


def _replicate_pad(planes, multiple):
    """[N, H, W, C] -> [N, H', W', C] with H', W' the next multiples of `multiple`, by
    repeating the last row and column (what libjpeg does to fill the last MCU)."""
    height, width = tf.shape(planes)[1], tf.shape(planes)[2]
    padded_height = (height + multiple - 1) // multiple * multiple
    padded_width = (width + multiple - 1) // multiple * multiple
    planes = tf.gather(planes, tf.minimum(tf.range(padded_height), height - 1), axis=1)
    return tf.gather(planes, tf.minimum(tf.range(padded_width), width - 1), axis=2)


def _to_blocks(plane):
    """[N, H, W] (H, W multiples of 8) -> [N, H/8, W/8, 8, 8]."""
    shape = tf.shape(plane)
    blocks = tf.reshape(plane, [shape[0], shape[1] // BLOCK, BLOCK, shape[2] // BLOCK, BLOCK])
    return tf.transpose(blocks, [0, 1, 3, 2, 4])


def _from_blocks(blocks):
    """Inverse of _to_blocks."""
    shape = tf.shape(blocks)
    plane = tf.transpose(blocks, [0, 1, 3, 2, 4])
    return tf.reshape(plane, [shape[0], shape[1] * BLOCK, shape[2] * BLOCK])


def _quantise_plane(plane, steps, alpha):
    """One level-shifted plane [N, H, W] through FDCT, quantisation, dequantisation, IDCT.

    steps: [8, 8] or [N, 8, 8] quantiser steps.
    Returns (restored plane [N, H, W], the rate proxy's bits per image [N]).
    """
    dct = tf.constant(_DCT)
    blocks = _to_blocks(plane)
    coefficients = tf.einsum("ux,nijxy,vy->nijuv", dct, blocks, dct)
    if steps.shape.rank == 3:
        steps = steps[:, tf.newaxis, tf.newaxis]
    scaled = coefficients / steps
    levels = _round_soft_gradient(scaled, alpha)
    restored = tf.einsum("ux,nijuv,vy->nijxy", dct, levels * steps, dct)
    bits = tf.reduce_sum(tf.math.log1p(tf.abs(scaled)), axis=[1, 2, 3, 4]) / math.log(2.0)
    return _from_blocks(restored), bits


def _average_2x2(plane):
    """[N, H, W] (H, W even) -> [N, H/2, W/2] on integer levels: the encoder's h2v2 chroma
    downsampling, (sum of 4 + bias) >> 2 with the bias alternating 1, 2 along a row so
    that halves round down and up in turn (gradient: that of the plain mean)."""
    mean = tf.nn.avg_pool2d(plane[..., tf.newaxis], 2, 2, "VALID")[..., 0]
    bias = 0.25 + 0.25 * tf.cast(tf.range(tf.shape(mean)[2]) % 2, mean.dtype)
    return _straight_through(mean, lambda values: tf.floor(values + bias))


def _triangle_upsample(plane, axis, rounded):
    """Doubles [N, H, W] along axis 1 or 2 as libjpeg's fancy upsampler does: output
    sample 2i is 3/4 in[i] + 1/4 in[i-1], sample 2i+1 is 3/4 in[i] + 1/4 in[i+1], the
    edge sample repeated beyond the plane; `rounded` rounds to integers as libjpeg does
    after its second (horizontal) pass."""
    size = tf.shape(plane)[axis]
    index = tf.range(size)
    before = tf.gather(plane, tf.maximum(index - 1, 0), axis=axis)
    after = tf.gather(plane, tf.minimum(index + 1, size - 1), axis=axis)
    even = 0.75 * plane + 0.25 * before
    odd = 0.75 * plane + 0.25 * after
    if rounded:
        # libjpeg-turbo adds 8/16 to even and 7/16 to odd samples before its shift.
        even = _straight_through(even, lambda values: tf.floor(values + 0.5))
        odd = _straight_through(odd, lambda values: tf.floor(values + 0.4375))
    interleaved = tf.stack([even, odd], axis=axis + 1)
    shape = tf.shape(plane)
    new_shape = tf.tensor_scatter_nd_update(shape, [[axis]], [2 * size])
    return tf.reshape(interleaved, new_shape)


def differentiable_jpeg(images, quality, rounding_alpha=0.0, return_bits=False):
    """JPEG compression and decompression (baseline, 4:2:0) with usable gradients.

    Args:
      images: float [N, H, W, 3] RGB in [0, 1], any H and W >= 1; graph mode works with
        unknown H and W.
      quality: libjpeg quality 1..100, a Python number, a scalar tensor or [N] (one per
        image: training draws it per example).
      rounding_alpha: soft-round strength of the coefficient rounding's gradient, in
        [0, 1]; 0 = straight-through (see the module docstring).
      return_bits: also return a differentiable estimate of the file's size.

    Returns:
      float32 [N, H, W, 3] in [0, 1] on the 8-bit levels: what a decoder shows of the
      file libjpeg would write at this quality; with return_bits, also float32 [N], the
      rate proxy sum(log2(1 + |coefficient / step|)) over every coefficient of the
      three planes times RATE_PROXY_SCALE, in bits (a smooth stand-in for the entropy
      coder's cost, which grows with each coefficient's magnitude in steps).
    """
    if not 0.0 <= float(rounding_alpha) <= 1.0:
        raise ValueError(f"rounding_alpha must be in [0, 1], got {rounding_alpha}")
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] not in (3, None):
        raise ValueError(f"images must be RGB batches [N, H, W, 3], got shape {images.shape}")
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rgb = _replicate_pad(images * 255.0, MCU)
    red, green, blue = tf.unstack(rgb, axis=-1)
    # JFIF's full-range BT.601 conversion; libjpeg rounds each component to 8 bits.
    (y_r, y_g, y_b), (cb_r, cb_g, cb_b), (cr_r, cr_g, cr_b) = JFIF_RGB_TO_YCBCR.tolist()
    luma = _round_straight_through(y_r * red + y_g * green + y_b * blue)
    blue_difference = _round_straight_through(cb_r * red + cb_g * green + cb_b * blue + 128.0)
    red_difference = _round_straight_through(cr_r * red + cr_g * green + cr_b * blue + 128.0)
    blue_difference = _average_2x2(blue_difference)
    red_difference = _average_2x2(red_difference)

    alpha = float(rounding_alpha)
    luma_steps = quality_scaled_table(LUMINANCE_TABLE, quality)
    chroma_steps = quality_scaled_table(CHROMINANCE_TABLE, quality)

    bits = []

    def decoded(plane, steps):
        restored, plane_bits = _quantise_plane(plane - 128.0, steps, alpha)
        bits.append(plane_bits)
        return tf.clip_by_value(_round_straight_through(restored + 128.0), 0.0, 255.0)

    luma = decoded(luma, luma_steps)[:, :height, :width]
    # The decoder upsamples the chroma planes as wide as the image needs, repeating
    # their last real sample at the edge, not the encoder's padding.
    chroma_height, chroma_width = (height + 1) // 2, (width + 1) // 2
    chroma = []
    for plane in (blue_difference, red_difference):
        plane = decoded(plane, chroma_steps)[:, :chroma_height, :chroma_width]
        plane = _triangle_upsample(_triangle_upsample(plane, 1, False), 2, True)
        chroma.append(plane[:, :height, :width] - 128.0)
    blue_difference, red_difference = chroma
    (_, _, r_cr), (_, g_cb, g_cr), (_, b_cb, _) = JFIF_YCBCR_TO_RGB.tolist()
    red = luma + r_cr * red_difference
    green = luma + g_cb * blue_difference + g_cr * red_difference
    blue = luma + b_cb * blue_difference
    rgb = tf.stack([red, green, blue], axis=-1)
    decoded_images = tf.clip_by_value(_round_straight_through(rgb), 0.0, 255.0) / 255.0
    if return_bits:
        return decoded_images, RATE_PROXY_SCALE * tf.add_n(bits)
    return decoded_images
