"""Reading image files: whatever is on disk becomes 8-bit RGB plus an optional alpha plane."""

import dataclasses
import os
import threading

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from car_tf.image_io.errors import ImageReadError, error_reason


# Pillow format names accepted on read. Opening is restricted to these so that
# a file with an image extension but exotic content never reaches a rarely used
# parser. (Camera JPEGs that Pillow calls MPO come through the JPEG opener.)
_READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")


# Image.MAX_IMAGE_PIXELS is process-wide; this lock keeps two reads with
# different limits from seeing each other's temporary value.
_pixel_limit_lock = threading.Lock()


@dataclasses.dataclass
class DecodedImage:
    """An image file decoded to 8-bit RGB.

    Attributes:
      rgb: uint8 [H, W, 3], orientation already applied.
      alpha: uint8 [H, W] when the file had transparency, else None.
      icc_profile: the embedded ICC profile bytes, or None. It describes the
        file's colour space: a GRAY profile for grayscale files.
      exif: EXIF bytes (starting b"Exif\\0\\0") with the orientation already
        applied and its tag removed, or None.
      notes: what was converted on the way, one short sentence each.
      mode: the Pillow mode of the file ("RGB", "L", "I;16", "RGBA", "P", ...).
      was_grayscale: the file had no colour (its gray plane is repeated in rgb).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    mode: str = "RGB"
    was_grayscale: bool = False

    @property
    def height(self):
        return self.rgb.shape[0]

    @property
    def width(self):
        return self.rgb.shape[1]


def _pixel_limits(max_pixels):
    """(warn_above, fail_above) pixel counts; None means no limit.

    max_pixels None keeps Pillow's own rule (a note above Image.MAX_IMAGE_PIXELS,
    an error above twice that); 0 lifts the limit; n > 0 fails above n.
    """
    if max_pixels is None:
        limit = Image.MAX_IMAGE_PIXELS
        return (limit, 2 * limit) if limit else (None, None)
    if max_pixels < 0:
        raise ValueError(f"max_pixels must be >= 0 (0 = no limit), got {max_pixels}")
    return (None, max_pixels or None)


def _open(path):
    """Image.open with Pillow's own pixel check off; read_image checks instead."""
    with _pixel_limit_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path, formats=_READ_FORMATS)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _scale_to_uint8(values, full_scale):
    """Maps [0, full_scale] linearly onto [0, 255] with rounding."""
    scaled = np.rint(values.astype(np.float64) * (255.0 / full_scale))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _high_precision_gray_to_uint8(image, notes):
    """uint8 [H, W] from a 16-bit ("I;16*"), 32-bit int ("I") or float ("F") gray image."""
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        notes.append("16-bit converted to 8-bit")
        return _scale_to_uint8(values, 65535.0)
    low, high = float(values.min()), float(values.max())
    if image.mode == "I" and low >= 0 and high <= 65535:
        # Pillow decodes some 16-bit files (e.g. PNG with a transparency key) as "I".
        notes.append("16-bit converted to 8-bit")
        return _scale_to_uint8(values, 65535.0)
    if image.mode == "F" and low >= 0 and high <= 1:
        notes.append("32-bit float converted to 8-bit")
        return _scale_to_uint8(values, 1.0)
    notes.append(f"{image.mode} samples in [{low:g}, {high:g}] stretched to 8-bit")
    if high == low:
        return np.zeros(values.shape, np.uint8)
    return _scale_to_uint8(values - low, high - low)


def _has_16bit_colour(image):
    """Whether a not yet loaded RGB(A) image stores 16 bits per sample (48/64-bit PNG, TIFF)."""
    return image.mode in ("RGB", "RGBA") and any(
        ";16" in str(getattr(tile, "args", "")) for tile in getattr(image, "tile", None) or []
    )


def _to_rgb_and_alpha(image, notes):
    """(rgb uint8 [H,W,3], alpha uint8 [H,W] | None, was_grayscale) from any Pillow mode."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        notes.append("grayscale expanded to RGB")
        gray = _high_precision_gray_to_uint8(image, notes)
        return np.repeat(gray[:, :, None], 3, axis=2), None, True
    if mode in ("1", "L", "LA", "La"):
        notes.append("grayscale expanded to RGB")
        image = image.convert("LA") if mode in ("LA", "La") else image.convert("L")
        planes = np.asarray(image)
        if image.mode == "LA":
            gray, alpha = planes[:, :, 0], np.ascontiguousarray(planes[:, :, 1])
        else:
            gray, alpha = planes, None
        return np.repeat(gray[:, :, None], 3, axis=2), alpha, True
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        notes.append("palette expanded to RGB")
        mode = image.mode
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB without colour management")
        image = image.convert("RGB")
        mode = "RGB"
    elif mode not in ("RGB", "RGBA"):
        notes.append(f"{mode} converted to RGB")
        image = image.convert("RGBA" if mode in ("RGBa",) else "RGB")
        mode = image.mode
    planes = np.asarray(image)
    if mode == "RGBA":
        return np.ascontiguousarray(planes[:, :, :3]), np.ascontiguousarray(planes[:, :, 3]), False
    return np.ascontiguousarray(planes), None, False


def read_image(path, max_pixels=None):
    """Reads an image file as 8-bit RGB (+ alpha), honouring its EXIF orientation.

    Args:
      path: a PNG, JPEG, WebP, TIFF or BMP file.
      max_pixels: decompression-bomb limit in pixels. None keeps Pillow's rule
        (error above 2 * PIL.Image.MAX_IMAGE_PIXELS), 0 means no limit.

    Returns:
      A DecodedImage; its notes say what was converted (16-bit, grayscale, ...).

    Raises:
      ImageReadError: one line naming the file, for a missing, empty, corrupt,
        truncated, unsupported or too large file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as error:
        raise ImageReadError(path, f"can't read: {error.strerror or error}") from None
    if size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    warn_above, fail_above = _pixel_limits(max_pixels)
    try:
        image = _open(path)
    except UnidentifiedImageError:
        raise ImageReadError(
            path, "not a readable PNG, JPEG, WebP, TIFF or BMP image (corrupt or another format)"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"can't read: {error_reason(error)}") from None
    with image:
        notes = []
        width, height = image.size
        pixels = width * height
        if fail_above is not None and pixels > fail_above:
            raise ImageReadError(
                path,
                f"{width}x{height} = {pixels} pixels is over the decompression-bomb limit "
                f"of {fail_above}; raise the limit (max_pixels) if the file is trusted",
            )
        if warn_above is not None and pixels > warn_above:
            notes.append(f"large image: {pixels} pixels (over {warn_above})")
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"{frames} frames; using the first")
        if _has_16bit_colour(image):
            # Pillow has no 16-bit colour modes: it keeps the high byte of each
            # sample, which is within one level of exact rounding.
            notes.append("16-bit per channel converted to 8-bit")
        try:
            image.load()
            orientation = image.getexif().get(0x0112)
            oriented = image
            if orientation not in (None, 1):
                # Transposing copies the image, so only when there is something to do.
                oriented = ImageOps.exif_transpose(image)
                notes.append(f"EXIF orientation {orientation} applied")
            rgb, alpha, was_grayscale = _to_rgb_and_alpha(oriented, notes)
        except Image.DecompressionBombError as error:
            # Pillow also checks the size of each TIFF tile while loading.
            raise ImageReadError(
                path, f"{error_reason(error)}; raise max_pixels if the file is trusted"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            # Pillow says "image file is truncated" or names the decoder error.
            raise ImageReadError(
                path, f"corrupt or truncated image data: {error_reason(error)}"
            ) from None
        return DecodedImage(
            rgb=rgb,
            alpha=alpha,
            icc_profile=image.info.get("icc_profile") or None,
            exif=_exif_bytes(oriented.info.get("exif")),
            notes=notes,
            mode=image.mode,
            was_grayscale=was_grayscale,
        )


def _exif_bytes(raw):
    """EXIF as Pillow's save(exif=...) takes it: with the b"Exif\\0\\0" header.

    PNG and WebP files carry the TIFF structure without that header.
    """
    if not raw:
        return None
    raw = bytes(raw)
    return raw if raw.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + raw
