"""Is the model's sharper chroma paid for in bits? (docs/RESULTS.md, "Under compression")

The best downscalers' LR against a hybrid of their luma (JPEG's full-range BT.601 Y) and bicubic's
chroma, through Pillow's JPEG at qualities 30-90, bicubic upscaler: BD-rate and BD-PSNR of each
against bicubic LR, on Set5 and Set14.

  python docs/experiments/chroma_check.py VAL_FOLDER   (the folder holding Set5/ and Set14/)
"""
import sys, numpy as np
from car_tf import bjontegaard, image_io, pretrained
from car_tf.evaluation.rate_distortion import coded_scores
from car_tf.evaluation.scoring import read_hr
from car_tf.models.bicubic import BicubicUpscaler
from car_tf.protocol import bicubic_downscale_uint8
from car_tf.codecs import JFIF_RGB_TO_YCBCR as M  # JPEG's full-range BT.601 YCbCr
val, codec, Q = sys.argv[1], "jpeg", [30, 50, 70, 90]
for s, name in ((4, "car-x4-fixed-jpeg"), (2, "car-x2-bicubic-jpeg")):
    model, up = pretrained.load_model(name), BicubicUpscaler(s)
    for ds in ("Set5", "Set14"):
        scores = {}
        for path in image_io.list_images([f"{val}/{ds}"], recursive=True):
            hr = read_hr(path, s, [])
            bicubic = bicubic_downscale_uint8(hr, s)
            ours = np.asarray(model.downscale_uint8(hr[None]))[0]
            ycc = np.concatenate([ours @ M[:1].T, bicubic @ M[1:].T], -1)  # our Y, bicubic's CbCr
            hybrid = np.clip(np.rint(ycc @ np.linalg.inv(M).T), 0, 255).astype(np.uint8)
            for row, lr in (("bicubic", bicubic), ("model", ours), ("model Y + bicubic CbCr", hybrid)):
                for q in Q:
                    scores.setdefault(row, {}).setdefault(q, []).append(
                        coded_scores(hr / 255.0, lr, codec, q, up, s, ssim=False))
        curve = {row: ([np.mean([v[2] for v in per[q]]) for q in Q],
                       [np.mean([v[0] for v in per[q]]) for q in Q]) for row, per in scores.items()}
        for row in ("model", "model Y + bicubic CbCr"):
            args = (*curve["bicubic"], *curve[row])
            print(f"x{s} {ds} {name} {row:24s} BD-rate {bjontegaard.bd_rate(*args):+.2f}% "
                  f"BD-PSNR {bjontegaard.bd_psnr(*args):+.3f}", flush=True)
