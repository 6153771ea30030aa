"""The pictures an HTML report shows of one evaluated image: HR, every LR and every SR.

They are written beside the page (car_tf.evaluation.html_report) as lossless PNG, the exact
8-bit images that were scored. The report's zoom is for the pixel differences between
pipelines, and a lossy copy would be as large as they are: on Set14 x4, a JPEG q95 4:4:4
copy of an SR image is 0.9-1.5 levels RMS from it, while bicubic and CAR LR under one
upscaler give SR images 0.6-2.0 levels RMS apart. PNG at zlib level 1 is about 4x faster to
write than Pillow's default level 6 and about 5% bigger. A Set14 report with four pipelines
is 22.7 MB at x4 and 27.8 MB at x2 (docs/EVALUATION.md).
"""

import dataclasses
import os

from car_tf import image_io
from car_tf.evaluation import figures

PNG_COMPRESS_LEVEL = 1
# The pictures' folder beside a report page (tools/evaluate.py) or a model's demo folder.
VIEWS_FOLDER = "report_images"


@dataclasses.dataclass
class Picture:
    """One picture of an image. kind: "hr", "lr" or "sr"; label: what it is ("HR",
    "bicubic LR", "car + edsr"); path: the PNG written; width, height: its pixels; the
    scores are the SR's (None for HR and LR); lr_bpp: an LR's lossless PNG bits per pixel."""

    kind: str
    label: str
    path: str
    width: int
    height: int
    downscaler: str = ""
    upscaler: str = ""
    psnr_y: float | None = None
    ssim_y: float | None = None
    lr_bpp: float | None = None


@dataclasses.dataclass
class ImageViews:
    """The pictures of one evaluated image: HR first, then the LR per downscaler, then the
    SR per (downscaler, upscaler) row. centre: (x, y) in HR pixels of the most detailed
    region (figures.crop_box), where the report's zoom starts."""

    dataset: str
    scale: int
    image: str
    pictures: list
    centre: tuple


def save_views(views_dir, dataset, scale, name, hr, lrs, srs, scores):
    """Writes the display copies of one image to views_dir/<dataset>_x<scale>/.

    Args:
      hr: uint8 [H, W, 3]; lrs: {downscaler: uint8 [H/scale, W/scale, 3]};
      srs: uint8 [H, W, 3] SR images, one per score, in the same order;
      scores: the image's ImageScores (downscaler, upscaler, psnr_y, ssim_y, lr_bpp).

    Returns:
      ImageViews.

    Raises:
      image_io.ImageWriteError: a file can't be written.
    """
    folder = os.path.join(views_dir, f"{dataset}_x{scale}")
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, os.path.splitext(name)[0].replace(os.sep, "_"))
    bpp = {score.downscaler: score.lr_bpp for score in scores}

    def picture(kind, label, suffix, image, **fields):
        path = f"{stem}_{suffix}"
        image_io.write_image(path, image, png_compress_level=PNG_COMPRESS_LEVEL)
        return Picture(kind, label, path, image.shape[1], image.shape[0], **fields)

    pictures = [picture("hr", "HR", "hr.png", hr)]
    pictures += [
        picture("lr", f"{down} LR", f"lr_{down}.png", lr, downscaler=down, lr_bpp=bpp.get(down))
        for down, lr in lrs.items()
    ]
    pictures += [
        picture("sr", f"{s.downscaler} + {s.upscaler}", f"sr_{s.downscaler}_{s.upscaler}.png",
                sr, downscaler=s.downscaler, upscaler=s.upscaler, psnr_y=s.psnr_y,
                ssim_y=s.ssim_y)
        for s, sr in zip(scores, srs, strict=True)
    ]
    top, left, size = figures.crop_box(hr, scale)
    return ImageViews(dataset, scale, name, pictures, (left + size // 2, top + size // 2))
