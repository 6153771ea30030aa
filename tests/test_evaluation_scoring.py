"""car_tf.evaluation.scoring on a tmp folder of tiny images with tiny models, and
tools/evaluate.py --json."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from car_tf import evaluation, metrics
from car_tf.models import build_car_model, default_config
from car_tf.protocol import bicubic_downscale_uint8, crop_to_multiple, sr_to_uint8
from evaluation_fixtures import (  # noqa: F401 (fixtures)
    SCALE,
    bicubic_model,
    bicubic_report,
    data_dir,
    edsr_model,
    smooth_image,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scores(hr, sr, protocol="standard"):
    hr01, sr01 = hr / 255.0, sr / 255.0
    return (
        float(metrics.psnr_y(hr01, sr01, SCALE, protocol)),
        float(metrics.ssim_y(hr01, sr01, SCALE, protocol)),
        float(metrics.psnr_rgb(hr01, sr01, SCALE)),
    )


def _bicubic_up(lr_uint8):
    lr = tf.constant(lr_uint8[None], tf.float32) / 255.0
    up = tf.image.resize(
        lr, [lr_uint8.shape[0] * SCALE, lr_uint8.shape[1] * SCALE], method="bicubic"
    )
    return np.round(np.clip(up.numpy()[0], 0, 1) * 255).astype(np.uint8)


def test_rows_counts_and_notes(bicubic_report, data_dir):
    pairs = [(row.downscaler, row.upscaler) for row in bicubic_report.rows]
    assert pairs == [("bicubic", "bicubic"), ("car", "bicubic")]
    assert all(
        row.images == 2 and row.dataset == os.path.basename(data_dir) for row in bicubic_report.rows
    )
    assert {score.image for score in bicubic_report.per_image} == {"a.png", "b.png"}
    notes = "\n".join(bicubic_report.notes)
    assert "README.txt" in notes and "broken.png" in notes


def test_bicubic_row_reproduces_the_protocol_by_hand(bicubic_report, data_dir):
    hr = np.asarray(Image.open(os.path.join(data_dir, "a.png")))[:24, :16]
    lr = tf.image.resize(
        tf.constant(hr[None], tf.float32) / 255.0, [12, 8], method="bicubic", antialias=True
    )
    lr = np.round(np.clip(lr.numpy()[0], 0, 1) * 255).astype(np.uint8)
    expected = _scores(hr, _bicubic_up(lr))
    score = next(
        s for s in bicubic_report.per_image if s.image == "a.png" and s.downscaler == "bicubic"
    )
    assert (score.psnr_y, score.ssim_y, score.psnr_rgb) == pytest.approx(expected, abs=1e-9)
    assert score.lr_bpp > 0


def test_car_row_uses_the_quantised_lr(bicubic_report, bicubic_model, data_dir):
    hr = np.asarray(Image.open(os.path.join(data_dir, "b.png")))
    lr = bicubic_model.downscale_uint8(hr[None]).numpy()[0]
    expected = _scores(hr, _bicubic_up(lr))
    score = next(
        s for s in bicubic_report.per_image if s.image == "b.png" and s.downscaler == "car"
    )
    assert (score.psnr_y, score.ssim_y, score.psnr_rgb) == pytest.approx(expected, abs=1e-9)


def test_means_over_images(bicubic_report):
    for row in bicubic_report.rows:
        group = [
            s
            for s in bicubic_report.per_image
            if (s.downscaler, s.upscaler) == (row.downscaler, row.upscaler)
        ]
        assert row.psnr_y == pytest.approx(np.mean([s.psnr_y for s in group]))
        assert row.ssim_y == pytest.approx(np.mean([s.ssim_y for s in group]))
        assert row.lr_bpp == pytest.approx(np.mean([s.lr_bpp for s in group]))


def test_edsr_model_and_baseline_give_four_rows(edsr_model, data_dir):
    tf.keras.utils.set_random_seed(3)
    baseline = build_car_model(default_config(SCALE, "edsr", variant="tiny"))
    report = evaluation.evaluate_folder(
        edsr_model, data_dir, baseline=baseline, progress_stream=False
    )
    pairs = [(row.downscaler, row.upscaler) for row in report.rows]
    assert pairs == [
        ("bicubic", "bicubic"),
        ("bicubic", "edsr"),
        ("car", "bicubic"),
        ("car", "edsr"),
    ]
    hr = np.asarray(Image.open(os.path.join(data_dir, "b.png")))
    lr = edsr_model.downscale_uint8(hr[None])
    sr = edsr_model.upscale_uint8(lr).numpy()[0]
    score = next(
        s
        for s in report.per_image
        if s.image == "b.png" and (s.downscaler, s.upscaler) == ("car", "edsr")
    )
    assert score.psnr_y == pytest.approx(_scores(hr, sr)[0], abs=1e-9)


def test_an_sr_baseline_is_scored_without_car_rows(edsr_model, data_dir, tmp_path):
    report = evaluation.evaluate_folder(edsr_model, data_dir, baseline=edsr_model, car_rows=False,
                                      progress_stream=False)
    assert [(row.downscaler, row.upscaler) for row in report.rows] == [
        ("bicubic", "bicubic"), ("bicubic", "edsr")]
    hr = np.asarray(Image.open(os.path.join(data_dir, "b.png")))
    hr = crop_to_multiple(hr, SCALE * 4)
    lr = bicubic_downscale_uint8(hr, SCALE)
    sr = edsr_model.upscale_uint8(lr[None]).numpy()[0]
    score = next(s for s in report.per_image
                 if s.image == "b.png" and (s.downscaler, s.upscaler) == ("bicubic", "edsr"))
    assert score.psnr_y == pytest.approx(_scores(hr, sr)[0], abs=1e-9)
    with pytest.raises(ValueError, match="need the CAR rows"):
        evaluation.evaluate_folder(edsr_model, data_dir, car_rows=False, figures_count=1,
                                 figures_dir=str(tmp_path), progress_stream=False)


def test_baseline_scale_must_match(edsr_model):
    other = build_car_model(default_config(4, "edsr", variant="tiny"))
    with pytest.raises(ValueError, match="scale 4"):
        evaluation.pipelines(edsr_model, baseline=other)


def test_car_compat_truncates_sr_and_changes_scores(bicubic_model, data_dir, bicubic_report):
    np.testing.assert_array_equal(
        sr_to_uint8(np.array([0.9999, 0.5, -0.2, 1.3]), "car_compat"), [254, 127, 0, 255]
    )
    np.testing.assert_array_equal(
        sr_to_uint8(np.array([0.9999, 0.5, -0.2, 1.3]), "standard"), [255, 128, 0, 255]
    )
    compat = evaluation.evaluate_folder(
        bicubic_model, data_dir, protocol="car_compat", progress_stream=False
    )
    hr = np.asarray(Image.open(os.path.join(data_dir, "b.png")))
    lr = bicubic_model.downscale_uint8(hr[None]).numpy()[0]
    up = tf.image.resize(
        tf.constant(lr[None], tf.float32) / 255.0, [24, 32], method="bicubic"
    ).numpy()[0]
    expected = _scores(hr, sr_to_uint8(up, "car_compat"), "car_compat")
    score = next(s for s in compat.per_image if s.image == "b.png" and s.downscaler == "car")
    assert (score.psnr_y, score.ssim_y, score.psnr_rgb) == pytest.approx(expected, abs=1e-9)
    assert compat.rows[0].psnr_y != pytest.approx(bicubic_report.rows[0].psnr_y, abs=1e-6)


def test_folder_without_images_is_an_error_naming_it(bicubic_model, tmp_path):
    empty = tmp_path / "Empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(evaluation.NoImagesError, match="Empty"):
        evaluation.evaluate_folder(bicubic_model, str(empty), progress_stream=False)
    with pytest.raises(evaluation.NoImagesError, match="Missing"):
        evaluation.evaluate_folder(bicubic_model, str(tmp_path / "Missing"), progress_stream=False)


def test_too_small_images_are_skipped_with_a_note(bicubic_model, tmp_path):
    folder = tmp_path / "Small"
    folder.mkdir()
    Image.fromarray(smooth_image(12, 40, 0)).save(folder / "small.png")
    Image.fromarray(smooth_image(16, 16, 1)).save(folder / "ok.png")
    report = evaluation.evaluate_folder(bicubic_model, str(folder), progress_stream=False)
    assert report.rows[0].images == 1
    assert any("small.png" in note and "too small" in note for note in report.notes)


def test_progress_bar(bicubic_model, data_dir):
    stream = io.StringIO()
    evaluation.evaluate_folder(bicubic_model, data_dir, progress_stream=stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # a.png, b.png, broken.png
    assert lines[-1].endswith("3/3  broken.png") and "#" * 24 in lines[-1]


def test_duplicate_dataset_names_are_refused(bicubic_model, tmp_path):
    with pytest.raises(ValueError, match="share the base name .Set5."):
        evaluation.evaluate(
            bicubic_model, [str(tmp_path / "x" / "Set5"), str(tmp_path / "y" / "Set5")]
        )


def _run_tool(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, os.path.join(REPO, "tools", "evaluate.py"), *flags]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.mark.slow
def test_tool_json_schema(edsr_model, data_dir, tmp_path):
    model_path = tmp_path / "car.keras"
    edsr_model.save(str(model_path))
    out = tmp_path / "out"
    result = _run_tool(
        f"--model={model_path}",
        f"--data_dir={data_dir}",
        f"--scale={SCALE}",
        "--json",
        f"--out_dir={out}",
        f"--baseline_model={model_path}",
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    assert set(output) == {"protocol", "results"}
    keys = {"dataset", "scale", "downscaler", "upscaler", "psnr_y", "ssim_y", "psnr_rgb"}
    keys |= {"images", "lr_bpp"}
    assert len(output["results"]) == 4
    for row in output["results"]:
        assert set(row) == keys
        assert row["downscaler"] in ("bicubic", "car") and row["upscaler"] in ("bicubic", "edsr")
        assert row["scale"] == SCALE and row["images"] == 2
        assert all(isinstance(row[k], float) for k in ("psnr_y", "ssim_y", "psnr_rgb", "lr_bpp"))
    assert "broken.png" in result.stderr  # the note goes to stderr
    assert (out / f"{os.path.basename(data_dir)}_x{SCALE}.md").exists()


@pytest.mark.slow
def test_tool_names_a_folder_without_images(tmp_path):
    model_path = tmp_path / "car.keras"
    build_car_model(default_config(SCALE, "bicubic", variant="tiny")).save(str(model_path))
    empty = tmp_path / "NoImagesHere"
    empty.mkdir()
    result = _run_tool(f"--model={model_path}", f"--data_dir={empty}", "--json")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "NoImagesHere" in result.stderr and "Traceback" not in result.stderr
