"""Decode-once image stores behind the tf.data pipelines.

Training draws many small crops from a few hundred large images, so images are
decoded once (in Python, through car_tf.image_io) into one flat uint8 buffer,
and tf.data cuts crops out of that buffer with TensorFlow ops only. No Python
runs inside the pipeline: a py_function would hold tf.data worker threads on
the GIL, and a process that exits with such a call in flight hangs for ever.

  cache="memory"  the buffer is in RAM (RAM = sum of H*W*3 bytes, about
                  6.9 GB for DIV2K's 800 training images);
  cache=<folder>  the buffer is a file in that folder, memory-mapped: crops
                  touch only their own pages, which the OS can evict, and later
                  runs skip decoding. The file name carries a fingerprint of the
                  sources (paths, sizes, mtimes), so a changed data set gets a
                  new file;
  cache="none"    nothing is kept between runs: the buffer is an anonymous
                  temporary file (in $TMPDIR), memory-mapped like a folder cache.
"""

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from car_tf.progress import Progress

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
PROGRESS_INTERVAL_S = 10.0
# TensorFlow wants tensor buffers aligned to 64 bytes.
_ALIGNMENT = 64


@dataclasses.dataclass
class ImageSource:
    """Where a store gets its images.

    Attributes:
      fingerprint: JSON-able description that changes when the decoded images
        would (file paths, sizes and mtimes; a TFDS name and split).
      images: returns an iterator of (name, rgb uint8 [H, W, 3]) in a stable
        order; unreadable entries are already skipped (with a warning).
      description: a few words for log lines ("291 image files").
    """

    fingerprint: dict
    images: Callable[[], Iterator[tuple[str, np.ndarray]]]
    description: str = ""


class ImageStore:
    """Decoded images in one flat uint8 buffer.

    Image i is pixels[offsets[i] : offsets[i] + H*W*3] in row-major [H, W, 3].

    Attributes:
      names: one display name per image.
      shapes: int64 [N, 2], (height, width) of each image.
      offsets: int64 [N], where each image starts in the buffer.
      path: the cache file backing the buffer, or None.
    """

    def __init__(self, names, shapes, offsets, pixels, path=None):
        self.names = list(names)
        self.shapes = np.asarray(shapes, np.int64).reshape(-1, 2)
        self.offsets = np.asarray(offsets, np.int64).reshape(-1)
        self.path = path
        self._pixels = pixels
        self._tensors = None

    def image(self, index):
        """uint8 [H, W, 3] numpy view of image `index`."""
        height, width = self.shapes[index]
        start = self.offsets[index]
        return self._pixels[start : start + height * width * 3].reshape(height, width, 3)

    def crop(self, index, top, left, size):
        """uint8 [size, size, 3] copy from image `index` at row `top`, column `left`."""
        height, width = self.shapes[index]
        if not (0 <= top <= height - size and 0 <= left <= width - size):
            raise ValueError(
                f"crop {size}x{size} at ({top}, {left}) is outside image {index} "
                f"({self.names[index]}, {height}x{width})"
            )
        return np.array(self.image(index)[top : top + size, left : left + size])

    def tensors(self):
        """(pixels uint8 [total], offsets int64 [N], shapes int64 [N, 2]) on the CPU.

        The pixel tensor shares the buffer (DLPack), so RAM is not doubled and
        a memory-mapped cache stays on disk until pages are touched.
        """
        if self._tensors is None:
            with tf.device("/cpu:0"):
                if self._pixels.size:
                    pixels = tf.experimental.dlpack.from_dlpack(self._pixels.__dlpack__())
                else:
                    pixels = tf.zeros([0], tf.uint8)
                self._tensors = (pixels, tf.constant(self.offsets), tf.constant(self.shapes))
        return self._tensors


def _aligned_empty(size):
    """Uninitialised writable uint8 [size], its start aligned for TensorFlow."""
    raw = np.empty(size + _ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    return raw[start : start + size]


def _map_file(stream_or_path, size):
    """Memory-maps `size` bytes privately: writable for DLPack, never written back."""
    if size == 0:
        return np.zeros(0, np.uint8)
    return np.memmap(stream_or_path, dtype=np.uint8, mode="c", shape=(size,))


def _fingerprint_hash(sources):
    text = json.dumps(
        {"version": CACHE_FORMAT_VERSION, "sources": [source.fingerprint for source in sources]},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _all_images(sources, what):
    progress = Progress(label=what, unit=" images decoded", logger=logger,
                        log_every_s=PROGRESS_INTERVAL_S)
    decoded_bytes = 0
    for source in sources:
        for name, image in source.images():
            decoded_bytes += image.nbytes
            progress.finish()
            yield name, np.ascontiguousarray(image, np.uint8)
    logger.info("%s: %d images, %.1f MB decoded in %.1f s", what, progress.done,
                decoded_bytes / 1e6, progress.elapsed())


def _write_images(sources, stream, what):
    """Writes every image's bytes to `stream`; returns the index dict."""
    names, shapes, offsets = [], [], []
    total = 0
    for name, image in _all_images(sources, what):
        names.append(name)
        shapes.append(list(image.shape[:2]))
        offsets.append(total)
        stream.write(image.data)
        total += image.nbytes
    stream.flush()
    return {"names": names, "shapes": shapes, "offsets": offsets, "total_bytes": total}


def _memory_store(sources):
    entries = list(_all_images(sources, "decoding"))
    sizes = [image.nbytes for _, image in entries]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else []
    pixels = _aligned_empty(sum(sizes))
    names, shapes = [], []
    # Move images into the buffer one by one, so RAM holds each only once.
    for index in range(len(entries)):
        name, image = entries[index]
        entries[index] = None
        names.append(name)
        shapes.append(image.shape[:2])
        pixels[offsets[index] : offsets[index] + image.nbytes] = image.reshape(-1)
    return ImageStore(names, shapes, offsets, pixels)


def _folder_store(sources, folder):
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, f"car_tf_images_{_fingerprint_hash(sources)}")
    pixels_path, index_path = stem + ".u8", stem + ".json"
    try:
        with open(index_path) as stream:
            index = json.load(stream)
        if os.path.getsize(pixels_path) == index["total_bytes"]:
            logger.info("using cached images %s (%d images)", pixels_path, len(index["names"]))
            return _store_from_index(index, pixels_path)
        logger.warning("cache %s is incomplete; decoding again", pixels_path)
    except (OSError, ValueError, KeyError):
        pass

    descriptor, temp_path = tempfile.mkstemp(dir=folder, prefix=".car_tf_images_", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            index = _write_images(sources, stream, f"caching to {pixels_path}")
        os.replace(temp_path, pixels_path)
        # The index goes last: its presence says the pixel file is complete.
        descriptor, temp_path = tempfile.mkstemp(
            dir=folder, prefix=".car_tf_images_", suffix=".tmp"
        )
        with os.fdopen(descriptor, "w") as stream:
            json.dump(index, stream)
        os.replace(temp_path, index_path)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)
    return _store_from_index(index, pixels_path)


def _store_from_index(index, pixels_path):
    pixels = _map_file(pixels_path, index["total_bytes"])
    return ImageStore(index["names"], index["shapes"], index["offsets"], pixels, path=pixels_path)


def _temporary_store(sources):
    # An anonymous file: nothing is left behind, even after kill -9.
    with tempfile.TemporaryFile() as stream:
        index = _write_images(sources, stream, "decoding to a temporary file")
        pixels = _map_file(stream, index["total_bytes"])
    return ImageStore(index["names"], index["shapes"], index["offsets"], pixels)


def build_image_store(sources, cache="memory"):
    """Decodes the images of `sources` once and returns an ImageStore of them.

    Args:
      sources: a sequence of ImageSource.
      cache: "memory", "none", or a folder path (see the module docstring).

    Raises:
      ValueError: an unknown cache value, or no readable image at all.
    """
    sources = list(sources)
    if not isinstance(cache, (str, os.PathLike)) or not os.fspath(cache):
        raise ValueError(f'cache must be "memory", "none" or a folder path, got {cache!r}')
    cache = os.fspath(cache)
    if cache == "memory":
        store = _memory_store(sources)
    elif cache == "none":
        store = _temporary_store(sources)
    else:
        store = _folder_store(sources, cache)
    if not store.names:
        described = ", ".join(source.description for source in sources if source.description)
        raise ValueError(f"no readable image in {described or 'the data sources'}")
    return store
