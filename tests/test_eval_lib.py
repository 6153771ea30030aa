"""car_tf.eval_lib on a tmp folder of tiny images with tiny models, and tools/evaluate.py --json."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from car_tf import eval_lib, metrics
from car_tf.models import build_car_model, default_config

SCALE = 2
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _smooth_image(height, width, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 6, 3)
    image = 0.5 + 0.4 * np.sin(xx[..., None] / 2.5 + phase) * np.cos(yy[..., None] / 3.5)
    return np.round(np.clip(image + 0.03 * rng.standard_normal(image.shape), 0, 1) * 255).astype(
        np.uint8
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Two images (a.png 30x21 is cropped to 24x16), a text file and a corrupt PNG."""
    folder = tmp_path_factory.mktemp("Tiny")
    Image.fromarray(_smooth_image(30, 21, 0)).save(folder / "a.png")
    Image.fromarray(_smooth_image(24, 32, 1)).save(folder / "b.png")
    (folder / "README.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return str(folder)


@pytest.fixture(scope="module")
def bicubic_model():
    tf.keras.utils.set_random_seed(1)
    return build_car_model(default_config(SCALE, "bicubic", variant="tiny"))


@pytest.fixture(scope="module")
def edsr_model():
    tf.keras.utils.set_random_seed(2)
    return build_car_model(default_config(SCALE, "edsr", variant="tiny"))


@pytest.fixture(scope="module")
def bicubic_report(bicubic_model, data_dir):
    return eval_lib.evaluate_folder(bicubic_model, data_dir, progress_stream=False)


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


def _keys_cubic(t):
    t = np.abs(t)
    return np.where(
        t <= 1,
        1.5 * t**3 - 2.5 * t**2 + 1,
        np.where(t <= 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0),
    )


def _matlab_imresize_down_1d(signal, scale):
    """MATLAB imresize(x, 1/scale) along axis 0, bicubic with antialiasing: the cubic kernel
    stretched by `scale`, weights normalised to 1, out-of-range taps mirrored."""
    size = signal.shape[0]
    out = []
    for j in range(size // scale):
        centre = (j + 0.5) * scale - 0.5  # output pixel centre in input pixel coordinates
        taps = np.arange(int(np.floor(centre - 2 * scale)), int(np.ceil(centre + 2 * scale)) + 1)
        weights = _keys_cubic((centre - taps) / scale)
        weights /= weights.sum()
        mirrored = np.where(taps < 0, -taps - 1, np.where(taps >= size, 2 * size - taps - 1, taps))
        out.append(np.tensordot(weights, signal[mirrored], axes=1))
    return np.stack(out)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_downscale_matches_matlab_imresize_in_the_interior(scale):
    hr = _smooth_image(48, 40, 7)
    expected = _matlab_imresize_down_1d(hr.astype(np.float64) / 255, scale)
    expected = _matlab_imresize_down_1d(expected.transpose(1, 0, 2), scale).transpose(1, 0, 2)
    got = tf.image.resize(
        tf.constant(hr[None], tf.float32) / 255.0,
        [48 // scale, 40 // scale],
        method="bicubic",
        antialias=True,
    ).numpy()[0]
    border = 2  # LR pixels whose kernel (2 * scale HR pixels each side) reaches past the edge
    interior = (slice(border, -border), slice(border, -border))
    np.testing.assert_allclose(got[interior], expected[interior], atol=2e-6)
    assert np.abs(got - expected).max() > 1e-4  # the borders do differ (MATLAB mirrors)
    lr = eval_lib.bicubic_downscale_uint8(hr, scale)
    np.testing.assert_array_equal(lr, np.round(np.clip(got, 0, 1) * 255).astype(np.uint8))


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
    report = eval_lib.evaluate_folder(
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
    report = eval_lib.evaluate_folder(edsr_model, data_dir, baseline=edsr_model, car_rows=False,
                                      progress_stream=False)
    assert [(row.downscaler, row.upscaler) for row in report.rows] == [
        ("bicubic", "bicubic"), ("bicubic", "edsr")]
    hr = np.asarray(Image.open(os.path.join(data_dir, "b.png")))
    hr = eval_lib.crop_to_multiple(hr, SCALE * 4)
    lr = eval_lib.bicubic_downscale_uint8(hr, SCALE)
    sr = edsr_model.upscale_uint8(lr[None]).numpy()[0]
    score = next(s for s in report.per_image
                 if s.image == "b.png" and (s.downscaler, s.upscaler) == ("bicubic", "edsr"))
    assert score.psnr_y == pytest.approx(_scores(hr, sr)[0], abs=1e-9)
    with pytest.raises(ValueError, match="need the CAR rows"):
        eval_lib.evaluate_folder(edsr_model, data_dir, car_rows=False, figures_count=1,
                                 figures_dir=str(tmp_path), progress_stream=False)


def test_baseline_scale_must_match(edsr_model):
    other = build_car_model(default_config(4, "edsr", variant="tiny"))
    with pytest.raises(ValueError, match="scale 4"):
        eval_lib.pipelines(edsr_model, baseline=other)


def test_car_compat_truncates_sr_and_changes_scores(bicubic_model, data_dir, bicubic_report):
    np.testing.assert_array_equal(
        eval_lib.sr_to_uint8(np.array([0.9999, 0.5, -0.2, 1.3]), "car_compat"), [254, 127, 0, 255]
    )
    np.testing.assert_array_equal(
        eval_lib.sr_to_uint8(np.array([0.9999, 0.5, -0.2, 1.3]), "standard"), [255, 128, 0, 255]
    )
    compat = eval_lib.evaluate_folder(
        bicubic_model, data_dir, protocol="car_compat", progress_stream=False
    )
    hr = np.asarray(Image.open(os.path.join(data_dir, "b.png")))
    lr = bicubic_model.downscale_uint8(hr[None]).numpy()[0]
    up = tf.image.resize(
        tf.constant(lr[None], tf.float32) / 255.0, [24, 32], method="bicubic"
    ).numpy()[0]
    expected = _scores(hr, eval_lib.sr_to_uint8(up, "car_compat"), "car_compat")
    score = next(s for s in compat.per_image if s.image == "b.png" and s.downscaler == "car")
    assert (score.psnr_y, score.ssim_y, score.psnr_rgb) == pytest.approx(expected, abs=1e-9)
    assert compat.rows[0].psnr_y != pytest.approx(bicubic_report.rows[0].psnr_y, abs=1e-6)


def test_crop_keeps_the_top_left_corner():
    image = np.arange(30 * 21 * 3).reshape(30, 21, 3)
    cropped = eval_lib.crop_to_multiple(image, 8)
    assert cropped.shape == (24, 16, 3)
    np.testing.assert_array_equal(cropped, image[:24, :16])


def test_folder_without_images_is_an_error_naming_it(bicubic_model, tmp_path):
    empty = tmp_path / "Empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(eval_lib.NoImagesError, match="Empty"):
        eval_lib.evaluate_folder(bicubic_model, str(empty), progress_stream=False)
    with pytest.raises(eval_lib.NoImagesError, match="Missing"):
        eval_lib.evaluate_folder(bicubic_model, str(tmp_path / "Missing"), progress_stream=False)


def test_too_small_images_are_skipped_with_a_note(bicubic_model, tmp_path):
    folder = tmp_path / "Small"
    folder.mkdir()
    Image.fromarray(_smooth_image(12, 40, 0)).save(folder / "small.png")
    Image.fromarray(_smooth_image(16, 16, 1)).save(folder / "ok.png")
    report = eval_lib.evaluate_folder(bicubic_model, str(folder), progress_stream=False)
    assert report.rows[0].images == 1
    assert any("small.png" in note and "too small" in note for note in report.notes)


def test_progress_bar(bicubic_model, data_dir):
    stream = io.StringIO()
    eval_lib.evaluate_folder(bicubic_model, data_dir, progress_stream=stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # a.png, b.png, broken.png
    assert lines[-1].endswith("3/3 broken.png") and "#" * 24 in lines[-1]


def test_tables_and_figures(bicubic_model, data_dir, tmp_path):
    out = tmp_path / "out"
    report = eval_lib.evaluate(
        bicubic_model,
        [data_dir],
        figures_count=1,
        spectra=True,
        figures_dir=str(out),
        progress_stream=False,
    )
    paths = eval_lib.write_tables(report, str(out), per_image=True)
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
    from car_tf import figures

    m, line = figures.MARGIN, figures.LINE_HEIGHT
    assert comparison.size == (5 * panel + 6 * m, panel + 3 * line + 3 * m)
    zoom = 256 // 8  # the LR is 12x8
    assert Image.open(report.figure_paths[1]).size == (
        3 * 8 * zoom + 4 * m,
        12 * zoom + 3 * line + 3 * m,
    )


def test_duplicate_dataset_names_are_refused(bicubic_model, tmp_path):
    with pytest.raises(ValueError, match="share the base name .Set5."):
        eval_lib.evaluate(
            bicubic_model, [str(tmp_path / "x" / "Set5"), str(tmp_path / "y" / "Set5")]
        )


def test_infinite_psnr_is_null_in_json():
    row = eval_lib.Row(
        "Set5", 2, "standard", "car", "edsr", float("inf"), 1.0, float("inf"), 3.0, 1
    )
    report = eval_lib.Report("standard", [row], [], [], [])
    text = json.dumps(report.as_json(), allow_nan=False)
    assert json.loads(text)["results"][0]["psnr_y"] is None


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


def test_psnr_y_of_float_sr_scores_the_8_bit_image_evaluate_would_write():
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    # Off by a third of a level (rounds back to hr) in one half, by 4.4 levels in the other.
    sr = hr.astype(np.float64) / 255.0 + np.where(np.arange(16)[:, None, None] < 8, 0.33, 4.4) / 255.0
    expected = metrics.psnr_y(hr, eval_lib.sr_to_uint8(sr, "standard"), 2)
    assert eval_lib.psnr_y_of_float_sr(hr, sr[None].astype(np.float32), 2) == pytest.approx(expected)
    # It scores the rounded image: the third-of-a-level error is gone, so it beats the float
    # image's own PSNR.
    assert expected > metrics.psnr_y(hr.astype(np.float64) / 255.0, np.clip(sr, 0, 1), 2)
