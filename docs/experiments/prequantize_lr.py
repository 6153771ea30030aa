"""Does an LR put on the codec's own lattice pay? (docs/RESULTS.md, "Under compression")

A resampler, however adaptive its kernels, is linear in the HR image for given kernels. A downscaler
that knows the JPEG quality its LR will be stored at can also do something nonlinear that the codec
rewards: choose the LR's luma DCT coefficients on JPEG's quantiser lattice itself, and drop the ones
whose bits buy little. Per 8 x 8 block of the LR's luma (JFIF Y, as libjpeg codes it), each AC
coefficient c gets the level k in {round(c / Q), one step nearer zero, 0} that minimises

    g (Q k - c)^2 + lambda bits(k),    lambda = strength * (the quality's DC step)^2,

with Q its step at that quality, bits(k) = 0 for k = 0 and else 4 plus the bit length of |k| (a
JPEG AC symbol's typical Huffman code and its magnitude bits), and g either 1 (the rate-distortion
choice on the LR itself, what a trellis-quantising encoder does) or the energy that the bicubic
upscaler gives that DCT basis in the HR image, relative to DC's ("HR-weighted": the upscaler
attenuates what the HR score would lose). The LR is then Y rebuilt from those levels with the
chroma unchanged, rounded to RGB uint8, and stored by Pillow's real JPEG at that quality, which
quantises the rebuilt coefficients back to the chosen levels (up to the RGB rounding).

The strength is chosen per scale and variant on --select images drawn from the training folders,
then every row is scored on the report folders: BD-rate / BD-PSNR against bicubic LR through the
same JPEG, qualities 30/50/70/90, bicubic upscaler, PSNR-Y (car_tf.bjontegaard).

  python docs/experiments/prequantize_lr.py SCALE KERNEL_MODEL SELECT_FOLDER REPORT_FOLDER...
"""

import os
import sys

import numpy as np
import tensorflow as tf

from car_tf import bjontegaard, codecs, image_io, pretrained
from car_tf.evaluation.rate_distortion import coded_scores
from car_tf.evaluation.scoring import read_hr
from car_tf.fixed_numpy import FixedKernel, downscale_uint8
from car_tf.models.bicubic import BicubicUpscaler
from car_tf.protocol import bicubic_downscale_uint8

QUALITIES = [30, 50, 70, 90]
STRENGTHS = [0.0, 0.03, 0.06, 0.12, 0.25, 0.5, 1.0]
SELECT_IMAGES = 20
SYMBOL_BITS = 4.0
DCT = codecs.dct_matrix().astype(np.float64)
RGB_TO_YCBCR = codecs.JFIF_RGB_TO_YCBCR.astype(np.float64)


def basis_gains(scale):
    """[8, 8]: HR energy of the bicubic upscale of each orthonormal DCT basis block, over DC's."""
    upscale = BicubicUpscaler(scale)
    gains = np.zeros((8, 8))
    for u in range(8):
        for v in range(8):
            canvas = np.zeros((1, 48, 48, 1), np.float32)
            canvas[0, 16:24, 16:24, 0] = np.outer(DCT[u], DCT[v])
            gains[u, v] = float(tf.reduce_sum(tf.square(upscale(np.repeat(canvas, 3, -1))[..., 0])))
    return gains / gains[0, 0]


def _blocks(plane):
    height, width = plane.shape
    return plane.reshape(height // 8, 8, width // 8, 8).transpose(0, 2, 1, 3)


def prequantize(lr_uint8, quality, strength, gains):
    """uint8 LR [h, w, 3] with its luma's AC coefficients put on the quality's lattice (module
    docstring); strength 0 only rounds them as the codec would."""
    height, width = lr_uint8.shape[:2]
    ycc = lr_uint8.astype(np.float64) @ RGB_TO_YCBCR.T
    ycc[..., 1:] += 128.0
    pad = ((0, -height % 16), (0, -width % 16))
    luma = np.pad(ycc[..., 0], pad, mode="edge") - 128.0
    coefficients = DCT @ _blocks(luma) @ DCT.T
    steps = codecs.quality_scaled_table(codecs.LUMINANCE_TABLE, quality).numpy().astype(np.float64)
    nearest = np.sign(coefficients) * np.floor(np.abs(coefficients) / steps + 0.5)
    candidates = np.stack([nearest, nearest - np.sign(nearest), np.zeros_like(nearest)])
    magnitude = np.abs(candidates)
    bits = np.where(magnitude > 0, SYMBOL_BITS + np.floor(np.log2(np.maximum(magnitude, 1))) + 1, 0)
    cost = gains * (steps * candidates - coefficients) ** 2 + strength * steps[0, 0] ** 2 * bits
    levels = np.take_along_axis(candidates, cost.argmin(axis=0)[None], 0)[0]
    levels[..., 0, 0] = nearest[..., 0, 0]
    blocks = DCT.T @ (steps * levels) @ DCT
    rows, cols = blocks.shape[:2]
    ycc[..., 0] = blocks.transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)[:height, :width] + 128.0
    ycc[..., 1:] -= 128.0
    rgb = ycc @ np.linalg.inv(RGB_TO_YCBCR).T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


class Curves:
    """Mean (rate, PSNR-Y) per quality of downscalers over one set of HR images."""

    def __init__(self, paths, scale):
        self.scale = scale
        self.images = [image for image in (read_hr(path, scale, []) for path in paths)
                       if image is not None]
        self.upscale = BicubicUpscaler(scale)
        self.reference = self.curve(lambda hr, quality: bicubic_downscale_uint8(hr, scale))

    def curve(self, downscale):
        """downscale(hr uint8, quality) -> LR uint8; returns (rates, psnrs) over QUALITIES."""
        sums = np.zeros((len(QUALITIES), 2))
        for hr in self.images:
            for row, quality in enumerate(QUALITIES):
                psnr, _, bpp = coded_scores(hr / 255.0, downscale(hr, quality), "jpeg", quality,
                                            self.upscale, self.scale, ssim=False)
                sums[row] += (bpp, psnr)
        means = sums / len(self.images)
        return means[:, 0], means[:, 1]

    def delta(self, curve):
        """(BD-rate %, BD-PSNR dB) against bicubic; NaN where the curves don't overlap."""
        try:
            return (bjontegaard.bd_rate(*self.reference, *curve),
                    bjontegaard.bd_psnr(*self.reference, *curve))
        except bjontegaard.NoOverlapError:
            return float("nan"), float("nan")


def main(scale, kernel_model, select_folder, report_folders):
    side = 3 * scale + 1
    kernel = FixedKernel(pretrained.load_model(kernel_model).kernel().numpy().reshape(side, side),
                         scale)
    hr_weighted = basis_gains(scale)
    print(f"x{scale}: bicubic gains of the DCT bases, row 0: {np.round(hr_weighted[0], 3)}, "
          f"smallest {hr_weighted.min():.3f}")
    variants = {"LR-domain (g = 1)": np.ones((8, 8)), "HR-weighted": hr_weighted}

    def downscaler(base, gains, strength):
        def run(hr, quality):
            lr = base(hr)
            return lr if gains is None else prequantize(lr, quality, strength, gains)
        return run

    def kernel_lr(hr):
        return downscale_uint8(hr, kernel)

    def bicubic_lr(hr):
        return bicubic_downscale_uint8(hr, scale)

    paths = sorted(image_io.list_images([select_folder], recursive=True))
    draw = np.random.default_rng(0).choice(len(paths), min(SELECT_IMAGES, len(paths)), False)
    select = Curves([paths[i] for i in sorted(draw)], scale)
    chosen = {}
    for name, gains in variants.items():
        results = []
        for strength in STRENGTHS:
            rate, psnr = select.delta(select.curve(downscaler(kernel_lr, gains, strength)))
            results.append((rate, strength))
            print(f"  select ({len(select.images)} training images) {name} strength {strength}: "
                  f"BD-rate {rate:+.2f}% BD-PSNR {psnr:+.3f}", flush=True)
        chosen[name] = min(results, key=lambda item: (np.nan_to_num(item[0], nan=np.inf)))[1]
    print(f"  chosen strengths: {chosen}")
    for folder in report_folders:
        report = Curves(image_io.list_images([folder], recursive=True), scale)
        rows = [(kernel_model, downscaler(kernel_lr, None, 0))]
        for name, gains in variants.items():
            rows.append((f"{kernel_model} + {name} at {chosen[name]}",
                         downscaler(kernel_lr, gains, chosen[name])))
        rows.append((f"bicubic + HR-weighted at {chosen['HR-weighted']}",
                     downscaler(bicubic_lr, hr_weighted, chosen["HR-weighted"])))
        label = os.path.basename(os.path.normpath(folder))
        for name, run in rows:
            rate, psnr = report.delta(report.curve(run))
            print(f"x{scale} {label:18s} {name:48s} BD-rate {rate:+.2f}% BD-PSNR {psnr:+.3f}",
                  flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:])
