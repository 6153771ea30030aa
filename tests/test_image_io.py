"""Tests for car_tf.image_io: every format and mode in, atomic writes out, one-line errors."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from car_tf.image_io import write as image_io_write
from car_tf.image_io import ImageReadError, ImageWriteError, read_image, write_image


def _noise(height, width, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png_48bit(path, samples):
    """A 16-bit-per-channel RGB PNG (Pillow can't write one)."""
    height, width, _ = samples.shape
    big_endian = samples.astype(">u2")
    raw = b"".join(b"\x00" + big_endian[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    with open(path, "wb") as stream:
        stream.write(b"\x89PNG\r\n\x1a\n")
        stream.write(_png_chunk(b"IHDR", header))
        stream.write(_png_chunk(b"IDAT", zlib.compress(raw)))
        stream.write(_png_chunk(b"IEND", b""))


def _srgb_profile():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("extension", [".png", ".tif", ".tiff", ".bmp", ".PNG"])
def test_lossless_formats_round_trip_exactly(tmp_path, extension):
    rgb = _noise(13, 17)
    path = tmp_path / f"image{extension}"
    assert write_image(path, rgb) == []
    decoded = read_image(path)
    np.testing.assert_array_equal(decoded.rgb, rgb)
    assert decoded.rgb.dtype == np.uint8
    assert decoded.alpha is None
    assert not decoded.was_grayscale
    assert decoded.notes == []


@pytest.mark.parametrize("extension", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_round_trip_closely(tmp_path, extension):
    # A smooth image: lossy codecs at quality 95 stay within a few levels.
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    path = tmp_path / f"image{extension}"
    write_image(path, rgb)
    decoded = read_image(path)
    assert decoded.rgb.shape == (32, 48, 3)
    assert np.abs(decoded.rgb.astype(int) - rgb).mean() < 3


def test_webp_quality_100_is_lossless(tmp_path):
    rgb = _noise(9, 11)
    write_image(tmp_path / "a.webp", rgb, quality=100)
    np.testing.assert_array_equal(read_image(tmp_path / "a.webp").rgb, rgb)


@pytest.mark.parametrize("extension", [".png", ".webp", ".tif"])
def test_alpha_round_trips_where_the_format_has_it(tmp_path, extension):
    rgb, alpha = _noise(8, 10), _noise(8, 10, 1, seed=1)[:, :, 0]
    path = tmp_path / f"a{extension}"
    assert write_image(path, rgb, alpha=alpha, quality=100) == []
    decoded = read_image(path)
    np.testing.assert_array_equal(decoded.alpha, alpha)
    assert decoded.mode == "RGBA"


def test_jpeg_drops_alpha_with_a_note(tmp_path):
    notes = write_image(tmp_path / "a.jpg", _noise(8, 8), alpha=np.zeros((8, 8), np.uint8))
    assert any("alpha" in note for note in notes)
    assert read_image(tmp_path / "a.jpg").alpha is None


def test_grayscale_file_expands_to_rgb_and_writes_back_gray(tmp_path):
    gray = _noise(6, 7, 1)[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    decoded = read_image(tmp_path / "g.png")
    assert decoded.was_grayscale and decoded.mode == "L"
    assert "grayscale expanded to RGB" in decoded.notes
    for channel in range(3):
        np.testing.assert_array_equal(decoded.rgb[:, :, channel], gray)
    write_image(tmp_path / "out.png", decoded.rgb, grayscale=True)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), gray)


def test_gray_with_alpha(tmp_path):
    Image.new("LA", (4, 3), (100, 50)).save(tmp_path / "la.png")
    decoded = read_image(tmp_path / "la.png")
    assert decoded.was_grayscale
    assert (decoded.rgb == 100).all() and (decoded.alpha == 50).all()


def test_palette_with_transparency_gives_alpha(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.save(tmp_path / "p.png", transparency=0)
    decoded = read_image(tmp_path / "p.png")
    assert decoded.alpha[0, 0] == 0 and decoded.alpha[1, 1] == 255
    np.testing.assert_array_equal(decoded.rgb[1, 1], [255, 0, 0])


@pytest.mark.parametrize("extension", [".png", ".tif"])
def test_16_bit_gray_is_scaled_not_clipped(tmp_path, extension):
    values = np.array([[0, 255, 257, 1000, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / f"g16{extension}")
    decoded = read_image(tmp_path / f"g16{extension}")
    assert decoded.mode.startswith("I;16")
    assert "16-bit converted to 8-bit" in decoded.notes
    assert decoded.was_grayscale
    np.testing.assert_array_equal(decoded.rgb[0, :, 0], [0, 1, 1, 4, 128, 255])


def test_16_bit_big_endian_tiff(tmp_path):
    values = np.array([[0, 65535, 32896]], np.uint16)
    Image.fromarray(values.astype(">u2")).save(tmp_path / "g16b.tif")
    decoded = read_image(tmp_path / "g16b.tif")
    assert decoded.mode == "I;16B"
    np.testing.assert_array_equal(decoded.rgb[0, :, 1], [0, 255, 128])


def test_48_bit_png_is_converted_with_a_note(tmp_path):
    samples = np.random.default_rng(3).integers(0, 65536, (5, 6, 3)).astype(np.uint16)
    _write_png_48bit(tmp_path / "rgb48.png", samples)
    decoded = read_image(tmp_path / "rgb48.png")
    assert "16-bit per channel converted to 8-bit" in decoded.notes
    exact = np.rint(samples / 257.0)
    assert np.abs(decoded.rgb.astype(int) - exact).max() <= 1


def test_exif_orientation_is_applied_and_cleared(tmp_path):
    # Orientation 6: the stored pixels must be rotated 90 degrees clockwise for display.
    stored = _noise(2, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif.tobytes())
    decoded = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(decoded.rgb, np.rot90(stored, k=-1))
    assert "EXIF orientation 6 applied" in decoded.notes
    assert decoded.exif.startswith(b"Exif\x00\x00")
    kept = Image.Exif()
    kept.load(decoded.exif)
    assert kept.get(0x0112, 1) == 1
    assert kept[0x010F] == "TestCam"


def test_exif_survives_a_jpeg_round_trip(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(_noise(4, 4)).save(tmp_path / "in.jpg", exif=exif.tobytes())
    decoded = read_image(tmp_path / "in.jpg")
    write_image(tmp_path / "out.jpg", decoded.rgb, exif=decoded.exif)
    again = read_image(tmp_path / "out.jpg")
    assert "EXIF orientation 3 applied" not in again.notes
    assert again.exif is not None


@pytest.mark.parametrize("extension", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_is_returned_and_kept(tmp_path, extension):
    profile = _srgb_profile()
    Image.fromarray(_noise(4, 4)).save(tmp_path / "in.png", icc_profile=profile)
    decoded = read_image(tmp_path / "in.png")
    assert decoded.icc_profile == profile
    assert (
        write_image(tmp_path / f"out{extension}", decoded.rgb, icc_profile=decoded.icc_profile)
        == []
    )
    assert read_image(tmp_path / f"out{extension}").icc_profile == profile


def test_icc_profile_of_another_colour_space_is_dropped_with_a_note(tmp_path):
    gray_profile = bytes(16) + b"GRAY" + bytes(108)
    notes = write_image(tmp_path / "out.png", _noise(4, 4), icc_profile=gray_profile)
    assert any("ICC profile dropped" in note and "GRAY" in note for note in notes)
    assert read_image(tmp_path / "out.png").icc_profile is None
    notes = write_image(tmp_path / "out.bmp", _noise(4, 4), icc_profile=_srgb_profile())
    assert any("ICC profile dropped" in note for note in notes)


def test_multi_frame_tiff_uses_the_first_frame(tmp_path):
    first, second = _noise(4, 4, seed=1), _noise(4, 4, seed=2)
    Image.fromarray(first).save(
        tmp_path / "pages.tif", save_all=True, append_images=[Image.fromarray(second)]
    )
    decoded = read_image(tmp_path / "pages.tif")
    np.testing.assert_array_equal(decoded.rgb, first)
    assert "2 frames; using the first" in decoded.notes


def _assert_one_line_naming(error, path):
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    assert error.value.path == str(path)


def _truncated_copy(source, target, keep_fraction=0.5):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])


@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif", ".bmp"])
def test_truncated_files_raise(tmp_path, extension):
    write_image(tmp_path / f"whole{extension}", _noise(64, 64))
    _truncated_copy(tmp_path / f"whole{extension}", tmp_path / f"cut{extension}")
    with pytest.raises(ImageReadError, match="truncated|corrupt|can't read") as error:
        read_image(tmp_path / f"cut{extension}")
    _assert_one_line_naming(error, tmp_path / f"cut{extension}")


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.png", b"", "empty file"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2, "not a readable"),
        ("text.jpg", b"this is not an image", "not a readable"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as error:
        read_image(path)
    _assert_one_line_naming(error, path)


def test_missing_file_and_folder_raise(tmp_path):
    with pytest.raises(ImageReadError, match="no such file") as error:
        read_image(tmp_path / "missing.png")
    _assert_one_line_naming(error, tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="is a folder") as error:
        read_image(tmp_path)
    _assert_one_line_naming(error, tmp_path)


def test_decompression_bomb_limit_and_override(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 50)).save(path)
    with pytest.raises(ImageReadError, match="decompression-bomb limit of 4999") as error:
        read_image(path, max_pixels=4999)
    _assert_one_line_naming(error, path)
    assert read_image(path, max_pixels=5000).rgb.shape == (50, 100, 3)
    assert read_image(path, max_pixels=0).rgb.shape == (50, 100, 3)


def test_default_limit_follows_pillow(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    # Pillow's rule: a warning above MAX_IMAGE_PIXELS, an error above twice that.
    with pytest.raises(ImageReadError, match="limit of 4000"):
        read_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    decoded = read_image(path)
    assert any("large image" in note for note in decoded.notes)
    assert Image.MAX_IMAGE_PIXELS == 3000
    with pytest.raises(ValueError, match="max_pixels"):
        read_image(path, max_pixels=-1)


def test_write_picks_the_format_from_the_extension(tmp_path):
    rgb = _noise(4, 4)
    for extension, expected in [
        (".jpeg", "JPEG"),
        (".webp", "WEBP"),
        (".TIF", "TIFF"),
        (".bmp", "BMP"),
    ]:
        write_image(tmp_path / f"x{extension}", rgb)
        with Image.open(tmp_path / f"x{extension}") as image:
            assert image.format == expected


def test_png_compress_level_trades_size_and_stays_lossless(tmp_path):
    yy, xx = np.mgrid[0:64, 0:96]
    rgb = np.stack([xx * 2, yy * 3, (xx + yy) % 7 * 30], axis=-1).astype(np.uint8)
    sizes = {}
    for level in (0, 9):
        write_image(tmp_path / f"x{level}.png", rgb, png_compress_level=level)
        np.testing.assert_array_equal(read_image(tmp_path / f"x{level}.png").rgb, rgb)
        sizes[level] = os.path.getsize(tmp_path / f"x{level}.png")
    assert sizes[0] > 64 * 96 * 3 > 4 * sizes[9]


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image(target, _noise(4, 4, seed=1))
    before = target.read_bytes()

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(ImageWriteError, match="No space left on device") as error:
        write_image(target, _noise(4, 4, seed=2))
    _assert_one_line_naming(error, target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_written_file_gets_normal_permissions(tmp_path):
    write_image(tmp_path / "out.png", _noise(2, 2))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "out.png").st_mode & 0o777 == 0o666 & ~umask


def test_write_errors_are_one_line(tmp_path, monkeypatch):
    rgb = _noise(2, 2)
    with pytest.raises(ImageWriteError, match="unsupported extension '.gif'") as error:
        write_image(tmp_path / "out.gif", rgb)
    _assert_one_line_naming(error, tmp_path / "out.gif")
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_image(tmp_path / "no" / "such" / "out.png", rgb)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageWriteError, match="is a folder"):
        write_image(tmp_path / "dir.png", rgb)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Root ignores folder permissions, so a read-only folder is simulated.
    monkeypatch.setattr(image_io_write.tempfile, "mkstemp", refuse)
    with pytest.raises(ImageWriteError, match="Permission denied") as error:
        write_image(tmp_path / "out.png", rgb)
    _assert_one_line_naming(error, tmp_path / "out.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageWriteError, match="can't write"):
            write_image(folder / "out.png", _noise(2, 2))
    finally:
        folder.chmod(0o700)


def test_write_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="alpha shape"):
        write_image(
            tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8), alpha=np.zeros((3, 2), np.uint8)
        )


def _dead_pid():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_a_write_removes_temporary_files_a_killed_writer_left_and_nothing_else(tmp_path, monkeypatch):
    # What a write in progress leaves in the folder, should its process be killed there.
    seen = []
    real_save = Image.Image.save

    def watching_save(self, fp, *args, **kwargs):
        seen.extend(name for name in os.listdir(tmp_path) if name.endswith(".tmp"))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", watching_save)
    write_image(tmp_path / "first.png", _noise(4, 4))
    monkeypatch.undo()
    assert len(seen) == 1
    dead_pid = _dead_pid()
    dead = seen[0].replace(f"-{os.getpid()}-", f"-{dead_pid}-")
    assert dead != seen[0]
    out = tmp_path / "out"
    out.mkdir()
    kept = [
        seen[0],  # a live writer's (this process)
        ".x.png.abcdefgh.tmp",  # not car_tf's naming
        f"x.png.car-{dead_pid}-abcdefgh.tmp",  # not hidden
        ".x.png.car-notapid-abcdefgh.tmp",
        "notes.tmp",
        "other.png",
    ]
    for name in kept + [dead]:
        (out / name).write_bytes(b"partial")
    (out / "sub").mkdir()
    (out / "sub" / dead).write_bytes(b"partial")
    write_image(out / "new.png", _noise(4, 4))
    assert sorted(os.listdir(out)) == sorted(kept + ["new.png", "sub"])
    # Only the folder written to is swept.
    assert os.listdir(out / "sub") == [dead]
