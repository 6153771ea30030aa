"""Does knowing the JPEG quality help a fixed downscaler? (docs/RESULTS.md, "Under compression")

Blends LR = B + w (K - B) of the bicubic LR B and a fixed kernel's LR K (codec_kernel's
BlendDownscaler with slope 0), for w in a grid, through Pillow's JPEG at qualities 20..95, bicubic
upscaler, PSNR-Y. Prints, per folder, each w's BD-rate against bicubic (w = 0 at qualities 30, 50,
70, 90), and that of choosing w per operating point: at each PSNR-Y the least rate over the w
curves, what a downscaler told the quality it will be stored at could reach with this family.
BD here is the mean log-rate difference by piecewise-linear interpolation over the PSNR overlap
(many qualities per curve), not the cubic fit of car_tf.bjontegaard.

  python docs/experiments/quality_conditioned_blend.py SCALE KERNEL_MODEL FOLDER...
"""

import os
import sys

import numpy as np

from car_tf import image_io, pretrained
from car_tf.analysis.codec_kernel import BlendDownscaler, blend_lr
from car_tf.evaluation.rate_distortion import coded_scores
from car_tf.evaluation.scoring import read_hr
from car_tf.models.bicubic import BicubicUpscaler

BLENDS = [0.0, 0.5, 0.75, 1.0, 1.25, 1.5]
QUALITIES = list(range(20, 100, 5))
REFERENCE_QUALITIES = [30, 50, 70, 90]
GRID_POINTS = 200


def log_rate_at(curve, psnrs):
    """log10 rate of `curve` (rates, PSNRs ordered by quality) at `psnrs`; inf outside it."""
    rates, curve_psnrs = curve
    inside = (psnrs >= curve_psnrs.min()) & (psnrs <= curve_psnrs.max())
    return np.where(inside, np.interp(psnrs, curve_psnrs, np.log10(rates)), np.inf)


def bd_rate(reference, log_rates, psnrs):
    """Mean rate difference (%) of `log_rates` at `psnrs` against the reference curve."""
    keep = np.isfinite(log_rates)
    return (10 ** np.mean(log_rates[keep] - log_rate_at(reference, psnrs)[keep]) - 1) * 100


def main(scale, kernel_model, folders):
    kernel = pretrained.load_model(kernel_model).kernel().numpy()
    upscale = BicubicUpscaler(scale)
    probe = BlendDownscaler(kernel, scale, 0.0, 0.0)
    for folder in folders:
        scores = {}
        for path in image_io.list_images([folder], recursive=True):
            hr = read_hr(path, scale, [])
            if hr is None:
                continue
            bicubic, detail, _ = probe.parts(hr)
            for blend in BLENDS:
                lr = blend_lr(bicubic, detail, blend)
                for quality in QUALITIES:
                    scores.setdefault((blend, quality), []).append(
                        coded_scores(hr / 255.0, lr, "jpeg", quality, upscale, scale, ssim=False))

        def curve(blend, qualities):
            means = [np.mean(scores[(blend, quality)], axis=0) for quality in qualities]
            return np.array([m[2] for m in means]), np.array([m[0] for m in means])

        reference = curve(0.0, REFERENCE_QUALITIES)
        psnrs = np.linspace(reference[1].min(), reference[1].max(), GRID_POINTS)
        print(f"x{scale} {os.path.basename(os.path.normpath(folder))} ({kernel_model})", flush=True)
        per_blend = {blend: log_rate_at(curve(blend, QUALITIES), psnrs) for blend in BLENDS}
        for blend in BLENDS[1:]:
            print(f"  w={blend:<5} BD-rate {bd_rate(reference, per_blend[blend], psnrs):+.2f}%")
        stacked = np.stack([per_blend[blend] for blend in BLENDS])
        best = stacked.min(axis=0)
        chosen = np.array(BLENDS)[stacked.argmin(axis=0)][np.isfinite(best)]
        shares = ", ".join(f"{blend}: {np.mean(chosen == blend):.2f}" for blend in BLENDS)
        print(f"  w chosen per PSNR: BD-rate {bd_rate(reference, best, psnrs):+.2f}% "
              f"(share of the PSNR range per w: {shares})", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
