"""Reading and writing image files at the edges of car_tf.

Whatever is on disk (PNG, JPEG, WebP, TIFF or BMP; grayscale, palette, RGBA,
16-bit, rotated by an EXIF tag) comes in as an 8-bit RGB array plus an optional
8-bit alpha plane, with notes saying what was converted. Writing goes back the
other way, atomically, with the format taken from the file extension.

User-facing failures raise ImageReadError / ImageWriteError, whose str() is one
line that names the file: the CLI prints it and moves on to the next file.
"""

import dataclasses
import os
import tempfile
import threading

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

# Pillow format names accepted on read. Opening is restricted to these so that
# a file with an image extension but exotic content never reaches a rarely used
# parser. (Camera JPEGs that Pillow calls MPO come through the JPEG opener.)
_READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
_ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
_EXIF_FORMATS = ("PNG", "JPEG", "WEBP")

JPEG_QUALITY = 95

# Image.MAX_IMAGE_PIXELS is process-wide; this lock keeps two reads with
# different limits from seeing each other's temporary value.
_pixel_limit_lock = threading.Lock()


class ImageReadError(Exception):
    """An image file that can't be read: missing, empty, corrupt, truncated, too large."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageWriteError(Exception):
    """An image file that can't be written: bad extension, folder not writable, disk full."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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
        raise ImageReadError(path, f"can't read: {_reason(error)}") from None
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
                path, f"{_reason(error)}; raise max_pixels if the file is trusted"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            # Pillow says "image file is truncated" or names the decoder error.
            raise ImageReadError(
                path, f"corrupt or truncated image data: {_reason(error)}"
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


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def list_images(paths, recursive=True, skipped=None):
    """The image files named by `paths`, in a stable order.

    Args:
      paths: a file or folder path, or a sequence of them.
      recursive: walk sub-folders of each folder.
      skipped: a list that, when given, gets the paths of the files inside folders
        that were passed over (other extensions, hidden files, hidden folders' files).

    Returns:
      A list of paths. Inside folders only files with an IMAGE_EXTENSIONS
      extension (any case) count, and hidden files and folders (".name") are
      skipped. A file named directly is kept whatever its extension, and so is a
      path that does not exist, so that read_image reports it by name instead of
      it vanishing silently. Each folder's files are sorted; duplicates are dropped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            found.append(path)
            continue
        if recursive:
            walk = os.walk(path)
        else:
            walk = [(path, [], next(os.walk(path), (path, [], []))[2])]
        for folder, subfolders, files in walk:
            if skipped is not None:
                # Hidden folders are not walked; their files count as passed over.
                for hidden in sorted(d for d in subfolders if d.startswith(".")):
                    for root, _, names in os.walk(os.path.join(folder, hidden)):
                        skipped.extend(os.path.join(root, name) for name in sorted(names))
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(os.path.join(folder, name))
                elif skipped is not None:
                    skipped.append(os.path.join(folder, name))
    return list(dict.fromkeys(found))


def _icc_colour_space(icc_profile):
    """The ICC header's data colour space: b"RGB ", b"GRAY", b"CMYK", ... or None."""
    if icc_profile and len(icc_profile) >= 20:
        return bytes(icc_profile[16:20])
    return None


def _check_array(name, array, ndim):
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 numpy array, got {getattr(array, 'dtype', type(array))}"
        )
    if array.ndim != ndim or (ndim == 3 and array.shape[2] != 3):
        shape = "[H, W, 3]" if ndim == 3 else "[H, W]"
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")


def _file_mode():
    """Permission bits for a new file: 0o666 less the process umask."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def write_image(
    path, rgb_uint8, alpha=None, icc_profile=None, grayscale=False, exif=None, quality=JPEG_QUALITY
):
    """Writes an image atomically; the format follows the extension.

    The file is written to a temporary file in the target folder and renamed
    over `path`, so a reader never sees half a file and a failed write leaves
    nothing behind.

    Args:
      path: ends in .png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp (any case).
      rgb_uint8: uint8 [H, W, 3].
      alpha: uint8 [H, W] or None. Kept for PNG, WebP and TIFF; dropped (with a
        note) for JPEG and BMP.
      icc_profile: ICC profile bytes to embed, or None. Dropped with a note when
        the format can't hold one (BMP) or its colour space doesn't match the
        output (a GRAY profile on RGB output, an RGB one on grayscale output).
      grayscale: write one gray channel (ITU-R 601 luma of rgb_uint8).
      exif: EXIF bytes to embed (PNG, JPEG, WebP), or None.
      quality: JPEG and lossy-WebP quality, 1..100; 100 makes WebP lossless.

    Returns:
      A list of notes about what was dropped, possibly empty.

    Raises:
      ImageWriteError: one line naming the path (bad extension, missing or
        read-only folder, disk full, ...).
      ValueError: arrays of the wrong type or shape (a programming error).
    """
    path = os.fspath(path)
    _check_array("rgb_uint8", rgb_uint8, 3)
    if alpha is not None:
        _check_array("alpha", alpha, 2)
        if alpha.shape != rgb_uint8.shape[:2]:
            raise ValueError(
                f"alpha shape {alpha.shape} doesn't match rgb_uint8 {rgb_uint8.shape[:2]}"
            )
    extension = os.path.splitext(path)[1].lower()
    image_format = _WRITE_FORMATS.get(extension)
    if image_format is None:
        raise ImageWriteError(
            path,
            f"unsupported extension {extension or '(none)'!r}; use one of {', '.join(_WRITE_FORMATS)}",
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ImageWriteError(path, f"folder {folder} does not exist")
    if os.path.isdir(path):
        raise ImageWriteError(path, "is a folder")

    notes = []
    image = Image.fromarray(np.ascontiguousarray(rgb_uint8))
    if grayscale:
        image = image.convert("L")
    if alpha is not None:
        if image_format in _ALPHA_FORMATS:
            image.putalpha(Image.fromarray(np.ascontiguousarray(alpha)))
        else:
            notes.append(f"alpha channel dropped: {image_format} has none")
    options = {}
    if icc_profile:
        wanted = b"GRAY" if grayscale else b"RGB "
        if image_format not in _ICC_FORMATS:
            notes.append(f"ICC profile dropped: {image_format} can't hold one here")
        elif _icc_colour_space(icc_profile) != wanted:
            space = (_icc_colour_space(icc_profile) or b"?").decode("ascii", "replace").strip()
            notes.append(
                f"ICC profile dropped: it is for {space}, the output is {wanted.decode().strip()}"
            )
        else:
            options["icc_profile"] = icc_profile
    if exif:
        if image_format in _EXIF_FORMATS:
            options["exif"] = exif
        else:
            notes.append(f"EXIF dropped: not written to {image_format}")
    if image_format == "JPEG":
        # 4:4:4 chroma: a CAR image is about fine detail, colour edges included.
        options.update(quality=quality, subsampling=0)
    elif image_format == "WEBP":
        options.update(quality=quality, lossless=quality >= 100)
    elif image_format == "TIFF":
        options.update(compression="tiff_adobe_deflate")

    temp_path = None
    try:
        descriptor, temp_path = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
        with os.fdopen(descriptor, "wb") as stream:
            image.save(stream, format=image_format, **options)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_path, _file_mode())
        os.replace(temp_path, path)
        temp_path = None
    except OSError as error:
        raise ImageWriteError(path, f"can't write: {error.strerror or _reason(error)}") from None
    except (ValueError, TypeError) as error:
        raise ImageWriteError(path, f"can't encode {image_format}: {_reason(error)}") from None
    finally:
        if temp_path is not None:
            try:
                os.remove(temp_path)
            except OSError:
                pass
    return notes
