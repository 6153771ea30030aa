"""How much a trained CAR model's content adaptivity is worth, measured on images.

For each image the model predicts per-pixel kernels and offsets. Besides the
model as it is, the LR image is also made (through the same op, quantiser and
bicubic upscaler) with
  "no offsets"   the model's kernels, offsets set to 0;
  "mean kernel"  one kernel for the whole image, the spatial mean of the model's
                 kernels, and no offsets: what is left without adaptivity.
If "mean kernel" scores as well as the model, the ResamplerNet has learned a
fixed kernel (compare car_tf.analysis.fixed_kernel).

Under a codec (lr_codec "jpeg" or "webp" and its qualities), each variant's 8-bit LR
image is also stored with the real codec (car_tf.codecs) at every quality before the
bicubic upscaler: a rate-distortion curve per variant, and the Bjontegaard deltas of
"model" and "no offsets" against "mean kernel", which are what the adaptivity is worth
once the LR image is compressed. The report also gives the size and
spatial spread of the offsets and the spatial spread of the kernel taps, the
share of float LR values that the quantiser's clip (not its rounding) sets, and
for "clamp" models the fraction of taps at the clamp's floor (a clamped tap is
1e-6 / the pixel's raw sum after normalisation: the pixel's smallest value).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from car_tf import bjontegaard, codecs
from car_tf.protocol import crop_to_multiple, psnr_y_of_float_sr
from car_tf.models import BicubicUpscaler, size_multiple
from car_tf.ops import adaptive_resample
from car_tf.quantize import quantize_8bit, set_by_clip

VARIANTS = ("model", "no offsets", "mean kernel")


@dataclasses.dataclass
class KernelReport:
    """Means over the images. psnr_y: {variant: dB}, bicubic upscaler, shave = scale."""

    images: int
    psnr_y: dict
    mean_abs_offset: float
    offset_spatial_std: float
    kernel_spatial_std: float
    fraction_at_floor: float  # None unless the model's kernel_normalization is "clamp"
    fraction_clipped: float  # of the model's float LR values, those the clip to [0, 1] sets
    mean_kernel: np.ndarray
    # Under a codec: {variant: [(quality, mean PSNR-Y dB, mean bits per HR pixel)]} and
    # {variant: (BD-rate %, BD-PSNR dB) against "mean kernel"}; empty without one.
    codec: str = "png"
    codec_points: dict = dataclasses.field(default_factory=dict)
    codec_deltas: dict = dataclasses.field(default_factory=dict)

    def lines(self):
        yield f"images: {self.images}"
        for variant in VARIANTS:
            yield f"PSNR-Y with the bicubic upscaler, {variant}: {self.psnr_y[variant]:.3f} dB"
        yield (f"offsets: mean |o| {self.mean_abs_offset:.2e} LR px, spatial std "
               f"{self.offset_spatial_std:.2e}")
        yield (f"LR values set by the clip to [0, 1] (quantize.set_by_clip): "
               f"{100 * self.fraction_clipped:.2f}%")
        line = f"kernel taps: spatial std {self.kernel_spatial_std:.4f} (mean over taps)"
        if self.fraction_at_floor is not None:
            line += f", {100 * self.fraction_at_floor:.1f}% at the clamp floor"
        yield line
        for variant, points in self.codec_points.items():
            curve = ", ".join(f"q{q} {psnr:.3f} dB at {bpp:.4f} bpp" for q, psnr, bpp in points)
            yield f"{self.codec}, {variant}: {curve}"
        for variant, (rate, psnr) in self.codec_deltas.items():
            yield (f"{self.codec}, {variant} against mean kernel: BD-rate {rate:+.2f}%, "
                   f"BD-PSNR {psnr:+.3f} dB")




def _codec_scores(hr_uint8, lr_float, upscale, codec, qualities, scale):
    """[(quality, PSNR-Y, bits per HR pixel)] of one variant's LR through the real codec."""
    lr_uint8 = np.round(quantize_8bit(lr_float).numpy()[0] * 255.0).astype(np.uint8)
    points = []
    for quality in qualities:
        decoded, size = codecs.compress(lr_uint8, codec, quality)
        sr = upscale(tf.constant(decoded[np.newaxis], tf.float32) / 255.0)
        points.append((quality, psnr_y_of_float_sr(hr_uint8, sr, scale),
                       8.0 * size / (hr_uint8.shape[0] * hr_uint8.shape[1])))
    return points


def analyse(model, images, lr_codec="png", qualities=()):
    """KernelReport of a CARModel over uint8 [H, W, 3] images (cropped to the size multiple);
    with a lossy lr_codec and its qualities, also each variant's RD curve and BD deltas."""
    codecs.check_codec(lr_codec, qualities)
    qualities = sorted(int(q) for q in qualities)
    scale = model.scale
    upscale = BicubicUpscaler(scale)
    scores = {variant: [] for variant in VARIANTS}
    offsets_abs, offsets_std, kernel_std, at_floor, clipped = [], [], [], [], []
    kernel_sum = 0.0
    codec_samples = {variant: [] for variant in VARIANTS}
    for image in images:
        hr_uint8 = crop_to_multiple(image, size_multiple(scale))
        hr = tf.constant(hr_uint8[np.newaxis], tf.float32) / 255.0
        # Only the ResamplerNet: the model's own upscaler (an EDSR, maybe) is not needed here.
        kernels, offsets_x, offsets_y = model.resampler(hr)
        zeros = tf.zeros_like(offsets_x)
        mean_kernel = tf.reduce_mean(kernels, axis=[1, 2], keepdims=True)
        variants = {
            "model": (kernels, offsets_x, offsets_y),
            "no offsets": (kernels, zeros, zeros),
            "mean kernel": (tf.broadcast_to(mean_kernel, tf.shape(kernels)), zeros, zeros),
        }
        lr_floats = {variant: adaptive_resample(hr, *arguments, float(scale))
                     for variant, arguments in variants.items()}
        for variant, lr_float in lr_floats.items():
            scores[variant].append(
                psnr_y_of_float_sr(hr_uint8, upscale(quantize_8bit(lr_float)), scale))
            if lr_codec != "png":
                codec_samples[variant].append(
                    _codec_scores(hr_uint8, lr_float, upscale, lr_codec, qualities, scale))
        both = tf.concat([offsets_x, offsets_y], axis=-1)
        offsets_abs.append(float(tf.reduce_mean(tf.abs(both))))
        offsets_std.append(float(tf.reduce_mean(tf.math.reduce_std(both, axis=[1, 2]))))
        kernel_std.append(float(tf.reduce_mean(tf.math.reduce_std(kernels, axis=[1, 2]))))
        floor = tf.reduce_min(kernels, axis=-1, keepdims=True) * (1.0 + 1e-4)
        at_floor.append(float(tf.reduce_mean(tf.cast(kernels <= floor, tf.float32))))
        kernel_sum = kernel_sum + mean_kernel.numpy().reshape(-1)
        clipped.append(float(tf.reduce_mean(tf.cast(set_by_clip(lr_floats["model"]), tf.float32))))
    size = model.resampler.kernel_size
    codec_points, codec_deltas = {}, {}
    if lr_codec != "png":
        for variant, per_image in codec_samples.items():
            means = np.mean(np.array(per_image), axis=0)  # [quality, (q, psnr, bpp)]
            codec_points[variant] = [(int(q), float(psnr), float(bpp)) for q, psnr, bpp in means]
        reference = codec_points["mean kernel"]
        for variant in ("model", "no offsets"):
            curve = codec_points[variant]
            args = ([p[2] for p in reference], [p[1] for p in reference],
                    [p[2] for p in curve], [p[1] for p in curve])
            if len(qualities) >= bjontegaard.MIN_POINTS:
                codec_deltas[variant] = (bjontegaard.bd_rate(*args), bjontegaard.bd_psnr(*args))
    return KernelReport(
        images=len(images),
        psnr_y={variant: float(np.mean(values)) for variant, values in scores.items()},
        mean_abs_offset=float(np.mean(offsets_abs)),
        offset_spatial_std=float(np.mean(offsets_std)),
        kernel_spatial_std=float(np.mean(kernel_std)),
        fraction_at_floor=(float(np.mean(at_floor))
                           if model.resampler.kernel_normalization == "clamp" else None),
        fraction_clipped=float(np.mean(clipped)),
        mean_kernel=(kernel_sum / len(images)).reshape(size, size),
        codec=lr_codec,
        codec_points=codec_points,
        codec_deltas=codec_deltas,
    )
