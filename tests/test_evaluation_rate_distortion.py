"""Rate-distortion evaluation through real codecs (car_tf.evaluation.rate_distortion)."""

import json

import numpy as np
import pytest
from PIL import Image

from car_tf import codecs, metrics, models
from car_tf.evaluation import rate_distortion
from car_tf.protocol import bicubic_downscale_uint8
from tests.synthetic_images import photo

QUALITIES = [30, 50, 70, 90]


@pytest.fixture(scope="module")
def model():
    return models.build_car_model({**models.default_config(2, "bicubic", "tiny"),
                                   "resampler_kernel_normalization": "signed"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "Tiny"
    root.mkdir()
    for seed, (height, width) in enumerate([(48, 64), (67, 50)]):
        Image.fromarray(photo(height, width, seed)).save(root / f"image{seed}.png")
    (root / "notes.txt").write_text("not an image")
    return str(root)


@pytest.fixture(scope="module")
def report(model, folder):
    return rate_distortion.evaluate(model, [folder], "jpeg", QUALITIES)


def test_every_downscaler_has_a_point_per_quality_with_the_real_rate(report, model, folder):
    names = sorted({p.downscaler for p in report.points})
    assert names == ["bicubic", "car", "lanczos"]
    assert len(report.points) == 3 * len(QUALITIES)
    # The rate of bicubic at quality 50, recomputed by hand for the two images: 8 bits per
    # encoded byte over the cropped HR pixels (64x48 stays, 67x50 becomes 64x48).
    hr = [photo(48, 64, 0), photo(67, 50, 1)[:64, :48]]
    rates, psnrs = [], []
    for image in hr:
        decoded, size = codecs.compress(bicubic_downscale_uint8(image, 2), "jpeg", 50)
        rates.append(8.0 * size / image[..., 0].size)
        upscaled = models.BicubicUpscaler(2)(decoded[np.newaxis].astype(np.float32) / 255.0)
        sr = np.round(np.clip(np.asarray(upscaled)[0], 0, 1) * 255) / 255.0
        psnrs.append(metrics.psnr_y(image / 255.0, sr, 2))
    point = next(p for p in report.points if (p.downscaler, p.quality) == ("bicubic", 50))
    assert point.images == 2
    assert point.bpp == pytest.approx(np.mean(rates))
    assert point.psnr_y == pytest.approx(np.mean(psnrs), abs=1e-6)
    # Rate and PSNR both grow with quality.
    curve = sorted((p for p in report.points if p.downscaler == "car"), key=lambda p: p.quality)
    assert all(a.bpp < b.bpp and a.psnr_y < b.psnr_y for a, b in zip(curve, curve[1:]))


def test_bd_deltas_pair_every_downscaler_with_every_other(report):
    pairs = {(d.downscaler, d.reference) for d in report.deltas}
    assert pairs == {(a, b) for a in ("bicubic", "car", "lanczos")
                     for b in ("bicubic", "car", "lanczos") if a != b}
    forward = next(d for d in report.deltas if (d.downscaler, d.reference) == ("car", "bicubic"))
    backward = next(d for d in report.deltas if (d.downscaler, d.reference) == ("bicubic", "car"))
    assert forward.bd_psnr == pytest.approx(-backward.bd_psnr, abs=1e-9)
    assert np.sign(forward.bd_rate) == -np.sign(forward.bd_psnr)


def test_tables_json_and_plots_are_written(report, tmp_path):
    paths = rate_distortion.write(report, str(tmp_path))
    stem = tmp_path / "Tiny_x2_jpeg"
    assert {str(stem) + ".md", str(stem) + ".json", str(stem) + "_bicubic.png"} <= set(paths)
    text = (tmp_path / "Tiny_x2_jpeg.md").read_text()
    assert "Quality 30:" in text and "| car |" in text and "BD-rate" in text
    content = json.loads((tmp_path / "Tiny_x2_jpeg.json").read_text())
    assert len(content["points"]) == 12 and content["codec"] == "jpeg"
    with Image.open(str(stem) + "_bicubic.png") as plot:
        assert plot.size == (640, 440)
        # Three coloured curves were drawn, not a blank frame.
        colours = {tuple(c) for c in np.asarray(plot.convert("RGB")).reshape(-1, 3)}
        assert {(31, 119, 180), (255, 127, 14), (44, 160, 44)} <= colours


def test_webp_and_an_extra_downscaler(model, folder):
    other = models.build_car_model(models.default_config(2, "bicubic", "tiny"))
    report = rate_distortion.evaluate(model, [folder], "webp", [40, 60, 80, 95],
                                      extra=[("plain", other)])
    assert {p.downscaler for p in report.points} == {"bicubic", "lanczos", "car", "plain"}
    with pytest.raises(ValueError, match="two downscalers are named 'car'"):
        rate_distortion.evaluate(model, [folder], "webp", [50], extra=[("car", other)])


@pytest.mark.parametrize("codec, qualities, message", [
    ("jpeg", [0, 50], "1..100"), ("bmp", [50], "unknown codec"),
    ("png", [], "needs a lossy codec"),
])
def test_bad_codec_settings_fail_before_any_work(model, codec, qualities, message):
    with pytest.raises(codecs.CodecError, match=message):
        rate_distortion.evaluate(model, ["/nonexistent"], codec, qualities)


def _run_tool(*flags):
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, os.path.join(repo, "tools", "evaluate.py"), *flags],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.slow
def test_tool_writes_rd_tables_json_and_plots(model, folder, tmp_path):
    model_path = tmp_path / "car.keras"
    model.save(str(model_path))
    fixed_path = tmp_path / "fixed.keras"
    models.FixedKernelModel(2).save(str(fixed_path))
    out = tmp_path / "out"
    result = _run_tool(f"--model={model_path}", f"--data_dir={folder}", "--lr_codec=jpeg",
                       *[f"--lr_quality={q}" for q in QUALITIES], f"--compare_model=box={fixed_path}",
                       f"--compare_model={model_path}", "--json", f"--out_dir={out}")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["codec"] == "jpeg" and output["qualities"] == QUALITIES
    assert {p["downscaler"] for p in output["points"]} == {"bicubic", "lanczos", "car", "box",
                                                          "car.keras"}
    assert any(d["downscaler"] == "box" and d["reference"] == "bicubic" for d in output["bd"])
    assert (out / "Tiny_x2_jpeg_bicubic.png").exists() and (out / "Tiny_x2_jpeg.md").exists()


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--lr_codec=jpeg", "--lr_quality=0"], "jpeg quality must be an integer in 1..100, got 0"),
    (["--lr_codec=jpeg", "--lr_quality=101"], "got 101"),
    (["--lr_codec=gif", "--lr_quality=50"], "unknown codec 'gif'"),
    (["--lr_codec=webp"], "webp needs at least one quality"),
])
def test_tool_refuses_bad_codec_flags_in_one_line_before_loading(flags, message):
    result = _run_tool("--model=no-such-model", "--data_dir=/nonexistent", *flags)
    assert result.returncode != 0 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("evaluate: ") and message in lines[-1]
    assert "Traceback" not in result.stderr and "no-such-model" not in result.stderr
