"""Decode-once image stores behind the training pipeline.

Training draws many small crops from a few hundred large images, so images are
decoded once and kept where a crop can be cut cheaply:

  cache="memory"  decoded arrays in RAM (fastest; RAM = sum of H*W*3 bytes,
                  about 6 GB for DIV2K's 800 training images);
  cache=<folder>  one raw uint8 file per data set in that folder, memory-mapped,
                  so crops read only the pages they touch and later runs skip
                  decoding. The file name carries a fingerprint of the sources
                  (paths, sizes, mtimes), so a changed data set gets a new file;
  cache="none"    only shapes are kept and the file is decoded again for every
                  crop (least memory, slowest; image files only).
"""

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
PROGRESS_INTERVAL_S = 10.0


@dataclasses.dataclass
class ImageSource:
    """Where a store gets its images.

    Attributes:
      fingerprint: JSON-able description that changes when the decoded images
        would (file paths, sizes and mtimes; a TFDS name and split).
      images: returns an iterator of (name, key, rgb uint8 [H, W, 3]) in a
        stable order; unreadable entries are already skipped (with a warning).
      reload: key -> rgb uint8 [H, W, 3] or None, to decode one entry again
        (cache="none"); None if the source can't be read at random.
      description: a few words for log lines ("291 image files").
    """

    fingerprint: dict
    images: Callable[[], Iterator[tuple[str, object, np.ndarray]]]
    reload: Callable[[object], np.ndarray | None] | None = None
    description: str = ""


def _check_crop(store, index, top, left, size):
    height, width = store.shapes[index]
    if not (0 <= top <= height - size and 0 <= left <= width - size):
        raise ValueError(
            f"crop {size}x{size} at ({top}, {left}) is outside image {index} "
            f"({store.names[index]}, {height}x{width})"
        )


class MemoryStore:
    """Decoded images held in RAM.

    Attributes:
      names: one display name per image.
      shapes: int64 [N, 2], (height, width) of each image.
    """

    def __init__(self, names, images):
        self.names = list(names)
        self._images = list(images)
        self.shapes = np.array([image.shape[:2] for image in self._images], np.int64).reshape(-1, 2)

    def crop(self, index, top, left, size):
        """uint8 [size, size, 3] from image `index` at row `top`, column `left`."""
        index, top, left, size = int(index), int(top), int(left), int(size)
        _check_crop(self, index, top, left, size)
        return np.array(self._images[index][top : top + size, left : left + size])


class FileStore:
    """Decoded images in one raw uint8 file, memory-mapped; see the module docstring."""

    def __init__(self, pixels_path, index):
        self.names = list(index["names"])
        self.shapes = np.array(index["shapes"], np.int64).reshape(-1, 2)
        self._offsets = list(index["offsets"])
        self.path = pixels_path
        self._pixels = (
            np.memmap(pixels_path, dtype=np.uint8, mode="r") if index["total_bytes"] else None
        )

    def crop(self, index, top, left, size):
        """uint8 [size, size, 3] from image `index` at row `top`, column `left`."""
        index, top, left, size = int(index), int(top), int(left), int(size)
        _check_crop(self, index, top, left, size)
        height, width = self.shapes[index]
        start = self._offsets[index]
        image = self._pixels[start : start + height * width * 3].reshape(height, width, 3)
        return np.array(image[top : top + size, left : left + size])


class ReloadStore:
    """Only shapes in memory; each crop decodes its file again (cache="none")."""

    def __init__(self, names, keys, shapes, reload):
        self.names = list(names)
        self._keys = list(keys)
        self.shapes = np.array(shapes, np.int64).reshape(-1, 2)
        self._reload = reload
        self._warned = set()

    def crop(self, index, top, left, size):
        """uint8 [size, size, 3] from image `index` at row `top`, column `left`.

        A file that has become unreadable or changed size since the store was
        built is not allowed to stop training: the crop comes from the next
        usable image instead (clamped to fit), with one warning per file.
        """
        index, top, left, size = int(index), int(top), int(left), int(size)
        _check_crop(self, index, top, left, size)
        count = len(self.names)
        for attempt in range(count):
            candidate = (index + attempt) % count
            image = self._reload(self._keys[candidate])
            if image is not None and tuple(image.shape[:2]) == tuple(self.shapes[candidate]):
                height, width = image.shape[:2]
                if height >= size and width >= size:
                    row, column = min(top, height - size), min(left, width - size)
                    return np.array(image[row : row + size, column : column + size])
                continue
            if candidate not in self._warned:
                self._warned.add(candidate)
                logger.warning(
                    "%s changed or became unreadable since it was first decoded; "
                    "using other images in its place",
                    self.names[candidate],
                )
        raise RuntimeError(f"none of the {count} training images can be read any more")


def _fingerprint_hash(sources):
    text = json.dumps(
        {"version": CACHE_FORMAT_VERSION, "sources": [source.fingerprint for source in sources]},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class _Progress:
    """Logs a line every PROGRESS_INTERVAL_S while decoding, and a summary."""

    def __init__(self, what):
        self.what = what
        self.start = self.last = time.monotonic()
        self.count = 0
        self.bytes = 0

    def add(self, image):
        self.count += 1
        self.bytes += image.nbytes
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            logger.info("%s: %d images decoded so far", self.what, self.count)

    def done(self):
        logger.info(
            "%s: %d images, %.1f MB decoded in %.1f s",
            self.what,
            self.count,
            self.bytes / 1e6,
            time.monotonic() - self.start,
        )


def _all_images(sources, what):
    progress = _Progress(what)
    for source in sources:
        for name, key, image in source.images():
            progress.add(image)
            yield source, name, key, image
    progress.done()


def _build_file_store(sources, folder):
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, f"car_tf_images_{_fingerprint_hash(sources)}")
    pixels_path, index_path = stem + ".u8", stem + ".json"
    try:
        with open(index_path) as stream:
            index = json.load(stream)
        if os.path.getsize(pixels_path) == index["total_bytes"]:
            logger.info("using cached images %s (%d images)", pixels_path, len(index["names"]))
            return FileStore(pixels_path, index)
        logger.warning("cache %s is incomplete; decoding again", pixels_path)
    except (OSError, ValueError, KeyError):
        pass

    names, shapes, offsets = [], [], []
    total = 0
    descriptor, temp_pixels = tempfile.mkstemp(dir=folder, prefix=".car_tf_images_", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            for _, name, _, image in _all_images(sources, f"caching to {pixels_path}"):
                names.append(name)
                shapes.append(list(image.shape[:2]))
                offsets.append(total)
                stream.write(np.ascontiguousarray(image, np.uint8).tobytes())
                total += image.nbytes
        index = {"names": names, "shapes": shapes, "offsets": offsets, "total_bytes": total}
        os.replace(temp_pixels, pixels_path)
        temp_pixels = None
        # The index goes last: its presence says the pixel file is complete.
        descriptor, temp_index = tempfile.mkstemp(dir=folder, prefix=".car_tf_images_", suffix=".tmp")
        with os.fdopen(descriptor, "w") as stream:
            json.dump(index, stream)
        os.replace(temp_index, index_path)
    finally:
        if temp_pixels is not None and os.path.exists(temp_pixels):
            os.remove(temp_pixels)
    return FileStore(pixels_path, index)


def build_image_store(sources, cache="memory"):
    """Decodes the images of `sources` once and returns a store of them.

    Args:
      sources: a sequence of ImageSource.
      cache: "memory", "none", or a folder path for a memory-mapped cache file.

    Returns:
      MemoryStore, FileStore or ReloadStore: each has `names`, `shapes`
      (int64 [N, 2]) and `crop(index, top, left, size)` -> uint8 [size, size, 3].

    Raises:
      ValueError: an unknown cache value, cache="none" with a source that can't
        reload, or no readable image at all.
    """
    sources = list(sources)
    if not isinstance(cache, (str, os.PathLike)) or not os.fspath(cache):
        raise ValueError(f'cache must be "memory", "none" or a folder path, got {cache!r}')
    cache = os.fspath(cache)
    if cache == "memory":
        entries = [(name, image) for _, name, _, image in _all_images(sources, "decoding")]
        store = MemoryStore([name for name, _ in entries], [image for _, image in entries])
    elif cache == "none":
        for source in sources:
            if source.reload is None:
                raise ValueError(
                    f'cache="none" needs image files; {source.description or "a source"} can only be '
                    'read in order: use cache="memory" or a cache folder'
                )
        names, keys, shapes = [], [], []
        for source, name, key, image in _all_images(sources, "checking"):
            names.append(name)
            keys.append((sources.index(source), key))
            shapes.append(image.shape[:2])
        store = ReloadStore(names, keys, shapes, lambda key: sources[key[0]].reload(key[1]))
    else:
        store = _build_file_store(sources, cache)
    if not store.names:
        described = ", ".join(source.description for source in sources if source.description)
        raise ValueError(f"no readable image in {described or 'the data sources'}")
    return store
