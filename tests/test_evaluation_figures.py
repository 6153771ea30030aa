"""car_tf.evaluation.figures: picture sizes and contents, spectra, PNG bits per pixel."""

import io

import numpy as np
import pytest
from PIL import Image

from car_tf.evaluation import figures


def _image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_png_bits_per_pixel_matches_encoded_size():
    flat = np.full((32, 32, 3), 128, np.uint8)
    noise = _image(32, 32)
    flat_bpp, noise_bpp = figures.png_bits_per_pixel(flat), figures.png_bits_per_pixel(noise)
    # Random bytes don't compress: 24 bits of data per pixel plus PNG overhead.
    assert 24.0 < noise_bpp < 26.0
    assert flat_bpp < 1.0
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", optimize=True)
    assert noise_bpp == pytest.approx(8 * len(buffer.getvalue()) / (32 * 32))


def test_crop_box_finds_the_detailed_region_on_the_lr_grid():
    hr = np.full((64, 48, 3), 100, np.uint8)
    hr[40:56, 20:36] = _image(16, 16)  # the only texture
    top, left, size = figures.crop_box(hr, scale=4, max_crop_lr=4)
    assert size == 16
    assert (top, left) == (40, 20)
    assert top % 4 == 0 and left % 4 == 0


def test_crop_box_is_limited_by_the_image():
    top, left, size = figures.crop_box(_image(24, 40), scale=2)
    assert (top, size) == (0, 24)
    assert left % 2 == 0 and left + size <= 40


def test_comparison_figure_size_and_panels():
    scale = 2
    hr = _image(16, 24)
    bicubic_lr, car_lr = _image(8, 12, 1), _image(8, 12, 2)
    sr = [
        figures.Panel(_image(16, 24, 3), "bicubic + bicubic", "PSNR-Y 20.00 dB"),
        figures.Panel(_image(16, 24, 4), "car + bicubic", "PSNR-Y 21.00 dB"),
    ]
    picture = figures.comparison_figure(hr, bicubic_lr, car_lr, sr, scale, title="test")
    size = 16  # min(H, W, 32 * scale)
    zoom = figures.PANEL_TARGET // size
    panel = size * zoom
    count = 5
    m, line = figures.MARGIN, figures.LINE_HEIGHT
    assert picture.size == (count * panel + (count + 1) * m, panel + 3 * line + 3 * m)
    pixels = np.asarray(picture)
    top = 2 * m + line
    top_crop, left_crop, _ = figures.crop_box(hr, scale)
    # The HR panel is the crop enlarged by nearest neighbour.
    np.testing.assert_array_equal(pixels[top, m], hr[top_crop, left_crop])
    np.testing.assert_array_equal(
        pixels[top + panel - 1, m + panel - 1], hr[top_crop + size - 1, left_crop + size - 1]
    )
    # The CAR LR panel (third) shows LR pixels enlarged by zoom * scale.
    third = m + 2 * (panel + m)
    np.testing.assert_array_equal(pixels[top, third], car_lr[top_crop // scale, left_crop // scale])
    np.testing.assert_array_equal(
        pixels[top + zoom * scale, third], car_lr[top_crop // scale + 1, left_crop // scale]
    )
    # Labels are drawn under the panels.
    label_band = pixels[top + panel + 1 : top + panel + 2 * line, m : m + panel]
    assert (label_band < 128).any()


def test_log_spectrum_puts_dc_in_the_centre():
    image = np.full((16, 16, 3), 200, np.uint8)
    image[::2] = 0  # horizontal stripes: energy at DC and at the vertical Nyquist frequency
    spectrum = figures.log_spectrum(image)
    assert spectrum.shape == (16, 16) and spectrum.dtype == np.uint8
    assert spectrum[8, 8] == 255
    assert spectrum[0, 8] > 200
    assert spectrum[8, 0] == 0


def test_spectra_figure_size():
    images = [
        ("HR", _image(32, 40)),
        ("bicubic LR", _image(16, 20, 1)),
        ("CAR LR", _image(16, 20, 2)),
    ]
    picture = figures.spectra_figure(images, title="spectra")
    m, line = figures.MARGIN, figures.LINE_HEIGHT
    zoom = figures.PANEL_TARGET // 16
    assert picture.size == (3 * 20 * zoom + 4 * m, 16 * zoom + 3 * line + 3 * m)
    assert picture.mode == "RGB"
    # LR spectra are enlarged by nearest neighbour: each sample fills a zoom x zoom block.
    pixels = np.asarray(picture)
    top, left = 2 * m + line, m + 2 * (20 * zoom + m)
    expected = figures.log_spectrum(images[2][1])
    np.testing.assert_array_equal(
        pixels[top + zoom * 3 + zoom - 1, left + zoom * 5, 0], expected[3, 5]
    )
