"""Training and validation data: any folder of images (DIV2K's layout too) or
TFDS `div2k`, decoded once through car_tf.image_io and served by tf.data.

  train_dataset(...)       endless float32 [B, crop, crop, 3] random crops
  validation_images(...)   [(name, float32 [H, W, 3])], whole images
  validation_dataset(...)  the same as a tf.data.Dataset of batches of one
"""

from car_tf.data.cache import ImageSource, build_image_store
from car_tf.data.folders import find_image_files, folder_source
from car_tf.data.pipeline import (
    DataSource,
    check_crop_size,
    default_crop_size,
    train_dataset,
    training_store,
    usable_indices,
    validation_dataset,
    validation_images,
    validation_store,
)
from car_tf.data.tfds import tfds_source

__all__ = [
    "DataSource",
    "ImageSource",
    "build_image_store",
    "check_crop_size",
    "default_crop_size",
    "find_image_files",
    "folder_source",
    "tfds_source",
    "train_dataset",
    "training_store",
    "usable_indices",
    "validation_dataset",
    "validation_images",
    "validation_store",
]
