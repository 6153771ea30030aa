"""car_tf.beam.files: what an input names, where its outputs go, reads and writes."""

import os

import numpy as np
import pytest

from car_tf.beam import files
from car_tf.image_io import ImageReadError, read_image, write_image


def test_a_folder_matches_recursively_and_mirrors_below_itself(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    source = files.parse_input(str(tmp_path / "a"))
    assert source.in_folder
    assert source.pattern == f"{tmp_path}/a/**"
    assert source.base == f"{tmp_path}/a/"
    assert files.relative_path(f"{tmp_path}/a/b/x.png", source) == "b/x.png"


def test_a_pattern_mirrors_below_the_folder_before_its_first_wildcard(tmp_path):
    source = files.parse_input(f"{tmp_path}/photos/*/raw/*.jpg")
    assert source.in_folder and source.base == f"{tmp_path}/photos/"
    assert files.relative_path(f"{tmp_path}/photos/2024/raw/y.jpg", source) == "2024/raw/y.jpg"


def test_a_file_named_directly_lands_in_the_output_folder_itself(tmp_path):
    source = files.parse_input(str(tmp_path / "deep" / "Readme.TXT"))
    assert not source.in_folder
    assert files.relative_path(source.pattern, source) == "Readme.TXT"


def test_only_visible_images_count_inside_folders():
    assert files.counts_as_image("a/b/photo.JPG")
    assert not files.counts_as_image("notes.txt")
    assert not files.counts_as_image(".cache/photo.png")
    assert not files.counts_as_image("a/.photo.png.car-123-tmp")


def test_output_paths_per_command_and_format():
    assert files.output_paths("/out", "a/x.jpg", "downscale") == ["/out/a/x.jpg"]
    assert files.output_paths("/out", "a/x.jpg", "upscale", ".png") == ["/out/a/x.png"]
    assert files.output_paths("/out", "x.tif", "roundtrip") == ["/out/lr/x.tif", "/out/sr/x.tif"]


def test_match_finds_every_file_below_a_folder_sorted(tmp_path):
    for name in ("b.png", "a/c.png", "a/d/e.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert files.match(f"{tmp_path}/**") == sorted(
        str(tmp_path / name) for name in ("b.png", "a/c.png", "a/d/e.txt"))
    assert files.match(f"{tmp_path}/nothing/*.png") == []


def test_write_creates_folders_and_read_back_returns_the_file(tmp_path):
    source = tmp_path / "in.png"
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_image(str(source), rgb)
    like = read_image(str(source))
    target = tmp_path / "x" / "y" / "out.jpg"
    _, decoded = files.write(str(target), rgb, None, like, read_back=True)
    assert target.is_file()
    assert decoded.rgb.shape == (6, 5, 3)
    assert [name for name in os.listdir(target.parent)] == ["out.jpg"]  # no temporary left


def test_read_names_the_file_that_is_not_an_image(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no image here")
    with pytest.raises(ImageReadError, match="bad.png"):
        files.read(str(bad))
