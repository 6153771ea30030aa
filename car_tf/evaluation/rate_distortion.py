"""Rate-distortion evaluation: every LR image goes through a real codec before upscaling.

For each HR image of a folder (cropped to a multiple of lcm(8, scale), as the standard
evaluation does), each downscaler makes an 8-bit LR image:
  "bicubic"  the protocol's antialiased bicubic (car_tf.protocol), the reference;
  "lanczos"  Pillow's Lanczos resize (what many photo pipelines call);
  "car"      the evaluated model's downscale_uint8; further models and fixed kernels
             come in under their own names.
Each LR image is encoded at every quality with the real codec through Pillow
(car_tf.codecs: JPEG 4:2:0 with the standard tables, or lossy WebP), decoded, upscaled
(bicubic, and the model's EDSR for its own LR when it has one) and scored with the
standard protocol (PSNR-Y and SSIM-Y on 8-bit SR, shave = scale).

Rate is the encoded file's bytes x 8 / HR pixels (bits per HR pixel). A row's rate and
scores are means over the folder's images. Bjontegaard deltas (car_tf.bjontegaard) compare
each downscaler's curve with every other one's under the same upscaler; tables show
them against bicubic.
"""

import dataclasses
import json
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from car_tf import bjontegaard, codecs, image_io, metrics
from car_tf.evaluation.scoring import NoImagesError, read_hr
from car_tf.models import BicubicUpscaler
from car_tf.protocol import bicubic_downscale_uint8, sr_to_uint8

REFERENCE = "bicubic"


@dataclasses.dataclass
class RDPoint:
    """Mean scores of one (downscaler, upscaler) pair at one quality over a dataset's
    `images` images. bpp: bits per HR pixel of the encoded LR file."""

    dataset: str
    scale: int
    codec: str
    quality: int
    downscaler: str
    upscaler: str
    psnr_y: float
    ssim_y: float
    bpp: float
    images: int


@dataclasses.dataclass
class BDDelta:
    """Bjontegaard deltas of `downscaler` against `reference`, both under `upscaler`:
    bd_rate in percent (negative = fewer bits at equal PSNR-Y), bd_psnr in dB."""

    dataset: str
    scale: int
    codec: str
    upscaler: str
    downscaler: str
    reference: str
    bd_rate: float
    bd_psnr: float


@dataclasses.dataclass
class RDReport:
    codec: str
    qualities: list
    points: list
    deltas: list
    notes: list
    plot_paths: list = dataclasses.field(default_factory=list)

    def as_json(self):
        """{"codec", "qualities", "points": [...], "bd": [...], "notes"}; NaN becomes null."""
        def record(item):
            return {key: None if isinstance(value, float) and not math.isfinite(value) else value
                    for key, value in dataclasses.asdict(item).items()}

        return {"codec": self.codec, "qualities": list(self.qualities),
                "points": [record(point) for point in self.points],
                "bd": [record(delta) for delta in self.deltas], "notes": list(self.notes)}


def lanczos_downscale_uint8(hr_uint8, scale):
    """uint8 [H, W, 3] -> uint8 [H/scale, W/scale, 3] by Pillow's (antialiased) Lanczos."""
    height, width = hr_uint8.shape[:2]
    image = Image.fromarray(hr_uint8, "RGB")
    return np.asarray(image.resize((width // scale, height // scale), Image.Resampling.LANCZOS))


def _model_downscaler(model):
    return lambda hr: np.asarray(model.downscale_uint8(hr[np.newaxis]))[0]


def downscalers(model, extra=()):
    """[(name, hr uint8 -> lr uint8)]: bicubic, lanczos, the model's ("car"), then `extra`,
    a sequence of (name, model-like with downscale_uint8)."""
    rows = [
        (REFERENCE, lambda hr: bicubic_downscale_uint8(hr, model.scale)),
        ("lanczos", lambda hr: lanczos_downscale_uint8(hr, model.scale)),
        ("car", _model_downscaler(model)),
    ]
    names = {name for name, _ in rows}
    for name, other in extra:
        if name in names:
            raise ValueError(f"two downscalers are named {name!r}; give each its own name")
        if other.scale != model.scale:
            raise ValueError(f"downscaler {name!r} is for scale {other.scale}, the model for "
                             f"{model.scale}; compare models of one scale")
        names.add(name)
        rows.append((name, _model_downscaler(other)))
    return rows


def coded_scores(hr01, lr_uint8, codec, quality, upscale, scale, ssim=True):
    """One LR image through the real codec, then upscaled and scored against its HR:
    (PSNR-Y, SSIM-Y or NaN when not `ssim`, bits per HR pixel).

    hr01: float64 [H, W, 3] HR in [0, 1]; lr_uint8: [H/s, W/s, 3]; upscale: float32
    [1, h, w, 3] LR in [0, 1] -> SR tensor (a BicubicUpscaler, or a model's upscale)."""
    decoded, size = codecs.compress(lr_uint8, codec, quality)
    lr01 = tf.constant(decoded[np.newaxis], tf.float32) / 255.0
    sr01 = sr_to_uint8(np.asarray(upscale(lr01))[0], "standard") / 255.0
    return (float(metrics.psnr_y(hr01, sr01, scale)),
            float(metrics.ssim_y(hr01, sr01, scale)) if ssim else float("nan"),
            8.0 * size / (hr01.shape[0] * hr01.shape[1]))


def evaluate_folder(model, data_dir, codec, qualities, extra=(), dataset=None, progress=None):
    """Rate-distortion points of one folder; see the module docstring.

    Args:
      model: a CARModel (scale, upscaler_name, downscale_uint8, upscale).
      data_dir: folder of HR images (recursive).
      codec, qualities: a lossy codec of car_tf.codecs and its qualities (1..100).
      extra: (name, model) pairs whose downscale_uint8 are compared too (plain CAR
        models, fixed kernels), each upscaled by bicubic.
      dataset: the name in tables; default the folder's base name.
      progress: optional callable(name) called once per image.

    Returns:
      (list of RDPoint, notes).
    """
    codecs.check_codec(codec, qualities)
    if codec == "png":
        raise codecs.CodecError("rate-distortion evaluation needs a lossy codec (jpeg or webp)")
    if not os.path.isdir(data_dir):
        raise NoImagesError(f"data folder {data_dir} does not exist; pass a folder of HR images")
    scale = model.scale
    dataset = dataset or os.path.basename(os.path.normpath(data_dir))
    bicubic = BicubicUpscaler(scale)
    rows = downscalers(model, extra)
    notes, samples = [], {}
    paths = image_io.list_images([data_dir], recursive=True)
    for path in paths:
        if progress:
            progress(os.path.relpath(path, data_dir))
        hr = read_hr(path, scale, notes)
        if hr is None:
            continue
        hr01 = hr.astype(np.float64) / 255.0
        for name, downscale in rows:
            lr = downscale(hr)
            upscalers = [("bicubic", bicubic)]
            if name == "car" and model.upscaler_name == "edsr":
                upscalers.append(("edsr", model.upscale))
            for quality in qualities:
                for up_name, upscale in upscalers:
                    samples.setdefault((name, up_name, int(quality)), []).append(
                        coded_scores(hr01, lr, codec, quality, upscale, scale))
    if not samples:
        raise NoImagesError(f"data folder {data_dir} holds no image that can be evaluated at "
                            f"scale {scale}; pass a folder of PNG/JPEG/WebP/TIFF/BMP HR images")
    points = []
    for (name, up_name, quality), values in samples.items():
        psnr, ssim, bpp = np.mean(np.array(values), axis=0)
        points.append(RDPoint(dataset, scale, codec, quality, name, up_name, float(psnr),
                              float(ssim), float(bpp), len(values)))
    return points, notes


def bd_deltas(points):
    """Every downscaler's Bjontegaard deltas against every other one, per (dataset, scale,
    codec, upscaler); pairs whose curves don't overlap get NaN."""
    deltas = []
    groups = {}
    for point in points:
        key = (point.dataset, point.scale, point.codec, point.upscaler)
        groups.setdefault(key, {}).setdefault(point.downscaler, []).append(point)
    for (dataset, scale, codec, upscaler), curves in groups.items():
        for name, curve in curves.items():
            for reference, reference_curve in curves.items():
                if name == reference or len(curve) < bjontegaard.MIN_POINTS:
                    continue
                args = ([p.bpp for p in reference_curve], [p.psnr_y for p in reference_curve],
                        [p.bpp for p in curve], [p.psnr_y for p in curve])
                try:
                    rate, psnr = bjontegaard.bd_rate(*args), bjontegaard.bd_psnr(*args)
                except bjontegaard.NoOverlapError:
                    rate = psnr = float("nan")
                deltas.append(BDDelta(dataset, scale, codec, upscaler, name, reference, rate, psnr))
    return deltas


def evaluate(model, data_dirs, codec, qualities, extra=(), progress=None):
    """evaluate_folder over several folders, with the Bjontegaard deltas: an RDReport."""
    points, notes = [], []
    for data_dir in data_dirs:
        folder_points, folder_notes = evaluate_folder(model, data_dir, codec, qualities, extra,
                                                      progress=progress)
        points += folder_points
        notes += folder_notes
    return RDReport(codec, sorted(int(q) for q in qualities), points, bd_deltas(points), notes)


def _groups(report):
    return dict.fromkeys((p.dataset, p.scale, p.upscaler) for p in report.points)


def markdown(report):
    """Per dataset and upscaler: a table per quality and the BD deltas against bicubic."""
    sections = []
    for dataset, scale, upscaler in _groups(report):
        points = [p for p in report.points
                  if (p.dataset, p.scale, p.upscaler) == (dataset, scale, upscaler)]
        lines = [f"### {dataset} x{scale}, {report.codec}, {upscaler} upscaler "
                 f"({points[0].images} images)", ""]
        for quality in report.qualities:
            lines += [f"Quality {quality}:", "",
                      "| downscaler | PSNR-Y (dB) | SSIM-Y | bits per HR pixel |",
                      "|---|---:|---:|---:|"]
            lines += [f"| {p.downscaler} | {p.psnr_y:.2f} | {p.ssim_y:.4f} | {p.bpp:.4f} |"
                      for p in points if p.quality == quality]
            lines.append("")
        deltas = [d for d in report.deltas
                  if (d.dataset, d.scale, d.upscaler, d.reference)
                  == (dataset, scale, upscaler, REFERENCE)]
        if deltas:
            lines += [f"Bjontegaard deltas against {REFERENCE}, qualities "
                      f"{', '.join(map(str, report.qualities))}:", "",
                      "| downscaler | BD-rate | BD-PSNR (dB) |", "|---|---:|---:|"]
            lines += [f"| {d.downscaler} | {d.bd_rate:+.1f}% | {d.bd_psnr:+.3f} |" for d in deltas]
        sections.append("\n".join(lines).rstrip())
    return "\n\n".join(sections) + "\n"


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def rd_plot(points, title, size=(640, 440)):
    """A PIL image: PSNR-Y against bits per HR pixel (log axis), a line per downscaler."""
    width, height = size
    left, right, top, bottom = 64, 150, 30, 46
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    rates = np.log10([p.bpp for p in points])
    psnrs = np.array([p.psnr_y for p in points])
    rate_low, rate_high = rates.min() - 0.02, rates.max() + 0.02
    psnr_low, psnr_high = psnrs.min() - 0.2, psnrs.max() + 0.2

    def place(bpp, psnr):
        x = left + (math.log10(bpp) - rate_low) / (rate_high - rate_low) * (width - left - right)
        y = height - bottom - (psnr - psnr_low) / (psnr_high - psnr_low) * (height - top - bottom)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for tick in np.linspace(psnr_low, psnr_high, 5):
        _, y = place(10**rate_low, tick)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((4, y - 6), f"{tick:.2f}", fill="black", font=font)
    for tick in np.linspace(rate_low, rate_high, 5):
        x, _ = place(10**tick, psnr_low)
        draw.line([x, height - bottom, x, height - bottom + 4], fill="black")
        draw.text((x - 14, height - bottom + 8), f"{10**tick:.3f}", fill="black", font=font)
    draw.text((left, height - 18), "bits per HR pixel (log scale)", fill="black", font=font)
    draw.text((4, 8), f"PSNR-Y (dB)   {title}", fill="black", font=font)
    names = list(dict.fromkeys(p.downscaler for p in points))
    for index, name in enumerate(names):
        colour = _COLOURS[index % len(_COLOURS)]
        curve = sorted((p for p in points if p.downscaler == name), key=lambda p: p.bpp)
        xy = [place(p.bpp, p.psnr_y) for p in curve]
        draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        legend_y = top + 16 * index
        draw.line([width - right + 10, legend_y + 6, width - right + 30, legend_y + 6],
                  fill=colour, width=2)
        draw.text((width - right + 36, legend_y), name, fill="black", font=font)
    return image


def write(report, out_dir):
    """Writes <dataset>_x<scale>_<codec>.md and .json and an RD plot per upscaler
    (<dataset>_x<scale>_<codec>_<upscaler>.png) into out_dir; returns the paths."""
    import json

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for dataset, scale in dict.fromkeys((p.dataset, p.scale) for p in report.points):
        def mine(item):
            return (item.dataset, item.scale) == (dataset, scale)

        part = RDReport(report.codec, report.qualities,
                        [p for p in report.points if mine(p)],
                        [d for d in report.deltas if mine(d)], report.notes)
        stem = os.path.join(out_dir, f"{dataset}_x{scale}_{report.codec}")
        for suffix, text in ((".md", markdown(part)),
                             (".json", json.dumps(part.as_json(), indent=2) + "\n")):
            with open(stem + suffix, "w") as handle:
                handle.write(text)
            paths.append(stem + suffix)
        for upscaler in dict.fromkeys(p.upscaler for p in part.points):
            curve_points = [p for p in part.points if p.upscaler == upscaler]
            plot = rd_plot(curve_points, f"{dataset} x{scale} {report.codec}, {upscaler} up")
            path = f"{stem}_{upscaler}.png"
            image_io.write_image(path, np.asarray(plot))
            paths.append(path)
            report.plot_paths.append(path)
    return paths
