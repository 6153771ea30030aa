"""Validation during training, and keeping the best-validated weights.

Scores come from car_tf.evaluation (the evaluation protocol: Y channel, SR rounded to
8 bits, shave = scale), so a run's curves and its final table agree.
"""

import json
import logging
import math
import os

from car_tf import evaluation
from car_tf.train.model_dir import BEST_DIR, BEST_JSON, BEST_WEIGHTS, write_json


def validate(model, config):
    """Scores of the model on config.val_dirs, next to bicubic down + bicubic up.

    Returns:
      dict set name -> {"psnr_y", "ssim_y", "psnr_y_bicubic", "ssim_y_bicubic"}.
    """
    if config.mode == "car":
        ours, baseline = ("car", config.model["upscaler"]), None
    else:
        ours, baseline = ("bicubic", "edsr"), model
    report = evaluation.evaluate(model, config.val_dirs, baseline=baseline, progress_stream=False)
    scores = {}
    for row in report.rows:
        entry = scores.setdefault(row.dataset, {})
        if (row.downscaler, row.upscaler) == ours:
            entry.update(psnr_y=row.psnr_y, ssim_y=row.ssim_y)
        if (row.downscaler, row.upscaler) == ("bicubic", "bicubic"):
            entry.update(psnr_y_bicubic=row.psnr_y, ssim_y_bicubic=row.ssim_y)
    return scores


def keep_if_best(model, config, step, scores):
    """Writes the model's weights to model_dir/best/ when the first validation set's PSNR-Y
    beats every earlier validation of this run (restarts included). Returns True if it did."""
    if not scores:
        return False
    dataset, first = next(iter(scores.items()))
    if "psnr_y" not in first or not math.isfinite(first["psnr_y"]):
        return False
    best_dir = os.path.join(config.model_dir, BEST_DIR)
    record = os.path.join(best_dir, BEST_JSON)
    if os.path.isfile(record):
        with open(record) as handle:
            if json.load(handle)["psnr_y"] >= first["psnr_y"]:
                return False
    os.makedirs(best_dir, exist_ok=True)
    # Write beside, then rename: a kill mid-write never leaves a half-written best.
    partial = os.path.join(best_dir, "partial." + BEST_WEIGHTS)
    model.save_weights(partial)
    os.replace(partial, os.path.join(best_dir, BEST_WEIGHTS))
    write_json(record, {"step": int(step), "dataset": dataset, "psnr_y": first["psnr_y"],
                        "scores": scores})
    logging.info("best validation so far (%s PSNR-Y %.3f dB at step %d): weights in %s",
                 dataset, first["psnr_y"], step, best_dir)
    return True
