"""The tf.data pipelines for training and validation.

Training: decoded images (car_tf.data.cache) -> one random crop per image per
epoch, epochs in a fresh random order -> random flips -> float32 [0, 1] ->
batch(drop_remainder=True) -> prefetch. Every random choice is a stateless
function of (seed, element number), so the same seed gives the same batches
whatever the parallelism, and a run resumed at `start_step` sees exactly the
batches the interrupted run would have seen.

Only TensorFlow ops run inside the pipelines (see car_tf.data.cache for why).

Validation: whole images, cropped at the bottom and right to a multiple of
size_multiple(scale) (the "modcrop" of SR evaluations: the top-left corner and
pixel grid stay where they were) by car_tf.protocol.crop_for_scale, with the
minimum size evaluation uses.
"""

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from car_tf.data import cache as cache_lib
from car_tf.data import folders
from car_tf.data import tfds as tfds_lib
from car_tf.models import min_hr_size, size_multiple
from car_tf.protocol import crop_for_scale, smallest_hr_side

logger = logging.getLogger(__name__)

# Salts that keep the streams of random numbers drawn from one seed apart.
_EPOCH_ORDER_SALT = 0x5EED0
_AUGMENT_SALT = 0x5EED1


def default_crop_size(scale):
    """The paper's HR training crop: 48 LR pixels (96 at x2, 192 at x4), as a valid size."""
    multiple = size_multiple(scale)
    return -(-48 * scale // multiple) * multiple


def check_crop_size(crop_size, scale):
    """Raises ValueError unless crop_size is a usable HR crop for `scale`."""
    multiple = size_multiple(scale)
    smallest = min_hr_size(scale)
    if crop_size < smallest or crop_size % multiple:
        raise ValueError(
            f"crop_size {crop_size} must be a multiple of {multiple} (lcm(8, scale={scale})) "
            f"and at least {smallest}; the paper uses {default_crop_size(scale)}"
        )


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where images come from: folders of image files, a TFDS data set, or both.

    data_dirs: folder(s) of HR images, searched recursively (a DIV2K root means its
      DIV2K_train_HR/ or DIV2K_valid_HR/).
    tfds_name: also (or only) a TFDS data set, e.g. "div2k" (see car_tf.data.tfds);
      tfds_split (default: "train" for training, "validation" for validation),
      tfds_data_dir and tfds_image_key say where in it.
    max_pixels: decompression-bomb limit for image files (image_io.read_image).
    decode_workers: threads that decode image files; default min(4, CPUs).
    """

    data_dirs: tuple = ()
    tfds_name: str = None
    tfds_split: str = None
    tfds_data_dir: str = None
    tfds_image_key: str = tfds_lib.DEFAULT_IMAGE_KEY
    max_pixels: int = None
    decode_workers: int = None

    def image_sources(self, split):
        """The car_tf.data.cache ImageSources for "train" or "validation"."""
        data_dirs = self.data_dirs
        if isinstance(data_dirs, (str, os.PathLike)):
            data_dirs = [data_dirs]
        sources = []
        if data_dirs:
            sources.append(folders.folder_source(
                data_dirs, split=split, max_pixels=self.max_pixels, workers=self.decode_workers))
        if self.tfds_name:
            sources.append(tfds_lib.tfds_source(
                self.tfds_name, split=self.tfds_split or split, data_dir=self.tfds_data_dir,
                image_key=self.tfds_image_key))
        if not sources:
            raise ValueError(f"no {'training' if split == 'train' else split} data: "
                             "give data_dirs, tfds_name, or both")
        return sources


def as_source(source):
    """A DataSource from a DataSource, or from a folder or a list of folders."""
    return source if isinstance(source, DataSource) else DataSource(data_dirs=source)


def training_store(source=(), cache="memory"):
    """Decodes the training images of `source` (a DataSource, or folders) once (see
    car_tf.data.cache) and returns the store."""
    return cache_lib.build_image_store(as_source(source).image_sources("train"), cache)


def train_dataset(
    source=(),
    scale=4,
    crop_size=None,
    batch_size=16,
    seed=0,
    cache="memory",
    rotate=False,
    start_step=0,
    input_context=None,
    store=None,
):
    """An endless dataset of random HR training crops.

    Images are decoded here, once, before the dataset is returned; files that
    can't be read, or are smaller than the crop, are skipped with a warning
    that names them. Each epoch visits every usable image once, in an order
    drawn from (seed, epoch), taking one random crop of it.

    Args:
      source: a DataSource, or folder(s) of HR images (searched recursively; a
        DIV2K root means its DIV2K_train_HR/).
      scale: 2 or 4 (any integer >= 2); fixes the crop multiple lcm(8, scale).
      crop_size: HR crop side in pixels; None = default_crop_size(scale)
        (192 at x4, 96 at x2). Must be a multiple of lcm(8, scale).
      batch_size: global batch size.
      seed: integer; the same seed gives the same batches.
      cache: "memory", a folder path (a memory-mapped cache file kept for later
        runs), or "none" (a memory-mapped temporary file); see car_tf.data.cache.
      rotate: also rotate crops by a random multiple of 90 degrees (the paper
        uses flips only).
      start_step: the first batch is the one a run from step 0 would have had
        at this step (for resuming).
      input_context: a tf.distribute.InputContext when called from
        strategy.distribute_datasets_from_function: the dataset then yields
        per-replica batches of this input pipeline's share of the elements.
      store: an already built store (training_store()), instead of decoding.

    Returns:
      tf.data.Dataset of float32 [B, crop_size, crop_size, 3] in [0, 1], with a
      static shape; B = batch_size, or the per-replica batch size when
      input_context is given.
    """
    crop_size = default_crop_size(scale) if crop_size is None else int(crop_size)
    check_crop_size(crop_size, scale)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if store is None:
        store = training_store(source, cache)
    usable = usable_indices(store, crop_size)

    pipelines, pipeline_id, local_batch = 1, 0, batch_size
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        local_batch = input_context.get_per_replica_batch_size(batch_size)

    example = _example_fn(store, usable, crop_size, seed, rotate)
    # Element k of the global stream belongs to pipeline k % pipelines.
    dataset = tf.data.Dataset.counter(start=start_step * batch_size + pipeline_id, step=pipelines)
    dataset = dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(local_batch, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    # Under experimental_distribute_dataset with several workers, each worker
    # keeps its share of the batches; there are no files to shard.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
        if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


def usable_indices(store, crop_size):
    """Indices of the images at least crop_size high and wide; warns about the others."""
    usable = []
    for index, (height, width) in enumerate(store.shapes):
        if height >= crop_size and width >= crop_size:
            usable.append(index)
        else:
            logger.warning(
                "skipping %s: %dx%d is smaller than the %d-pixel crop",
                store.names[index],
                width,
                height,
                crop_size,
            )
    if not usable:
        raise ValueError(
            f"none of the {len(store.names)} training images is at least {crop_size}x{crop_size}; "
            "use a smaller crop_size or larger images"
        )
    if len(usable) < len(store.names):
        logger.warning(
            "training on %d of %d images (%d smaller than the crop)",
            len(usable),
            len(store.names),
            len(store.names) - len(usable),
        )
    return np.array(usable, np.int64)


def _crop_fn(store, crop_size):
    """(image index, top, left) int64 scalars -> uint8 [crop_size, crop_size, 3] from the store."""
    pixels, offsets, shapes = store.tensors()
    # Byte offsets of one crop row relative to its first pixel.
    row_bytes = tf.range(crop_size * 3, dtype=tf.int64)

    def crop(index, top, left):
        width = shapes[index, 1]
        rows = top + tf.range(crop_size, dtype=tf.int64)
        row_starts = offsets[index] + (rows * width + left) * 3
        # A gather reads only the crop's own bytes, not the whole image.
        patch = tf.gather(pixels, row_starts[:, None] + row_bytes[None, :])
        return tf.reshape(patch, [crop_size, crop_size, 3])

    return crop


def _example_fn(store, indices, crop_size, seed, rotate):
    """element number k (int64 scalar) -> float32 [crop_size, crop_size, 3] in [0, 1]."""
    count = len(indices)
    heights = tf.constant(store.shapes[indices, 0], tf.int64)
    widths = tf.constant(store.shapes[indices, 1], tf.int64)
    indices = tf.constant(indices, tf.int64)
    crop = _crop_fn(store, crop_size)
    seed = int(seed)

    def example(k):
        epoch, position = k // count, k % count
        order_seed = tf.stack([tf.constant(seed, tf.int64) ^ _EPOCH_ORDER_SALT, epoch])
        pick = tf.random.experimental.index_shuffle(
            position, seed=order_seed, max_index=tf.constant(count - 1, tf.int64)
        )
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64) ^ _AUGMENT_SALT, k]), num=5
        )
        height, width = tf.gather(heights, pick), tf.gather(widths, pick)
        top = tf.random.stateless_uniform(
            [], seeds[0], minval=0, maxval=height - crop_size + 1, dtype=tf.int64
        )
        left = tf.random.stateless_uniform(
            [], seeds[1], minval=0, maxval=width - crop_size + 1, dtype=tf.int64
        )
        patch = crop(tf.gather(indices, pick), top, left)
        patch = tf.image.stateless_random_flip_left_right(patch, seeds[2])
        patch = tf.image.stateless_random_flip_up_down(patch, seeds[3])
        if rotate:
            turns = tf.random.stateless_uniform([], seeds[4], minval=0, maxval=4, dtype=tf.int32)
            patch = tf.image.rot90(patch, turns)
        return tf.cast(patch, tf.float32) / 255.0

    return example


def validation_images(source=(), scale=4, limit=None):
    """Whole validation images, cropped at the bottom/right to a multiple of lcm(8, scale).

    Args:
      source: a DataSource, or folder(s) of HR images (a DIV2K root means its
        DIV2K_valid_HR/).
      scale: fixes the multiple; images smaller than car_tf.protocol's
        smallest_hr_side(scale) after cropping are skipped with a warning (the rule
        evaluation follows), as are unreadable files.
      limit: keep only the first `limit` images (full DIV2K validation images
        take 3.4 GB as float32).

    Returns:
      A list of (name, image) with name like "Set5/baby.png" (relative to the
      parent of its data dir; "div2k/validation/00000" for TFDS) and image
      float32 [H, W, 3] in [0, 1], H and W multiples of size_multiple(scale).
    """
    store = validation_store(source, scale, limit)
    return [
        (name, store.image(index).astype(np.float32) / 255.0)
        for index, name in enumerate(store.names)
    ]


def validation_store(source=(), scale=4, limit=None):
    """An in-memory ImageStore of the validation images (see validation_images)."""
    sources = as_source(source).image_sources("validation")

    def usable_images():
        kept = 0
        for image_source in sources:
            for name, image in image_source.images():
                if limit is not None and kept >= limit:
                    return
                cropped = crop_for_scale(image, scale)
                if cropped is None:
                    logger.warning(
                        "skipping validation image %s: %dx%d is smaller than %d after cropping "
                        "to a multiple of %d", name, image.shape[1], image.shape[0],
                        smallest_hr_side(scale), size_multiple(scale),
                    )
                    continue
                kept += 1
                yield name, cropped

    cropped = cache_lib.ImageSource(
        fingerprint={}, images=usable_images, description="validation images"
    )
    return cache_lib.build_image_store([cropped], cache="memory")


def validation_dataset(source=(), scale=4, limit=None, store=None):
    """validation_images as a dataset of batches of one.

    Images are decoded once, here, and kept as uint8 (pass `store` from
    validation_store() to reuse them).

    Returns:
      tf.data.Dataset of (name, image): name string [1], image float32
      [1, H, W, 3] in [0, 1] (H, W vary between images).
    """
    if store is None:
        store = validation_store(source, scale, limit)
    pixels, offsets, shapes = store.tensors()
    names = tf.constant(store.names)

    def image(index):
        size = shapes[index, 0] * shapes[index, 1] * 3
        flat = pixels[offsets[index] : offsets[index] + size]
        rgb = tf.reshape(flat, tf.concat([shapes[index], [3]], axis=0))
        return names[index], tf.cast(rgb, tf.float32) / 255.0

    dataset = tf.data.Dataset.range(len(store.names)).map(image)
    return dataset.batch(1).prefetch(tf.data.AUTOTUNE)
