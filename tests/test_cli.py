"""The `car` command line (car_tf.cli) on tiny images with a tiny model saved to a tmp model_dir.

Exit statuses of whole runs are checked through subprocesses; the other
behaviours call cli.main in-process, which returns the same status.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageCms

from car_tf import cli, metrics, pretrained
from car_tf.models import build_car_model, default_config
from synthetic_images import photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A training-style model_dir (config.json + model.weights.h5) holding a tiny x2 CAR model."""
    folder = tmp_path_factory.mktemp("tiny_model")
    tf.keras.utils.set_random_seed(3)
    config = default_config(SCALE, "bicubic", variant="tiny")
    build_car_model(config).save_weights(str(folder / pretrained.WEIGHTS))
    (folder / pretrained.CONFIG).write_text(json.dumps(config))
    return str(folder)


# Made once: the profile header carries its creation time.
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    """Good images of every kind in a folder tree, plus three broken files."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    Image.fromarray(photo(45, 61, 1)).save(folder / "sub" / "a.png")
    # Stored 40 wide x 30 high, EXIF orientation 6: displayed 30 wide x 40 high.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo(30, 40, 2)).save(folder / "b.jpg", quality=95, exif=exif,
                                            icc_profile=SRGB_PROFILE)
    Image.fromarray(photo(33, 35, 3)[:, :, 1]).save(folder / "gray.png")
    rgba = np.dstack([photo(34, 36, 4), photo(34, 36, 5)[:, :, 0]])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray(photo(32, 32, 6)[:, :, 0].astype(np.uint16) * 257).save(folder / "deep.png")
    (folder / "empty.png").write_bytes(b"")
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (64, 64, 3), np.uint8)).save(
        noisy, "PNG")
    (folder / "truncated.png").write_bytes(noisy.getvalue()[:2000])
    (folder / "corrupt.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPnot an image at all")
    return str(folder)


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def _errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("car: error:")]


@pytest.mark.slow
def test_roundtrip_batch_processes_good_files_and_reports_bad_ones(batch_dir, model_dir, tmp_path):
    out = tmp_path / "out"
    result = _run("-m", "car_tf.cli", "roundtrip", batch_dir, "-o", str(out), "--model", model_dir)
    assert result.returncode == 1, result.stderr
    errors = _errors(result.stderr)
    assert len(errors) == 3
    for name, reason in (("empty.png", "empty"), ("truncated.png", "truncated"),
                         ("corrupt.webp", "")):
        assert any(os.path.join(batch_dir, name) in line and reason in line for line in errors)
    assert "car: 3 of 8 files failed" in result.stderr
    assert "16-bit converted to 8-bit" in result.stderr

    for relative, size in (("sub/a.png", (61, 45)), ("b.jpg", (30, 40)), ("gray.png", (35, 33)),
                           ("rgba.png", (36, 34)), ("deep.png", (32, 32))):
        with Image.open(out / "lr" / relative) as lr, Image.open(out / "sr" / relative) as sr:
            assert lr.size == (-(-size[0] // SCALE), -(-size[1] // SCALE)), relative
            assert sr.size == size, relative
            if relative in ("gray.png", "deep.png"):
                assert lr.mode == sr.mode == "L"
            if relative == "rgba.png":
                assert lr.mode == sr.mode == "RGBA"
            if relative == "b.jpg":
                assert lr.info.get("icc_profile") == SRGB_PROFILE
                assert lr.getexif().get(0x0112, 1) == 1

    # stdout: a header, one row per good image, the mean; scores of the SR file.
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0] == ["psnr_y", "ssim_y", "file"] and len(rows) == 1 + 5 + 1
    scores = {row[2]: (float(row[0]), float(row[1])) for row in rows[1:-1]}
    reference = np.asarray(Image.open(os.path.join(batch_dir, "sub", "a.png")))
    sr = np.asarray(Image.open(out / "sr" / "sub" / "a.png"))
    psnr, ssim = scores[os.path.join(batch_dir, "sub", "a.png")]
    assert psnr == pytest.approx(float(metrics.psnr_y(reference, sr, SCALE)), abs=0.006)
    assert ssim == pytest.approx(float(metrics.ssim_y(reference, sr, SCALE)), abs=6e-5)


@pytest.mark.slow
def test_tools_upscale_wrapper_exits_0_and_scales_by_the_model(model_dir, tmp_path):
    (tmp_path / "lr").mkdir()
    Image.fromarray(photo(12, 17)).save(tmp_path / "lr" / "x.webp", lossless=True)
    result = _run("tools/upscale.py", str(tmp_path / "lr"), "-o", str(tmp_path / "sr"),
                  "--model", model_dir, "--quiet")
    assert result.returncode == 0, result.stderr
    # Only TensorFlow's own start-up lines may remain (printed before car_tf runs).
    assert not [line for line in result.stderr.splitlines() if line.startswith(("car", "["))]
    with Image.open(tmp_path / "sr" / "x.webp") as sr:
        assert sr.size == (34, 24) and sr.format == "WEBP"


def test_missing_default_model_is_a_one_line_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", str(tmp_path / "none"))
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    status = cli.main(["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"),
                       "--scale", "2"])
    assert status == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert "'car-x2-bicubic' is not installed" in error and "--model" in error
    assert not (tmp_path / "o").exists()


def test_help_and_usage_errors_do_not_import_tensorflow(tmp_path):
    # Each argv in a fresh interpreter, run as `car` runs it; sys.modules says whether
    # anything pulled TensorFlow in before the parser answered.
    script = (
        "import json, runpy, sys\n"
        "sys.argv = ['car', *json.loads(sys.argv[1])]\n"
        "try:\n"
        "    runpy.run_module('car_tf.cli', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print(json.dumps([exit.code, 'tensorflow' in sys.modules]))\n"
    )
    for argv, status in ((["--help"], 0), (["downscale", "--help"], 0),
                         (["downscale", "x.png"], 2),
                         (["upscale", "x.png", "-o", str(tmp_path), "--scale", "3"], 2)):
        result = _run("-c", script, json.dumps(argv))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.splitlines()[-1]) == [status, False], argv


def test_upscaler_must_match_the_model(tmp_path, capsys):
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    status = cli.main(["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"),
                       "--model", "car-x4-fixed", "--upscaler", "edsr"])
    assert status == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error == ("car: error: --upscaler edsr but model car-x4-fixed has the bicubic "
                     "upscaler; drop --upscaler or pick another --model")
    assert not (tmp_path / "o").exists()


def test_scale_must_match_the_model(model_dir, tmp_path, capsys):
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    status = cli.main(["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"),
                       "--model", model_dir, "--scale", "4"])
    assert status == cli.EXIT_USAGE
    assert "--scale 4 but model" in capsys.readouterr().err


def test_never_overwrites_an_input(model_dir, tmp_path, capsys):
    Image.fromarray(photo(20, 20)).save(tmp_path / "x.png")
    before = (tmp_path / "x.png").read_bytes()
    status = cli.main(["downscale", str(tmp_path), "-o", str(tmp_path), "--model", model_dir])
    assert status == cli.EXIT_FILE_ERRORS
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert (tmp_path / "x.png").read_bytes() == before


def test_two_inputs_with_one_output_name_fail_the_second(model_dir, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo(16, 16)).save(tmp_path / folder / "x.png")
    status = cli.main(["downscale", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"),
                       "-o", str(tmp_path / "o"), "--model", model_dir, "--quiet"])
    assert status == cli.EXIT_FILE_ERRORS
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "already written from another input" in errors[0]


def test_unwritable_output_folder_names_the_file(model_dir, tmp_path, capsys):
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    status = cli.main(["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "blocker" / "o"),
                       "--model", model_dir])
    assert status == cli.EXIT_FILE_ERRORS
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and str(tmp_path / "blocker" / "o" / "x.png") in errors[0]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_folder_is_an_error_per_file(model_dir, tmp_path, capsys):
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    Image.fromarray(photo(16, 16)).save(tmp_path / "y.png")
    out = tmp_path / "o"
    out.mkdir()
    out.chmod(0o500)
    try:
        status = cli.main(["downscale", str(tmp_path / "x.png"), str(tmp_path / "y.png"),
                           "-o", str(out), "--model", model_dir])
    finally:
        out.chmod(0o700)
    assert status == cli.EXIT_FILE_ERRORS
    assert len(_errors(capsys.readouterr().err)) == 2


def test_decompression_bomb_limit_and_override(model_dir, tmp_path, capsys):
    Image.fromarray(photo(24, 24)).save(tmp_path / "x.png")
    args = ["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", model_dir]
    assert cli.main([*args, "--max_pixels", "500"]) == cli.EXIT_FILE_ERRORS
    error = _errors(capsys.readouterr().err)[0]
    assert str(tmp_path / "x.png") in error and "decompression-bomb" in error
    assert cli.main([*args, "--max_pixels", "0"]) == cli.EXIT_OK


def test_format_flag_and_tiling_do_not_change_pixels(model_dir, tmp_path):
    Image.fromarray(photo(50, 70)).save(tmp_path / "x.jpg", quality=95)
    base = ["downscale", str(tmp_path / "x.jpg"), "--model", model_dir, "--format", "png",
            "--quiet"]
    assert cli.main([*base, "-o", str(tmp_path / "whole"), "--tile", "0"]) == cli.EXIT_OK
    assert cli.main([*base, "-o", str(tmp_path / "tiled"), "--tile", "32"]) == cli.EXIT_OK
    whole = np.asarray(Image.open(tmp_path / "whole" / "x.png"))
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "x.png"))
    assert whole.shape == (25, 35, 3)
    assert np.abs(whole.astype(int) - tiled).max() <= 1


def test_bad_flags_and_empty_folders_are_usage_errors(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["upscale", str(tmp_path / "empty"), "-o", str(tmp_path / "o"),
                     "--model", model_dir]) == cli.EXIT_USAGE
    assert "no image files found" in capsys.readouterr().err
    assert cli.main(["upscale", str(tmp_path), "-o", str(tmp_path / "o"),
                     "--format", "gif"]) == cli.EXIT_USAGE
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["downscale", str(tmp_path), "-o", str(tmp_path / "o"), "--scale", "3"])
    assert exit_info.value.code == cli.EXIT_USAGE


def test_progress_lines_and_quiet(model_dir, tmp_path, capsys):
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    args = ["downscale", str(tmp_path / "x.png"), "--model", model_dir]
    assert cli.main([*args, "-o", str(tmp_path / "o1")]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert f"[1/1] {tmp_path / 'x.png'} -> {tmp_path / 'o1' / 'x.png'}" in err
    assert cli.main([*args, "-o", str(tmp_path / "o2"), "--quiet"]) == cli.EXIT_OK
    assert capsys.readouterr().err == ""


def _cpu_runs_onednn_bfloat16():
    """Whether TensorFlow's oneDNN bfloat16 rewrite applies on this CPU (it needs AVX512F,
    AVX-NE-CONVERT or AMX; elsewhere --bfloat16 leaves every graph as it is)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = set(handle.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512f", "avx_ne_convert", "amx_bf16"})


@pytest.mark.slow
def test_bfloat16_flag_changes_the_result_by_a_level_or_two(model_dir, tmp_path):
    if not _cpu_runs_onednn_bfloat16():
        pytest.skip("this CPU has no oneDNN bfloat16 path: --bfloat16 can change nothing here")
    Image.fromarray(photo(48, 64, 11)).save(tmp_path / "x.png")
    outputs = {}
    for label, extra in (("f32", ["--precision=float32"]), ("bf16", ["--bfloat16"])):
        result = _run("-m", "car_tf.cli", "downscale", str(tmp_path / "x.png"), "-o",
                      str(tmp_path / label), "--model", model_dir, "--quiet", *extra)
        assert result.returncode == 0, result.stderr
        outputs[label] = np.asarray(Image.open(tmp_path / label / "x.png")).astype(int)
    assert outputs["f32"].shape == (24, 32, 3)
    difference = np.abs(outputs["f32"] - outputs["bf16"])
    # Some pixels move (the convolutions did run in bfloat16), none by more than two levels.
    assert 0 < difference.max() <= 2


def test_a_tile_smaller_than_the_halo_is_a_usage_error(model_dir, tmp_path, capsys):
    Image.fromarray(photo(50, 70)).save(tmp_path / "x.png")
    args = ["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", model_dir]
    assert cli.main([*args, "--tile", "1"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    # The tiny model's downscaler reaches 26 HR pixels; tiles are multiples of 8.
    assert err == ["car: error: --tile 1 is smaller than this model's halo: use --tile 0 "
                   "(no tiling) or at least 32"]
    assert not (tmp_path / "o").exists()
    assert cli.main([*args, "--tile", "32", "--quiet"]) == cli.EXIT_OK


def test_a_missing_input_is_a_usage_error_and_nothing_runs(model_dir, tmp_path, capsys):
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    missing = tmp_path / "typo.png"
    status = cli.main(["downscale", str(tmp_path / "x.png"), str(missing), "-o", str(tmp_path / "o"),
                       "--model", model_dir])
    assert status == cli.EXIT_USAGE == 2
    assert capsys.readouterr().err.strip() == f"car: error: {missing}: no such file or folder"
    assert not (tmp_path / "o").exists()
    docs = open(os.path.join(REPO, "docs", "CLI.md")).read()
    assert "2 for usage errors (bad flag, an input path that does not exist" in docs


def test_a_gif_in_a_folder_is_named_as_skipped(model_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo(16, 16)).save(folder / "x.png")
    frames = [Image.fromarray(photo(16, 16, seed)) for seed in (1, 2)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    (folder / "notes.txt").write_text("not an image")
    args = ["downscale", str(folder), "-o", str(tmp_path / "o"), "--model", model_dir]
    assert cli.main(args) == cli.EXIT_OK
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("car: note:")]
    assert notes == [f"car: note: {folder / 'anim.gif'}: skipped: GIF is not read; "
                     "convert it to PNG to process it"]
    assert sorted(os.listdir(tmp_path / "o")) == ["x.png"]
