"""Tests for the TFDS source of car_tf.data, on TFDS's mock data (nothing is downloaded)."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from car_tf import data
from car_tf.data import tfds as tfds_lib

SCALE = 2
CROP = 16


def _hr(index, height, width):
    rows, columns = np.mgrid[0:height, 0:width]
    return np.stack([np.full_like(rows, index), rows, columns], axis=-1).astype(np.uint8)


def _mock_div2k(sizes):
    """as_dataset_fn for tfds.testing.mock_data: div2k examples of the given HR sizes."""

    def as_dataset(self, *args, **kwargs):
        def examples():
            for index, (height, width) in enumerate(sizes):
                yield {
                    "hr": _hr(index, height, width),
                    "lr": np.zeros((height // 2, width // 2, 3), np.uint8),
                }

        spec = tf.TensorSpec([None, None, 3], tf.uint8)
        return tf.data.Dataset.from_generator(examples, output_signature={"hr": spec, "lr": spec})

    return as_dataset


@pytest.fixture(name="tfds")
def _tfds():
    return pytest.importorskip(
        "tensorflow_datasets", reason="tensorflow-datasets is optional: pip install 'car_tf[tfds]'"
    )


def test_train_dataset_from_tfds(tfds, tmp_path):
    sizes = [(20, 24), (24, 20), (10, 30)]
    with tfds.testing.mock_data(as_dataset_fn=_mock_div2k(sizes)):
        dataset = data.train_dataset(
            data.DataSource(tfds_name="div2k/bicubic_x2", tfds_data_dir=str(tmp_path)),
            scale=SCALE,
            crop_size=CROP,
            batch_size=2,
            seed=0,
        )
        batches = [batch.numpy() for batch in dataset.take(4)]
    assert dataset.element_spec.shape == (2, CROP, CROP, 3)
    ids = {int(round(crop[0, 0, 0] * 255)) for batch in batches for crop in batch}
    # The third example is smaller than the crop and is skipped.
    assert ids == {0, 1}


def test_tfds_and_folders_together_with_a_cache_folder(tfds, tmp_path):
    from PIL import Image  # pylint: disable=import-outside-toplevel

    (tmp_path / "images").mkdir()
    Image.fromarray(_hr(7, 20, 20)).save(tmp_path / "images" / "a.png")
    with tfds.testing.mock_data(as_dataset_fn=_mock_div2k([(20, 20)])):
        source = data.DataSource([tmp_path / "images"], tfds_name="div2k",
                                 tfds_data_dir=str(tmp_path))
        store = data.training_store(source, cache=str(tmp_path / "cache"))
    assert store.names == ["images/a.png", "div2k/train/00000"]
    assert store.crop(0, 0, 0, 4)[0, 0, 0] == 7 and store.crop(1, 0, 0, 4)[0, 0, 0] == 0


def test_validation_images_from_tfds(tfds, tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_mock_div2k([(19, 33), (40, 16)])):
        source = data.DataSource(tfds_name="div2k", tfds_split="validation",
                                 tfds_data_dir=str(tmp_path))
        images = data.validation_images(source, scale=SCALE)
    assert [name for name, _ in images] == ["div2k/validation/00000", "div2k/validation/00001"]
    assert images[0][1].shape == (16, 32, 3) and images[1][1].shape == (40, 16, 3)
    np.testing.assert_allclose(images[0][1], _hr(0, 19, 33)[:16, :32] / 255.0, atol=1e-7)


def test_tfds_default_mock_data_runs(tfds, tmp_path):
    # TFDS's own random examples: shapes and dtypes as the real div2k features.
    with tfds.testing.mock_data(num_examples=3):
        images = list(tfds_lib.tfds_source("div2k", data_dir=str(tmp_path)).images())
    assert len(images) == 3
    for _, image in images:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_tfds_with_cache_none(tfds, tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_mock_div2k([(20, 20), (16, 18)])):
        source = data.DataSource(tfds_name="div2k", tfds_data_dir=str(tmp_path))
        store = data.training_store(source, cache="none")
    np.testing.assert_array_equal(store.image(1), _hr(1, 16, 18))


def test_tfds_missing_feature(tfds, tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_mock_div2k([(20, 20)])):
        with pytest.raises(ValueError, match="has no feature 'image'"):
            tfds_lib.tfds_source("div2k", data_dir=str(tmp_path), image_key="image")


def test_channel_conversion():
    notes = set()
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    np.testing.assert_array_equal(tfds_lib._as_rgb(gray, "x", notes), np.repeat(gray, 3, axis=2))
    rgba = np.zeros((2, 3, 4), np.uint8)
    assert tfds_lib._as_rgb(rgba, "x", notes).shape == (2, 3, 3)
    assert notes == {"grayscale expanded to RGB", "alpha channel ignored"}
    with pytest.raises(ValueError, match="uint8"):
        tfds_lib._as_rgb(np.zeros((2, 2, 3), np.float32), "x", notes)


def test_missing_tfds_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r'pip install "car_tf\[tfds\]"'):
        data.train_dataset(data.DataSource(tfds_name="div2k"), scale=SCALE, crop_size=CROP)
