"""car_tf.beam.pipeline on the DirectRunner: outputs as `car`'s, dead letters, reruns.

One folder of 21 small generated images (sizes repeat, so RunInference batches equal
tiles; a subfolder; JPEG, grayscale and RGBA among them) plus five bad files (a text
file named .png, an empty file, a truncated PNG, a decompression bomb: a PNG header
claiming 40000 x 40000 pixels) and three files that are not inputs (notes.txt, a hidden
image, a text file in a folder named like an image).
"""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from beam_fixtures import model_check_memo  # noqa: F401 (fixture)
from car_tf import cli
from car_tf.beam import launch, pipeline
from car_tf.image_io import read_image, write_image
from synthetic_images import photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "car-x4-bicubic"
BAD = ("bad/text.png", "bad/empty.jpg", "bad/truncated.png", "bad/bomb.png")


def _bomb_png(path, side=40000):
    """A valid PNG header (IHDR) claiming side x side RGB pixels, and no pixel data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """(folder, [relative paths of the good images])."""
    root = tmp_path_factory.mktemp("beam_photos")
    good = []
    sizes = [(24, 32), (24, 32), (24, 32), (40, 36), (40, 36), (17, 29), (33, 47)]
    for index in range(21):
        height, width = sizes[index % len(sizes)]
        extension = ".jpg" if index % 5 == 4 else ".png"
        relative = (f"sub/img{index:02d}" if index % 3 == 0 else f"img{index:02d}") + extension
        os.makedirs(root / os.path.dirname(relative), exist_ok=True)
        rgb = photo(height, width, seed=index)
        alpha = (np.arange(height * width, dtype=np.uint8).reshape(height, width)
                 if index == 7 else None)
        write_image(str(root / relative), rgb, alpha=alpha, grayscale=index == 8)
        good.append(relative)
    (root / "bad").mkdir()
    (root / "bad" / "text.png").write_text("not an image")
    (root / "bad" / "empty.jpg").write_bytes(b"")
    complete = (root / "img01.png").read_bytes()
    (root / "bad" / "truncated.png").write_bytes(complete[:len(complete) // 2])
    _bomb_png(root / "bad" / "bomb.png")
    (root / "bad" / "folder.png").mkdir()
    (root / "bad" / "folder.png" / "notes.txt").write_text("a folder named like an image")
    (root / "notes.txt").write_text("not an input")
    write_image(str(root / ".hidden.png"), photo(8, 8))
    return str(root), good


def _snapshot(folder):
    """{relative path: (inode, mtime_ns)} of every file below `folder`."""
    result = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(directory, name))
            result[os.path.relpath(os.path.join(directory, name), folder)] = (
                stat.st_ino, stat.st_mtime_ns)
    return result


def _counts(argv):
    """The car_tf counters of one in-process DirectRunner run of tools/beam_downscale.py."""
    args = launch.parse(argv)
    settings, inputs = launch.prepare(args)
    return pipeline.run(settings, inputs, launch.PipelineOptions(launch.beam_arguments(argv)))


def _largest_difference(a, b):
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="module")
def downscaled(photos, tmp_path_factory):
    """(beam's output folder, car's output folder, beam's exit status, its stderr summary)."""
    folder, _ = photos
    out = tmp_path_factory.mktemp("beam_out")
    reference = tmp_path_factory.mktemp("car_out")
    assert cli.main(["downscale", folder, "-o", str(reference), "--model", MODEL, "--quiet"]) \
        == cli.EXIT_FILE_ERRORS
    status = launch.main(["downscale", folder, "-o", str(out), "--model", MODEL,
                          "--runner", "DirectRunner"])
    return str(out), str(reference), status


def test_outputs_equal_car_downscale_within_one_level(photos, downscaled):
    _, good = photos
    out, reference, status = downscaled
    assert status == launch.EXIT_FILE_ERRORS
    for relative in good:
        ours, theirs = read_image(os.path.join(out, relative)), read_image(
            os.path.join(reference, relative))
        assert ours.rgb.shape == theirs.rgb.shape
        assert _largest_difference(ours.rgb, theirs.rgb) <= 1, relative
        assert ours.was_grayscale == theirs.was_grayscale
        assert (ours.alpha is None) == (theirs.alpha is None), relative
    written = {path for path in _snapshot(out) if path != pipeline.DEAD_LETTERS_NAME}
    assert written == set(good)  # the tree mirrored; nothing for bad or passed-over files


def test_each_bad_file_gets_one_dead_letter_row(photos, downscaled):
    folder, _ = photos
    out, _, _ = downscaled
    with open(os.path.join(out, pipeline.DEAD_LETTERS_NAME)) as handle:
        rows = [json.loads(line) for line in handle]
    assert sorted(row["path"] for row in rows) == sorted(
        os.path.join(folder, name) for name in BAD)
    reasons = {os.path.basename(row["path"]): row["error"] for row in rows}
    assert "decompression-bomb" in reasons["bomb.png"]
    assert "empty" in reasons["empty.jpg"]
    assert all(reason and "\n" not in reason for reason in reasons.values())


def test_a_rerun_writes_nothing_new_and_counts_skips(photos, downscaled):
    folder, good = photos
    out, _, _ = downscaled
    images = {path: stamp for path, stamp in _snapshot(out).items()
              if path != pipeline.DEAD_LETTERS_NAME}
    counts = _counts(["downscale", folder, "-o", out, "--model", MODEL])
    assert counts == {"processed": 0, "skipped": len(good), "failed": len(BAD), "ignored": 3}
    assert {path: stamp for path, stamp in _snapshot(out).items()
            if path != pipeline.DEAD_LETTERS_NAME} == images


def test_a_rerun_after_a_lost_output_redoes_only_that_one(photos, tmp_path):
    folder, good = photos
    argv = ["downscale", f"{folder}/sub/*.png", "-o", str(tmp_path), "--model", MODEL]
    first = _counts(argv)
    expected = [name for name in good if name.startswith("sub/") and name.endswith(".png")]
    assert first["processed"] == len(expected) and first["failed"] == 0
    lost = tmp_path / os.path.basename(expected[0])
    lost.unlink()
    # What a worker killed mid-write leaves: write_image's hidden temporary file.
    (tmp_path / f".{lost.name}.car-999999-abc").write_bytes(b"half")
    again = _counts(argv)
    assert (again["processed"], again["skipped"]) == (1, len(expected) - 1)
    assert lost.is_file()


def test_roundtrip_equals_car_roundtrip_and_scores_every_image(photos, tmp_path):
    folder, good = photos
    pattern = f"{folder}/img0[1-3].png"
    names = sorted(os.path.basename(name) for name in good
                   if name in ("img01.png", "img02.png"))
    reference = tmp_path / "car"
    assert cli.main(["roundtrip", *(os.path.join(folder, name) for name in names), "-o",
                     str(reference), "--model", MODEL, "--quiet"]) == cli.EXIT_OK
    out = tmp_path / "beam"
    assert launch.main(["roundtrip", pattern, "-o", str(out), "--model", MODEL,
                        "--format", "png"]) == launch.EXIT_OK
    for part in ("lr", "sr"):
        for name in names:
            assert _largest_difference(read_image(str(out / part / name)).rgb,
                                       read_image(str(reference / part / name)).rgb) <= 1
    with open(out / pipeline.SCORES_NAME) as handle:
        scores = {os.path.basename(row["path"]): row for row in map(json.loads, handle)}
    assert sorted(scores) == names
    assert all(20 < row["psnr_y"] < 60 and 0 < row["ssim_y"] <= 1 for row in scores.values())


def test_upscale_equals_car_upscale(photos, downscaled, tmp_path):
    out, _, _ = downscaled
    reference = tmp_path / "car"
    assert cli.main(["upscale", os.path.join(out, "sub"), "-o", str(reference), "--model", MODEL,
                     "--quiet"]) == cli.EXIT_OK
    ours = tmp_path / "beam"
    assert launch.main(["upscale", os.path.join(out, "sub"), "-o", str(ours), "--model", MODEL,
                        "--batch_size", "4"]) == launch.EXIT_OK
    names = sorted(name for name in os.listdir(reference))
    assert names and sorted(name for name in os.listdir(ours)
                            if name != pipeline.DEAD_LETTERS_NAME) == names
    for name in names:
        assert _largest_difference(read_image(str(ours / name)).rgb,
                                   read_image(str(reference / name)).rgb) <= 1


@pytest.mark.slow
def test_the_documented_multiprocessing_command(photos, downscaled, tmp_path):
    """tools/beam_downscale.py as docs/BEAM.md runs it: two worker processes."""
    folder, good = photos
    _, reference, _ = downscaled
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "beam_downscale.py"), "downscale", folder,
         "-o", str(tmp_path), "--model", MODEL, "--runner=DirectRunner",
         "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == launch.EXIT_FILE_ERRORS, result.stderr[-3000:]
    assert (f"{len(good)} processed, 0 skipped (outputs already there), {len(BAD)} failed"
            in result.stderr)
    for relative in good:
        assert _largest_difference(read_image(str(tmp_path / relative)).rgb,
                                   read_image(os.path.join(reference, relative)).rgb) <= 1
