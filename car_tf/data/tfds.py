"""TensorFlow Datasets as a data source: `div2k` (its "hr" images) or any TFDS
data set with an image feature.

tensorflow-datasets is optional (`pip install "car_tf[tfds]"`); it is imported
only when a TFDS source is asked for. TFDS downloads and prepares the data set
into `data_dir` (default ~/tensorflow_datasets) the first time; DIV2K is about
4 GB per configuration. Every div2k configuration ("div2k/bicubic_x4", ...)
holds the same HR images, so any of them will do here.
"""

import logging

import numpy as np

from car_tf.data.cache import ImageSource

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_KEY = "hr"


def import_tfds():
    """The tensorflow_datasets module, or an ImportError that says how to install it."""
    try:
        import tensorflow_datasets  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ImportError(
            f'TFDS input needs tensorflow-datasets ({error}); install it with: pip install "car_tf[tfds]"'
        ) from None
    return tensorflow_datasets


def _as_rgb(image, name, notes_logged):
    """uint8 [H, W, 3] from a TFDS image of 1, 3 or 4 channels."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: TFDS image has dtype {image.dtype}; car_tf needs uint8 images")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[-1] if image.ndim == 3 else None
    if channels == 3:
        return image
    if channels == 1:
        note = "grayscale expanded to RGB"
        rgb = np.repeat(image, 3, axis=2)
    elif channels == 4:
        note = "alpha channel ignored"
        rgb = np.ascontiguousarray(image[:, :, :3])
    else:
        raise ValueError(f"{name}: TFDS image has shape {image.shape}; expected [H, W, 1|3|4]")
    if note not in notes_logged:
        notes_logged.add(note)
        logger.info("%s: %s (logged once per data set)", name, note)
    return rgb


def tfds_source(name, split="train", data_dir=None, image_key=DEFAULT_IMAGE_KEY, download=True):
    """An ImageSource over the images of a TFDS data set.

    Args:
      name: TFDS name, optionally with a config: "div2k", "div2k/bicubic_x4".
      split: TFDS split: "train", "validation", "train[:100]", ...
      data_dir: TFDS data folder; None for TFDS's default.
      image_key: the image feature to use ("hr" for div2k).
      download: let TFDS download and prepare the data set if it isn't there.

    Raises:
      ImportError: tensorflow-datasets is not installed.
      ValueError: the data set has no feature `image_key`.
    """
    tfds = import_tfds()
    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    if image_key not in features:
        raise ValueError(
            f"TFDS data set {name} has no feature {image_key!r}; it has {sorted(features.keys())}"
        )

    def images():
        if download:
            builder.download_and_prepare()
        # Only the wanted image is decoded: div2k's "lr" would double the work.
        decoders = {key: tfds.decode.SkipDecoding() for key in features.keys() if key != image_key}
        dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        notes_logged = set()
        for index, example in enumerate(tfds.as_numpy(dataset)):
            example_name = f"{name}/{split}/{index:05d}"
            yield example_name, _as_rgb(example[image_key], example_name, notes_logged)

    return ImageSource(
        fingerprint={
            "kind": "tfds",
            "name": name,
            "split": split,
            "data_dir": data_dir,
            "image_key": image_key,
            "version": str(builder.info.version),
        },
        images=images,
        description=f"TFDS {name} split {split}",
    )
