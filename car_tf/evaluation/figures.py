"""Pictures and image statistics for evaluation reports (PIL only).

- `comparison_figure`: one row of panels for an image: a zoomed HR crop, the bicubic and
  CAR LR images of the same region enlarged by nearest neighbour, and every SR result of it,
  each labelled (SR panels with their whole-image PSNR on Y).
- `spectra_figure`: log-magnitude FFT spectra of the HR and LR images (paper Fig. 6).
- `save_figures`: both pictures of one evaluated image, written as PNG.
- `png_bits_per_pixel`: lossless PNG size of an image, the analogue of paper table 5
  (which used JPEG-LS).

All images are uint8 RGB [H, W, 3] numpy arrays; the figures are returned as PIL images.
"""

import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from car_tf import image_io
from car_tf.metrics import Y_COEFFICIENTS

# Target edge of a panel in display pixels; crops are enlarged by an integer factor towards it.
PANEL_TARGET = 256
# Edge of the HR crop at most, in LR pixels (so in HR pixels: this times the scale).
MAX_CROP_LR = 32
MARGIN = 6
LINE_HEIGHT = 14
LABEL_LINES = 2
TITLE_LINES = 1
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)


@dataclass
class Panel:
    """An SR (or other) image shown in the comparison, with the two label lines under it."""

    image: np.ndarray
    title: str
    caption: str = ""


def png_bits_per_pixel(rgb_uint8):
    """Bits per pixel of the image stored as an optimised lossless PNG (RGB, 8 bits a channel)."""
    rgb_uint8 = np.asarray(rgb_uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb_uint8).save(buffer, format="PNG", optimize=True)
    height, width = rgb_uint8.shape[:2]
    return 8.0 * buffer.tell() / (height * width)


def crop_box(hr_uint8, scale, max_crop_lr=MAX_CROP_LR):
    """(top, left, size) in HR pixels of the most detailed square crop, aligned to the LR grid.

    The crop edge is the largest multiple of `scale` not above min(H, W, max_crop_lr * scale);
    its position, on a grid of `scale` pixels, maximises the sum of squared luma gradients.
    """
    height, width = hr_uint8.shape[:2]
    size = min(height, width, max_crop_lr * scale) // scale * scale
    if size < scale:
        raise ValueError(
            f"image of {height}x{width} pixels is smaller than one LR pixel at scale {scale}"
        )
    luma = _luma(hr_uint8)
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    # Summed-area table: any window's energy in four lookups.
    table = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    tops = np.arange(0, height - size + 1, scale)
    lefts = np.arange(0, width - size + 1, scale)
    t, l = np.meshgrid(tops, lefts, indexing="ij")
    sums = table[t + size, l + size] - table[t, l + size] - table[t + size, l] + table[t, l]
    best = np.unravel_index(np.argmax(sums), sums.shape)
    return int(tops[best[0]]), int(lefts[best[1]]), int(size)


def _luma(rgb_uint8):
    """Y of the metrics (without its constant offset), in units of 1/255: float64 [H, W]."""
    return np.asarray(rgb_uint8, np.float64) @ (np.array(Y_COEFFICIENTS) / 255.0)


def _enlarge(image, factor):
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _font():
    return ImageFont.load_default()


def _canvas(panel_width, panel_height, count):
    width = count * panel_width + (count + 1) * MARGIN
    height = TITLE_LINES * LINE_HEIGHT + panel_height + LABEL_LINES * LINE_HEIGHT + 3 * MARGIN
    return Image.new("RGB", (width, height), BACKGROUND)


def _place(canvas, draw, index, tile, title, caption, panel_width):
    left = MARGIN + index * (panel_width + MARGIN)
    top = 2 * MARGIN + TITLE_LINES * LINE_HEIGHT
    canvas.paste(Image.fromarray(tile), (left, top))
    label_top = top + tile.shape[0] + MARGIN // 2
    draw.text((left, label_top), title, fill=TEXT_COLOUR, font=_font())
    draw.text((left, label_top + LINE_HEIGHT), caption, fill=TEXT_COLOUR, font=_font())


def comparison_figure(hr, bicubic_lr, car_lr, sr_panels, scale, title=""):
    """One row: HR crop, bicubic LR, CAR LR (nearest-neighbour enlarged), then `sr_panels`.

    Args:
      hr: uint8 [H, W, 3], the (cropped-to-multiple) HR image.
      bicubic_lr, car_lr: uint8 [H/scale, W/scale, 3].
      sr_panels: list of Panel with uint8 [H, W, 3] SR images (title e.g. "car + edsr",
        caption e.g. "PSNR-Y 31.20 dB").
      scale: the downscaling factor.
      title: a line written above the panels.

    Returns:
      PIL RGB image of width n*P + (n+1)*MARGIN and height P + 3*LINE_HEIGHT + 3*MARGIN,
      n = 3 + len(sr_panels), P = crop * zoom, zoom = max(1, PANEL_TARGET // crop).
    """
    top, left, size = crop_box(hr, scale)
    zoom = max(1, PANEL_TARGET // size)
    lr_top, lr_left, lr_size = top // scale, left // scale, size // scale

    def hr_crop(image):
        return _enlarge(image[top : top + size, left : left + size], zoom)

    def lr_crop(image):
        return _enlarge(image[lr_top : lr_top + lr_size, lr_left : lr_left + lr_size], zoom * scale)

    tiles = [
        (hr_crop(hr), "HR", f"crop {size}px at ({left},{top}), x{zoom}"),
        (lr_crop(bicubic_lr), "bicubic LR", f"nearest x{zoom * scale}"),
        (lr_crop(car_lr), "CAR LR", f"nearest x{zoom * scale}"),
    ]
    tiles += [(hr_crop(panel.image), panel.title, panel.caption) for panel in sr_panels]
    panel_size = size * zoom
    canvas = _canvas(panel_size, panel_size, len(tiles))
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), title, fill=TEXT_COLOUR, font=_font())
    for index, (tile, tile_title, caption) in enumerate(tiles):
        _place(canvas, draw, index, tile, tile_title, caption, panel_size)
    return canvas


def log_spectrum(rgb_uint8):
    """log(1 + |FFT|) of the image's luma, DC at the centre, as uint8 [H, W] (min 0, max 255)."""
    luma = _luma(rgb_uint8)
    magnitude = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(luma))))
    low, high = magnitude.min(), magnitude.max()
    scaled = (magnitude - low) / (high - low) if high > low else np.zeros_like(magnitude)
    return np.round(scaled * 255).astype(np.uint8)


def spectra_figure(images, title=""):
    """Side-by-side log-magnitude spectra, as paper Fig. 6.

    Args:
      images: list of (label, uint8 [h, w, 3]) — e.g. HR, bicubic LR, CAR LR. Every spectrum
        is shown at the size of the smallest image times zoom = max(1, PANEL_TARGET // its
        shorter edge): box-filtered down when larger, nearest-neighbour enlarged when smaller
        (a spectrum spans the image's own Nyquist range, whatever its size).
      title: a line written above the panels.

    Returns:
      PIL RGB image of width n*w*zoom + (n+1)*MARGIN and height h*zoom + 3*LINE_HEIGHT + 3*MARGIN,
      (h, w) the smallest image's size.
    """
    height = min(image.shape[0] for _, image in images)
    width = min(image.shape[1] for _, image in images)
    zoom = max(1, PANEL_TARGET // min(height, width))
    size = (width * zoom, height * zoom)
    canvas = _canvas(size[0], size[1], len(images))
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), title, fill=TEXT_COLOUR, font=_font())
    for index, (label, image) in enumerate(images):
        spectrum = Image.fromarray(log_spectrum(image))
        if spectrum.size[0] > size[0]:
            spectrum = spectrum.resize(size, Image.Resampling.BOX)
        elif spectrum.size != size:
            spectrum = spectrum.resize(size, Image.Resampling.NEAREST)
        tile = np.asarray(spectrum.convert("RGB"))
        _place(canvas, draw, index, tile, label, f"{image.shape[1]}x{image.shape[0]}", size[0])
    return canvas


def _write_png(path, pil_image):
    image_io.write_image(path, np.asarray(pil_image.convert("RGB")))


def save_figures(figures_dir, dataset, scale, name, hr, lrs, scores, panels, spectra):
    """Writes figures_dir/<dataset>_x<scale>/<image>_comparison.png (and _spectra.png).

    Args:
      hr: uint8 [H, W, 3]; lrs: {"bicubic": LR, "car": LR}, uint8; scores: the image's
      scores (their lr_bpp go into the title); panels: the SR Panels; spectra: also draw
      the spectra.

    Returns:
      The paths written.
    """
    folder = os.path.join(figures_dir, f"{dataset}_x{scale}")
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(name)[0].replace(os.sep, "_")
    bpp = {score.downscaler: score.lr_bpp for score in scores}
    title = (
        f"{dataset}/{name} x{scale}: LR PNG bpp bicubic {bpp['bicubic']:.2f}, "
        f"CAR {bpp['car']:.2f}"
    )
    comparison = comparison_figure(hr, lrs["bicubic"], lrs["car"], panels, scale, title)
    paths = [os.path.join(folder, f"{stem}_comparison.png")]
    _write_png(paths[0], comparison)
    if spectra:
        images = [("HR", hr), ("bicubic LR", lrs["bicubic"]), ("CAR LR", lrs["car"])]
        picture = spectra_figure(images, f"{dataset}/{name} x{scale}: log |FFT| of luma")
        paths.append(os.path.join(folder, f"{stem}_spectra.png"))
        _write_png(paths[1], picture)
    return paths
