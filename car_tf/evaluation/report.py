"""What an evaluation produces: scores per image, means per dataset, and the whole report."""

import dataclasses
import math


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
    conversions); `views` the evaluation.views.ImageViews written for an HTML report."""

    protocol: str
    rows: list
    per_image: list
    notes: list
    figure_paths: list
    views: list = dataclasses.field(default_factory=list)

    def as_json(self, per_image=False):
        result = {"protocol": self.protocol, "results": [row.as_json() for row in self.rows]}
        if per_image:
            result["per_image"] = [_json_record(score) for score in self.per_image]
        return result
