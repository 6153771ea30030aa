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

import csv
import dataclasses
import io
import json
import math
import os
import sys

import numpy as np
import tensorflow as tf

from car_tf import figures, image_io, metrics
from car_tf.models import BicubicUpscaler, min_hr_size, size_multiple

CSV_COLUMNS = (
    "dataset",
    "scale",
    "protocol",
    "downscaler",
    "upscaler",
    "psnr_y",
    "ssim_y",
    "psnr_rgb",
    "lr_bpp",
    "images",
)
PER_IMAGE_COLUMNS = ("dataset", "image", *CSV_COLUMNS[1:-1])


class NoImagesError(ValueError):
    """A data folder that holds no readable image."""


@dataclasses.dataclass
class Scores:
    """Scores of one (downscaler, upscaler) pair: PSNRs in dB, lr_bpp in bits per LR pixel
    of the LR image stored as an optimised PNG."""

    dataset: str
    scale: int
    protocol: str
    downscaler: str
    upscaler: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    lr_bpp: float


@dataclasses.dataclass
class ImageScore(Scores):
    """The scores of one image (`image`: its path relative to the data folder)."""

    image: str = ""


@dataclasses.dataclass
class Row(Scores):
    """Means over a dataset's `images` images."""

    images: int = 0

    def as_json(self):
        """The JSON result row: dataset, scale, downscaler, upscaler, psnr_y, ssim_y, psnr_rgb,
        lr_bpp, images."""
        row = _json_record(self)
        del row["protocol"]  # stated once, at the top of the JSON object
        return row


def _json_record(record):
    """A dataclass as a dict for JSON; +inf (PSNR of identical images) becomes null, since
    strict JSON has no infinity."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in dataclasses.asdict(record).items()
    }


@dataclasses.dataclass
class Report:
    """Everything an evaluation produced; `notes` are one-line remarks (skipped files,
    conversions)."""

    protocol: str
    rows: list
    per_image: list
    notes: list
    figure_paths: list

    def as_json(self, per_image=False):
        result = {"protocol": self.protocol, "results": [row.as_json() for row in self.rows]}
        if per_image:
            result["per_image"] = [_json_record(score) for score in self.per_image]
        return result


class Progress:
    """A one-line progress bar on a text stream: redrawn in place on a terminal, one line per
    step otherwise (log files)."""

    def __init__(self, total, label, stream=None, width=24):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()

    def step(self, item):
        self.done += 1
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {self.done}/{self.total} {item}"
        if self.interactive:
            self.stream.write("\r\x1b[K" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def crop_to_multiple(image, multiple):
    """The top-left [H - H % multiple, W - W % multiple] part of an [H, W, C] image."""
    height, width = image.shape[:2]
    return image[: height - height % multiple, : width - width % multiple]


def sr_to_uint8(sr, protocol):
    """Float SR [..., 3] -> uint8: clipped to [0, 1], times 255, then rounded ("standard") or
    truncated ("car_compat")."""
    if protocol == "car_compat":
        # The authors' script converts with np.uint8(clamp(x, 0, 1) * 255) in float32,
        # which truncates.
        scaled = np.clip(np.asarray(sr, np.float32), 0.0, 1.0) * np.float32(255.0)
        return scaled.astype(np.uint8)
    return np.round(np.clip(np.asarray(sr, np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def psnr_y_of_float_sr(hr_uint8, sr, scale):
    """PSNR-Y (standard protocol, shave = scale) of one float SR image [1, H, W, 3] in
    [0, 1] against its uint8 HR [H, W, 3], converted to 8 bits as evaluate() does."""
    return float(metrics.psnr_y(hr_uint8, sr_to_uint8(np.asarray(sr)[0], "standard"), scale))


def bicubic_downscale_uint8(hr_uint8, scale):
    """uint8 [H, W, 3] -> uint8 [H/scale, W/scale, 3] by antialiased bicubic resizing, rounded."""
    height, width = hr_uint8.shape[:2]
    hr = tf.constant(hr_uint8[np.newaxis], tf.float32) / 255.0
    lr = tf.image.resize(hr, [height // scale, width // scale], method="bicubic", antialias=True)
    return np.round(np.clip(lr.numpy()[0], 0.0, 1.0) * 255.0).astype(np.uint8)


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


def _skipped_files_note(data_dir, images):
    listed = {os.path.abspath(path) for path in images}
    others = []
    for root, _, names in os.walk(data_dir):
        others += [
            os.path.relpath(os.path.join(root, name), data_dir)
            for name in names
            if os.path.abspath(os.path.join(root, name)) not in listed
        ]
    if not others:
        return None
    shown = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
    return f"{data_dir}: skipped {len(others)} non-image or hidden file(s): {shown}"


def _write_png(path, pil_image):
    image_io.write_image(path, np.asarray(pil_image.convert("RGB")))


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
    images = image_io.list_images([data_dir], recursive=True)
    notes = [note for note in [_skipped_files_note(data_dir, images)] if note]
    progress = None
    if progress_stream is not False:
        progress = Progress(len(images), f"{dataset} x{scale}", progress_stream)

    scores, figure_paths, figured = [], [], 0
    for path in images:
        name = os.path.relpath(path, data_dir)
        if progress:
            progress.step(name)
        hr = _read_hr(path, scale, notes)
        if hr is None:
            continue
        lrs = {"bicubic": bicubic_downscale_uint8(hr, scale)}
        if car_rows:
            lrs["car"] = np.asarray(model.downscale_uint8(hr[np.newaxis]))[0]
        image_scores, panels = _score_image(hr, lrs, rows, protocol, dataset, name, scale)
        scores += image_scores
        if figured < figures_count:
            figure_paths += _save_figures(
                figures_dir, dataset, scale, name, hr, lrs, image_scores, panels, spectra
            )
            figured += 1

    if not scores:
        raise NoImagesError(
            f"data folder {data_dir} holds no image that can be evaluated at "
            f"scale {scale}; pass a folder of PNG/JPEG/WebP/TIFF/BMP HR images"
        )
    return Report(protocol, _aggregate(scores, rows), scores, notes, figure_paths)


def _read_hr(path, scale, notes):
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
    multiple = size_multiple(scale)
    smallest = max(min_hr_size(scale), metrics.SSIM_WINDOW + 2 * scale)
    hr = crop_to_multiple(decoded.rgb, multiple)
    if min(hr.shape[:2]) < smallest:
        notes.append(
            f"skipped {path}: {decoded.height}x{decoded.width} pixels is too small for "
            f"scale {scale} (needs {smallest}x{smallest} after cropping to a multiple "
            f"of {multiple})"
        )
        return None
    return hr


def _score_image(hr, lrs, rows, protocol, dataset, name, scale):
    """Upscales each LR as `rows` say and scores it: (list of ImageScore, list of figures.Panel)."""
    bpp = {down: figures.png_bits_per_pixel(lr) for down, lr in lrs.items()}
    hr01 = hr.astype(np.float64) / 255.0
    scores, panels = [], []
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
        panels.append(figures.Panel(sr, f"{down} + {up}", f"PSNR-Y {score.psnr_y:.2f} dB"))
    return scores, panels


def _save_figures(figures_dir, dataset, scale, name, hr, lrs, scores, panels, spectra):
    """Writes <image>_comparison.png (and _spectra.png); returns their paths."""
    folder = os.path.join(figures_dir, f"{dataset}_x{scale}")
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(name)[0].replace(os.sep, "_")
    bpp = {score.downscaler: score.lr_bpp for score in scores}
    title = (
        f"{dataset}/{name} x{scale}: LR PNG bpp bicubic {bpp['bicubic']:.2f}, "
        f"CAR {bpp['car']:.2f}"
    )
    comparison = figures.comparison_figure(hr, lrs["bicubic"], lrs["car"], panels, scale, title)
    paths = [os.path.join(folder, f"{stem}_comparison.png")]
    _write_png(paths[0], comparison)
    if spectra:
        images = [("HR", hr), ("bicubic LR", lrs["bicubic"]), ("CAR LR", lrs["car"])]
        picture = figures.spectra_figure(images, f"{dataset}/{name} x{scale}: log |FFT| of luma")
        paths.append(os.path.join(folder, f"{stem}_spectra.png"))
        _write_png(paths[1], picture)
    return paths


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


def evaluate(
    model,
    data_dirs,
    protocol="standard",
    baseline=None,
    figures_count=0,
    spectra=False,
    figures_dir=None,
    progress_stream=None,
    car_rows=True,
):
    """`evaluate_folder` over several folders (dataset name = the folder's base name); returns
    one combined Report."""
    names = [os.path.basename(os.path.normpath(path)) for path in data_dirs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"data folders share the base name {duplicates[0]!r}; tables are keyed "
            "by it, rename one"
        )
    report = Report(protocol, [], [], [], [])
    for data_dir in data_dirs:
        part = evaluate_folder(
            model,
            data_dir,
            protocol,
            baseline,
            None,
            figures_count,
            spectra,
            figures_dir,
            progress_stream,
            car_rows,
        )
        report.rows += part.rows
        report.per_image += part.per_image
        report.notes += part.notes
        report.figure_paths += part.figure_paths
    return report


def markdown(report):
    """One Markdown table per dataset and scale."""
    sections = []
    for dataset, scale in dict.fromkeys((row.dataset, row.scale) for row in report.rows):
        rows = [row for row in report.rows if (row.dataset, row.scale) == (dataset, scale)]
        lines = [
            f"### {dataset} x{scale} (protocol {report.protocol}, {rows[0].images} images)",
            "",
            "| downscaler | upscaler | PSNR-Y (dB) | SSIM-Y | PSNR-RGB (dB) | LR PNG bpp |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r.downscaler} | {r.upscaler} | {r.psnr_y:.2f} | {r.ssim_y:.4f} | "
            f"{r.psnr_rgb:.2f} | {r.lr_bpp:.2f} |"
            for r in rows
        ]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _csv_text(records, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        record = dataclasses.asdict(record)
        writer.writerow({key: record[key] for key in columns})
    return buffer.getvalue()


def write_tables(report, out_dir, per_image=False):
    """Writes <dataset>_x<scale>.{md,csv,json} (and _per_image.csv) into out_dir; returns the
    paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for dataset, scale in dict.fromkeys((row.dataset, row.scale) for row in report.rows):
        part = Report(
            report.protocol,
            [r for r in report.rows if (r.dataset, r.scale) == (dataset, scale)],
            [s for s in report.per_image if (s.dataset, s.scale) == (dataset, scale)],
            [],
            [],
        )
        stem = os.path.join(out_dir, f"{dataset}_x{scale}")
        contents = {
            ".md": markdown(part),
            ".csv": _csv_text(part.rows, CSV_COLUMNS),
            ".json": json.dumps(part.as_json(per_image), indent=2, allow_nan=False) + "\n",
        }
        if per_image:
            contents["_per_image.csv"] = _csv_text(part.per_image, PER_IMAGE_COLUMNS)
        for suffix, text in contents.items():
            with open(stem + suffix, "w") as handle:
                handle.write(text)
            paths.append(stem + suffix)
    return paths
