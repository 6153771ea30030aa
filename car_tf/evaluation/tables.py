"""An evaluation report as tables: Markdown for reading, CSV and JSON for tools."""

import csv
import dataclasses
import io
import json
import os

from car_tf.evaluation.report import Report


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
