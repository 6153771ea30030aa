"""Folders of images as a data source: any folder tree of PNG/JPEG/... files,
DIV2K's layout included.

Decoding goes through car_tf.image_io, so grayscale, palette, RGBA and 16-bit
files arrive as 8-bit RGB (with a logged note) and a file that can't be read
is skipped with a warning that names it.
"""

import collections
import concurrent.futures
import logging
import os

from car_tf import image_io
from car_tf.data.cache import ImageSource

logger = logging.getLogger(__name__)

# A DIV2K download unpacks to DIV2K_train_HR/, DIV2K_valid_HR/ and the
# DIV2K_*_LR_*/ folders side by side. Given that root, only the HR folder of the
# split is meant: walking the whole tree would mix LR images into the HR set.
DIV2K_HR_FOLDERS = {"train": "DIV2K_train_HR", "validation": "DIV2K_valid_HR"}


def find_image_files(data_dirs, split="train", recursive=True):
    """The image files under each folder of `data_dirs`, folder by folder, sorted.

    Args:
      data_dirs: a folder or a sequence of folders.
      split: "train" or "validation": which HR folder to use when a folder is
        a DIV2K root (holds DIV2K_train_HR/ or DIV2K_valid_HR/).
      recursive: walk sub-folders.

    Returns:
      List of (data_dir, path) pairs.

    Raises:
      FileNotFoundError: a folder that doesn't exist.
      ValueError: a folder without any image file.
    """
    if isinstance(data_dirs, (str, os.PathLike)):
        data_dirs = [data_dirs]
    found = []
    for data_dir in map(os.fspath, data_dirs):
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"data folder {data_dir} does not exist or is not a folder")
        div2k_hr = os.path.join(data_dir, DIV2K_HR_FOLDERS[split])
        if os.path.isdir(div2k_hr):
            logger.info("%s is a DIV2K root: using %s only", data_dir, div2k_hr)
            data_dir = div2k_hr
        files = image_io.list_images(data_dir, recursive=recursive)
        if not files:
            raise ValueError(
                f"no image files ({', '.join(image_io.IMAGE_EXTENSIONS)}) under {data_dir}"
            )
        found.extend((data_dir, path) for path in files)
    return found


def display_name(data_dir, path):
    """`path` relative to the parent of `data_dir`, with / separators: "Set5/baby.png"."""
    parent = os.path.dirname(os.path.abspath(data_dir))
    return os.path.relpath(os.path.abspath(path), parent).replace(os.sep, "/")


def decode_or_skip(path, max_pixels=None):
    """uint8 [H, W, 3] RGB of an image file, or None (with a warning) if it can't be read.

    Conversion notes (grayscale, 16-bit, alpha ignored, ...) are logged at INFO.
    """
    try:
        decoded = image_io.read_image(path, max_pixels=max_pixels)
    except image_io.ImageReadError as error:
        logger.warning("skipping %s", error)
        return None
    notes = list(decoded.notes)
    if decoded.alpha is not None:
        notes.append("alpha channel ignored")
    for note in notes:
        logger.info("%s: %s", path, note)
    return decoded.rgb


def map_in_order(function, items, workers):
    """Yields function(item) for each item, in order, running up to `workers` at once.

    Pillow releases the GIL while decoding, so threads decode in parallel; at
    most 2 * workers results wait in memory.
    """
    if workers <= 1:
        yield from map(function, items)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def folder_source(data_dirs, split="train", max_pixels=None, workers=None):
    """An ImageSource over every image file under `data_dirs`.

    Args:
      data_dirs: a folder or a sequence of folders (see find_image_files).
      split: "train" or "validation" (only matters for a DIV2K root).
      max_pixels: decompression-bomb limit passed to image_io.read_image.
      workers: decoding threads; default min(4, CPU count).

    Raises:
      FileNotFoundError / ValueError: as find_image_files, at once.
    """
    files = find_image_files(data_dirs, split=split)
    workers = workers or min(4, os.cpu_count() or 1)

    def images():
        decoded = map_in_order(lambda item: decode_or_skip(item[1], max_pixels), files, workers)
        for (data_dir, path), rgb in zip(files, decoded):
            if rgb is not None:
                yield display_name(data_dir, path), rgb

    entries = []
    for _, path in files:
        try:
            stat = os.stat(path)
            entries.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            entries.append([os.path.abspath(path), None, None])
    return ImageSource(
        fingerprint={"kind": "folders", "files": entries, "max_pixels": max_pixels},
        images=images,
        description=f"{len(files)} image files",
    )
