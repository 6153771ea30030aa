"""Writing image files atomically, in the format the extension names."""

import os
import re
import tempfile

import numpy as np
from PIL import Image

from car_tf.image_io.errors import ImageWriteError, error_reason


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


# A write in progress is ".<name>.car-<pid>-<random>.tmp" beside its target (tempfile.mkstemp
# adds the random part). The pid tells a killed writer's leftovers from a live one's.
_TEMP_NAME = re.compile(r"^\..+\.car-(\d+)-[a-z0-9_]+\.tmp$")
_swept_folders = set()


def _temp_prefix(path):
    return f".{os.path.basename(path)}.car-{os.getpid()}-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temp_files(folder):
    """Deletes, once per process and folder, the temporary files that writers killed mid-write
    (SIGKILL, power loss) left in `folder`: only names of write_image's own pattern, whose
    writer process is gone. Assumes the writers ran on this machine (pids are per host)."""
    if folder in _swept_folders:
        return
    _swept_folders.add(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        try:
            os.remove(os.path.join(folder, name))
        except OSError:
            pass  # gone already, or not ours to remove


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
    path, rgb_uint8, alpha=None, icc_profile=None, grayscale=False, exif=None, quality=JPEG_QUALITY,
    png_compress_level=6,
):
    """Writes an image atomically; the format follows the extension.

    The file is written to a temporary file in the target folder and renamed
    over `path`, so a reader never sees half a file and a failed write leaves
    nothing behind. What a killed writer left there is removed on the first write
    to the folder (remove_stale_temp_files).

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
      png_compress_level: PNG's zlib level, 0..9 (6, Pillow's default; 1 is about 4x faster
        and about 5% bigger on photos).

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
    elif image_format == "PNG":
        options.update(compress_level=png_compress_level)

    remove_stale_temp_files(folder)
    temp_path = None
    try:
        descriptor, temp_path = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(path), suffix=".tmp")
        with os.fdopen(descriptor, "wb") as stream:
            image.save(stream, format=image_format, **options)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_path, _file_mode())
        os.replace(temp_path, path)
        temp_path = None
    except OSError as error:
        raise ImageWriteError(path, f"can't write: {error.strerror or error_reason(error)}") from None
    except (ValueError, TypeError) as error:
        raise ImageWriteError(path, f"can't encode {image_format}: {error_reason(error)}") from None
    finally:
        if temp_path is not None:
            try:
                os.remove(temp_path)
            except OSError:
                pass
    return notes
