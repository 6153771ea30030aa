"""Evaluation of a CAR model on folders of HR images: the standard SR tables, and pictures.

For every image of a folder (docs/EVALUATION.md states the protocol in full):
  1. the HR image is cropped, keeping its top-left corner, to a multiple of
     lcm(8, scale) in height and width (what the model needs; 8 for scales 2 and 4,
     the crop of the CAR authors' script);
  2. it is downscaled two ways, each LR image rounded to uint8 as it would be stored:
       "bicubic": tf.image.resize(bicubic, antialias=True), MATLAB imresize's equivalent
                  in the interior;
       "car":     the model's downscale_uint8, exactly as at inference;
  3. each LR image is upscaled by bicubic (car_tf.models.BicubicUpscaler, i.e.
     tf.image.resize bicubic) and, where there is one, by EDSR: the model's own
     upscaler for CAR LR when the model was trained with EDSR, a baseline EDSR
     trained on bicubic LR for bicubic LR;
  4. SR images are clipped and converted to uint8 (rounded; truncated under
     protocol "car_compat", as the authors' script does) and scored against the
     cropped HR with car_tf.metrics, shaving `scale` pixels per border.

Rows are (downscaler, upscaler) pairs; each gets mean PSNR-Y, SSIM-Y and PSNR-RGB over the
folder's images, and the mean PNG bits per pixel of its LR images.
"""

import os

import numpy as np
import tensorflow as tf

from car_tf import image_io, metrics
from car_tf.evaluation import figures, views
from car_tf.evaluation.report import ImageScore, Report, Row
from car_tf.models import BicubicUpscaler, size_multiple
from car_tf.progress import Progress
from car_tf.protocol import (
    bicubic_downscale_uint8,
    crop_for_scale,
    smallest_hr_side,
    sr_to_uint8,
)


class NoImagesError(ValueError):
    """A data folder that holds no readable image."""


def _sr_function(upscaler):
    """LR float [1, h, w, 3] -> SR float, from a CARModel-like object (its `upscale`) or a
    Keras model."""
    if hasattr(upscaler, "upscale"):
        return upscaler.upscale
    return lambda lr: upscaler(lr, training=False)


def pipelines(model, baseline=None, car_rows=True):
    """The rows an evaluation reports: a list of (downscaler, upscaler, sr_fn), where sr_fn maps
    LR float [1, h, w, 3] to SR float.

    bicubic+bicubic always; bicubic+edsr when a baseline (an SR model trained on bicubic LR)
    is given; car+bicubic, and car+edsr when the model's own upscaler is EDSR, unless
    car_rows is False (scoring an SR baseline, whose ResamplerNet was never trained).
    """
    bicubic = BicubicUpscaler(model.scale)
    rows = [("bicubic", "bicubic", bicubic)]
    if baseline is not None:
        baseline_scale = getattr(baseline, "scale", model.scale)
        if baseline_scale != model.scale:
            raise ValueError(
                f"baseline model is for scale {baseline_scale}, "
                f"the CAR model for scale {model.scale}; pass models of one scale"
            )
        rows.append(("bicubic", "edsr", _sr_function(baseline)))
    if car_rows:
        rows.append(("car", "bicubic", bicubic))
        if model.upscaler_name == "edsr":
            rows.append(("car", "edsr", model.upscale))
    return rows


def _skipped_files_note(data_dir, skipped):
    if not skipped:
        return None
    others = sorted(os.path.relpath(path, data_dir) for path in skipped)
    shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
    return f"{data_dir}: skipped {len(others)} non-image or hidden file(s): {shown}"


def evaluate_folder(
    model,
    data_dir,
    protocol="standard",
    baseline=None,
    dataset=None,
    figures_count=0,
    spectra=False,
    figures_dir=None,
    progress_stream=None,
    car_rows=True,
    views_dir=None,
):
    """Scores every image of one folder (recursively); see the module docstring for the pipeline.

    Args:
      model: a CARModel (scale, upscaler_name, downscale_uint8, upscale).
      data_dir: folder of HR images; non-image files are skipped with a note.
      protocol: "standard" or "car_compat" (car_tf.metrics).
      baseline: optional SR model trained on bicubic LR (a CARModel-like object with
        `upscale`, or a Keras model LR float -> SR float) for the bicubic + edsr row.
      dataset: the name in tables; default the folder's base name.
      figures_count: comparison pictures for the first this-many images (sorted by path).
      spectra: also a spectra picture for those images.
      figures_dir: pictures go to figures_dir/<dataset>_x<scale>/ (needed for figures_count).
      progress_stream: text stream for the progress bar; None = stderr, False = no bar.
      car_rows: False leaves out the CAR rows (see `pipelines`).
      views_dir: when given, every image's HR, LR and SR pictures for the HTML report are
        written to views_dir/<dataset>_x<scale>/ (car_tf.evaluation.views) and listed in
        the Report's `views`.

    Returns:
      Report for this folder.

    Raises:
      NoImagesError: the folder holds no image that can be evaluated (readable, large enough).
    """
    if protocol not in metrics.PROTOCOLS:
        raise ValueError(f"protocol must be one of {metrics.PROTOCOLS}, got {protocol!r}")
    if not os.path.isdir(data_dir):
        raise NoImagesError(f"data folder {data_dir} does not exist; pass a folder of HR images")
    if figures_count and not figures_dir:
        raise ValueError("figures need a folder to be written to; pass figures_dir (--out_dir)")
    if figures_count and not car_rows:
        raise ValueError("the comparison pictures show CAR LR; they need the CAR rows")
    scale = model.scale
    dataset = dataset or os.path.basename(os.path.normpath(data_dir))
    rows = pipelines(model, baseline, car_rows)
    skipped = []
    images = image_io.list_images([data_dir], recursive=True, skipped=skipped)
    notes = [note for note in [_skipped_files_note(data_dir, skipped)] if note]
    progress = Progress(len(images), f"{dataset} x{scale}", stream=progress_stream or None,
                        quiet=progress_stream is False)
    scores, figure_paths, image_views = [], [], []
    for path in images:
        name = os.path.relpath(path, data_dir)
        progress.start(name)
        hr = read_hr(path, scale, notes)
        if hr is not None:
            lrs = {"bicubic": bicubic_downscale_uint8(hr, scale)}
            if car_rows:
                lrs["car"] = np.asarray(model.downscale_uint8(hr[np.newaxis]))[0]
            image_scores, srs = _score_image(hr, lrs, rows, protocol, dataset, name, scale)
            if len(scores) // len(rows) < figures_count:
                panels = [
                    figures.Panel(sr, f"{s.downscaler} + {s.upscaler}", f"PSNR-Y {s.psnr_y:.2f} dB")
                    for s, sr in zip(image_scores, srs)
                ]
                figure_paths += figures.save_figures(
                    figures_dir, dataset, scale, name, hr, lrs, image_scores, panels, spectra
                )
            if views_dir:
                image_views.append(
                    views.save_views(views_dir, dataset, scale, name, hr, lrs, srs, image_scores)
                )
            scores += image_scores
        progress.finish()
    progress.close()

    if not scores:
        raise NoImagesError(
            f"data folder {data_dir} holds no image that can be evaluated at "
            f"scale {scale}; pass a folder of PNG/JPEG/WebP/TIFF/BMP HR images"
        )
    return Report(protocol, _aggregate(scores, rows), scores, notes, figure_paths, image_views)


def read_hr(path, scale, notes):
    """The HR image cropped to a multiple of size_multiple(scale), or None (with a note) when
    it can't be read or is too small for the model and the SSIM window."""
    try:
        decoded = image_io.read_image(path)
    except image_io.ImageReadError as error:
        notes.append(f"skipped {error}")
        return None
    notes += [f"{path}: {note}" for note in decoded.notes]
    if decoded.alpha is not None:
        notes.append(f"{path}: alpha channel ignored")
    hr = crop_for_scale(decoded.rgb, scale)
    if hr is None:
        smallest = smallest_hr_side(scale)
        notes.append(
            f"skipped {path}: {decoded.height}x{decoded.width} pixels is too small for "
            f"scale {scale} (needs {smallest}x{smallest} after cropping to a multiple "
            f"of {size_multiple(scale)})"
        )
    return hr

def _score_image(hr, lrs, rows, protocol, dataset, name, scale):
    """Upscales each LR as `rows` say and scores it: (list of ImageScore, list of the uint8 SR
    images, in the same order)."""
    bpp = {down: figures.png_bits_per_pixel(lr) for down, lr in lrs.items()}
    hr01 = hr.astype(np.float64) / 255.0
    scores, srs = [], []
    for down, up, sr_fn in rows:
        lr01 = tf.constant(lrs[down][np.newaxis], tf.float32) / 255.0
        sr = sr_to_uint8(np.asarray(sr_fn(lr01))[0], protocol)
        sr01 = sr.astype(np.float64) / 255.0
        score = ImageScore(
            dataset=dataset,
            scale=scale,
            protocol=protocol,
            downscaler=down,
            upscaler=up,
            psnr_y=float(metrics.psnr_y(hr01, sr01, scale, protocol)),
            ssim_y=float(metrics.ssim_y(hr01, sr01, scale, protocol)),
            psnr_rgb=float(metrics.psnr_rgb(hr01, sr01, scale)),
            lr_bpp=bpp[down],
            image=name,
        )
        scores.append(score)
        srs.append(sr)
    return scores, srs


def _aggregate(scores, rows):
    aggregated = []
    for down, up, _ in rows:
        group = [s for s in scores if s.downscaler == down and s.upscaler == up]
        first = group[0]
        aggregated.append(
            Row(
                dataset=first.dataset,
                scale=first.scale,
                protocol=first.protocol,
                downscaler=down,
                upscaler=up,
                psnr_y=float(np.mean([s.psnr_y for s in group])),
                ssim_y=float(np.mean([s.ssim_y for s in group])),
                psnr_rgb=float(np.mean([s.psnr_rgb for s in group])),
                lr_bpp=float(np.mean([s.lr_bpp for s in group])),
                images=len(group),
            )
        )
    return aggregated


def evaluate(model, data_dirs, protocol="standard", **folder_options):
    """`evaluate_folder` over several folders (dataset name = the folder's base name); returns
    one combined Report. folder_options: evaluate_folder's keyword arguments but `dataset`."""
    names = [os.path.basename(os.path.normpath(path)) for path in data_dirs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"data folders share the base name {duplicates[0]!r}; tables are keyed "
            "by it, rename one"
        )
    report = Report(protocol, [], [], [], [])
    for data_dir in data_dirs:
        part = evaluate_folder(model, data_dir, protocol, **folder_options)
        report.rows += part.rows
        report.per_image += part.per_image
        report.notes += part.notes
        report.figure_paths += part.figure_paths
        report.views += part.views
    return report
