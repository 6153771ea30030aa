"""car_tf.evaluation.tables (and the pictures an evaluation writes beside them)."""

import csv
import json
import os

import pytest
from PIL import Image

from car_tf import evaluation
from car_tf.evaluation import figures
from evaluation_fixtures import SCALE, bicubic_model, data_dir  # noqa: F401 (fixtures)


def test_tables_and_figures(bicubic_model, data_dir, tmp_path):
    out = tmp_path / "out"
    report = evaluation.evaluate(
        bicubic_model,
        [data_dir],
        figures_count=1,
        spectra=True,
        figures_dir=str(out),
        progress_stream=False,
    )
    paths = evaluation.write_tables(report, str(out), per_image=True)
    dataset = os.path.basename(data_dir)
    stem = out / f"{dataset}_x{SCALE}"
    assert sorted(paths) == sorted(
        str(stem) + s for s in (".md", ".csv", ".json", "_per_image.csv")
    )
    markdown = (out / f"{dataset}_x{SCALE}.md").read_text()
    assert "| car | bicubic |" in markdown and "PSNR-Y" in markdown
    rows = list(csv.DictReader(open(str(stem) + ".csv")))
    assert [(r["downscaler"], r["upscaler"]) for r in rows] == [
        ("bicubic", "bicubic"),
        ("car", "bicubic"),
    ]
    assert float(rows[1]["psnr_y"]) == pytest.approx(report.rows[1].psnr_y)
    saved = json.loads(open(str(stem) + ".json").read())
    assert saved["protocol"] == "standard" and len(saved["per_image"]) == 4
    assert len(list(csv.DictReader(open(str(stem) + "_per_image.csv")))) == 4
    # One comparison and one spectra picture, for the first image (a.png, cropped to 24x16).
    assert [os.path.basename(p) for p in report.figure_paths] == [
        "a_comparison.png",
        "a_spectra.png",
    ]
    comparison = Image.open(report.figure_paths[0])
    panel = 16 * (256 // 16)
    m, line = figures.MARGIN, figures.LINE_HEIGHT
    assert comparison.size == (5 * panel + 6 * m, panel + 3 * line + 3 * m)
    zoom = 256 // 8  # the LR is 12x8
    assert Image.open(report.figure_paths[1]).size == (
        3 * 8 * zoom + 4 * m,
        12 * zoom + 3 * line + 3 * m,
    )
