"""What a training run shows: the console line, TensorBoard scalars, images and histograms.

train/ gets each loss term, the learning rate and the step rate; eval/ gets validation
PSNR/SSIM (and the gain over bicubic), HR/LR/SR images and the offsets' histograms.
"""

import datetime
import logging
import math
import os

import numpy as np
import tensorflow as tf

from car_tf import image_io
from car_tf.protocol import bicubic_downscale, crop_for_scale


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(seconds)))


def log_train(writer, step, config, losses, learning_rate, steps_per_sec):
    """The train/ scalars of a step, and its console line (with an ETA)."""
    with writer.as_default(step=step):
        for name, value in losses.items():
            tf.summary.scalar(f"loss/{name}", value)
        tf.summary.scalar("learning_rate", learning_rate)
        if math.isfinite(steps_per_sec):
            tf.summary.scalar("steps_per_sec", steps_per_sec)
            tf.summary.scalar("examples_per_sec", steps_per_sec * config.batch_size)
    eta = (config.steps - step) / steps_per_sec if steps_per_sec > 0 else float("nan")
    terms = " ".join(f"{name}={value:.5f}" for name, value in losses.items())
    logging.info(
        "step %d/%d %s lr=%.3g %.2f steps/s ETA %s",
        step, config.steps, terms, learning_rate, steps_per_sec, format_duration(eta),
    )


def log_eval(writer, step, config, scores, images, offsets):
    """The eval/ scalars, images and histograms of a validation, and its console lines."""
    with writer.as_default(step=step):
        for set_name, score in scores.items():
            gain = score["psnr_y"] - score["psnr_y_bicubic"]
            for name, value in score.items():
                tf.summary.scalar(f"{name}/{set_name}", value)
            tf.summary.scalar(f"psnr_y_gain/{set_name}", gain)
            logging.info(
                "eval step %d %s: PSNR(Y) %.3f dB, bicubic/bicubic %.3f, gain %+.3f; SSIM(Y) %.4f",
                step, set_name, score["psnr_y"], score["psnr_y_bicubic"], gain, score["ssim_y"],
            )
        for name, hr, lr, sr in images:
            tf.summary.image(f"{name}/hr", hr)
            tf.summary.image(f"{name}/lr", lr)
            tf.summary.image(f"{name}/sr", sr)
        for name, values in offsets.items():
            tf.summary.histogram(name, values)


def summary_images(model, config):
    """HR, LR and SR images and offsets of the first config.summary_images images of the
    first validation folder, for TensorBoard.

    Returns:
      (images: list of (name, hr, lr, sr), each float [1,h,w,3] in [0,1];
       offsets: dict "offsets_x"/"offsets_y" -> flat array, empty for sr_baseline).
    """
    images, offsets = [], {"offsets_x": [], "offsets_y": []}
    if not config.val_dirs or config.summary_images < 1:
        return images, {}
    for path in image_io.list_images(config.val_dirs[:1])[: config.summary_images]:
        try:
            rgb = image_io.read_image(path).rgb
        except image_io.ImageReadError:
            continue  # validation has noted it
        cropped = crop_for_scale(rgb, config.scale)
        if cropped is None:
            continue  # too small: validation has noted it too
        hr = cropped[np.newaxis].astype(np.float32) / 255.0
        if config.mode == "car":
            outputs = model(hr, training=False)
            lr, sr = outputs["lr"], outputs["sr"]
            for key in offsets:
                if key in outputs:  # a fixed kernel has no offsets
                    offsets[key].append(np.asarray(outputs[key]).ravel())
        else:
            lr = bicubic_downscale(hr, config.scale)
            sr = model.upscale(lr, training=False)
        name = os.path.splitext(os.path.basename(path))[0]
        images.append((name, hr, np.asarray(lr), np.clip(np.asarray(sr), 0.0, 1.0)))
    return images, {key: np.concatenate(values) for key, values in offsets.items() if values}
