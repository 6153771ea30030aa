"""Tests for car_tf.data on folders of tiny images made here: crops, flips,
seeds, caches, odd and broken files, validation images."""

import logging
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from car_tf import data
from car_tf.data import cache as cache_lib
from car_tf.data import folders

SCALE = 2
CROP = 16  # a multiple of lcm(8, 2)


def _coded_image(image_id, height, width):
    """R = image id, G = row, B = column: every crop says where it came from."""
    rows, columns = np.mgrid[0:height, 0:width]
    return np.stack([np.full_like(rows, image_id), rows, columns], axis=-1).astype(np.uint8)


def _write_coded(folder, count, height=24, width=28, start_id=0):
    folder.mkdir(parents=True, exist_ok=True)
    for offset in range(count):
        image_id = start_id + offset
        Image.fromarray(_coded_image(image_id, height, width)).save(
            folder / f"img{image_id:02d}.png"
        )


def _locate(crop):
    """(image id, top, left, flipped_lr, flipped_ud, transposed) of a uint8 crop of a coded image."""
    image_id = int(crop[0, 0, 0])
    assert (crop[:, :, 0] == image_id).all(), "a crop mixes images"
    rows, columns = crop[:, :, 1].astype(int), crop[:, :, 2].astype(int)
    transposed = bool((rows[0, :] != rows[0, 0]).any())
    if transposed:
        rows, columns = rows.T, columns.T
    assert (rows == rows[:, :1]).all() and (columns == columns[:1, :]).all()
    flipped_ud = bool(rows[0, 0] > rows[-1, 0])
    flipped_lr = bool(columns[0, 0] > columns[0, -1])
    row_run = np.sort(rows[:, 0])
    column_run = np.sort(columns[0, :])
    np.testing.assert_array_equal(np.diff(row_run), 1)
    np.testing.assert_array_equal(np.diff(column_run), 1)
    return image_id, int(row_run[0]), int(column_run[0]), flipped_lr, flipped_ud, transposed


def _as_uint8(batch):
    return np.rint(batch.numpy() * 255).astype(np.uint8)


def _batches(dataset, count):
    return [batch.numpy() for batch in dataset.take(count)]


def test_crops_are_windows_of_the_images_with_flips_only(tmp_path):
    _write_coded(tmp_path / "train", 5)
    dataset = data.train_dataset(
        [tmp_path / "train"], scale=SCALE, crop_size=CROP, batch_size=5, seed=3
    )
    assert dataset.element_spec.shape == (5, CROP, CROP, 3)
    assert dataset.element_spec.dtype == tf.float32
    flips_lr, flips_ud, positions = set(), set(), set()
    for batch in dataset.take(20):
        values = batch.numpy()
        assert values.min() >= 0.0 and values.max() <= 1.0
        located = [_locate(crop) for crop in _as_uint8(batch)]
        # One epoch = 5 elements = every image once.
        assert sorted(item[0] for item in located) == [0, 1, 2, 3, 4]
        for image_id, top, left, flipped_lr, flipped_ud, transposed in located:
            assert not transposed
            assert 0 <= top <= 24 - CROP and 0 <= left <= 28 - CROP
            flips_lr.add(flipped_lr)
            flips_ud.add(flipped_ud)
            positions.add((top, left))
    assert flips_lr == {False, True} and flips_ud == {False, True}
    assert len(positions) > 20


def test_rotate_adds_transposed_crops(tmp_path):
    _write_coded(tmp_path / "train", 2)
    dataset = data.train_dataset(
        [tmp_path / "train"], scale=SCALE, crop_size=CROP, batch_size=8, seed=0, rotate=True
    )
    transposed = {_locate(crop)[5] for batch in dataset.take(4) for crop in _as_uint8(batch)}
    assert transposed == {False, True}


def test_same_seed_same_batches_other_seed_other_batches(tmp_path):
    _write_coded(tmp_path / "train", 4)

    def first_batches(seed):
        dataset = data.train_dataset(
            [tmp_path / "train"], scale=SCALE, crop_size=CROP, batch_size=3, seed=seed
        )
        return _batches(dataset, 4)

    first, again, other = first_batches(7), first_batches(7), first_batches(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_start_step_resumes_the_same_stream(tmp_path):
    _write_coded(tmp_path / "train", 3)
    kwargs = dict(scale=SCALE, crop_size=CROP, batch_size=2, seed=5)
    whole = _batches(data.train_dataset([tmp_path / "train"], **kwargs), 6)
    resumed = _batches(data.train_dataset([tmp_path / "train"], start_step=4, **kwargs), 2)
    np.testing.assert_array_equal(resumed[0], whole[4])
    np.testing.assert_array_equal(resumed[1], whole[5])


def test_input_pipelines_split_the_global_stream(tmp_path):
    _write_coded(tmp_path / "train", 3)
    kwargs = dict(scale=SCALE, crop_size=CROP, batch_size=4, seed=1)
    store = data.training_store([tmp_path / "train"])
    whole = _batches(data.train_dataset(store=store, **kwargs), 2)
    elements = np.concatenate(whole)
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )
        dataset = data.train_dataset(store=store, input_context=context, **kwargs)
        assert dataset.element_spec.shape == (2, CROP, CROP, 3)
        shard = np.concatenate(_batches(dataset, 2))
        np.testing.assert_array_equal(shard, elements[pipeline::2])


def test_odd_and_broken_files_are_converted_or_skipped(tmp_path, caplog):
    root = tmp_path / "train"
    _write_coded(root / "nested" / "deeper", 1, start_id=1)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(root / "gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 4), dtype=np.uint8), "RGBA").save(
        root / "rgba.png"
    )
    Image.fromarray(rng.integers(0, 65536, (20, 20), dtype=np.uint16)).save(root / "deep16.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
        root / "photo.jpg", quality=95
    )
    Image.fromarray(rng.integers(0, 256, (12, 40, 3), dtype=np.uint8)).save(root / "small.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (root / "empty.jpg").write_bytes(b"")
    (root / "readme.txt").write_text("not an image")

    with caplog.at_level(logging.INFO, logger="car_tf"):
        dataset = data.train_dataset([root], scale=SCALE, crop_size=CROP, batch_size=6, seed=0)
        batch = next(iter(dataset)).numpy()
    assert batch.shape == (6, CROP, CROP, 3)
    warnings = [
        record.getMessage() for record in caplog.records if record.levelno == logging.WARNING
    ]
    assert any(str(root / "corrupt.png") in message for message in warnings)
    assert any(str(root / "empty.jpg") in message for message in warnings)
    assert any(
        "train/small.png" in message and "smaller than the 16-pixel crop" in message
        for message in warnings
    )
    infos = " ".join(
        record.getMessage() for record in caplog.records if record.levelno == logging.INFO
    )
    assert "gray.png: grayscale expanded to RGB" in infos
    assert "deep16.png: 16-bit converted to 8-bit" in infos
    assert "rgba.png: alpha channel ignored" in infos
    # Gray and 16-bit gray crops have equal channels.
    store = data.training_store([root])
    assert sorted(store.names) == sorted(
        f"train/{name}"
        for name in [
            "deep16.png",
            "gray.png",
            "nested/deeper/img01.png",
            "photo.jpg",
            "rgba.png",
            "small.png",
        ]
    )
    gray = store.crop(store.names.index("train/deep16.png"), 0, 0, CROP)
    np.testing.assert_array_equal(gray[:, :, 0], gray[:, :, 2])


def test_whole_epochs_never_crash_on_bad_files(tmp_path):
    _write_coded(tmp_path / "train", 2)
    (tmp_path / "train" / "broken.png").write_bytes(b"garbage")
    dataset = data.train_dataset(
        [tmp_path / "train"], scale=SCALE, crop_size=CROP, batch_size=2, seed=0
    )
    assert len(_batches(dataset, 10)) == 10


def test_no_usable_image_is_a_clear_error(tmp_path):
    _write_coded(tmp_path / "train", 1, height=12, width=12)
    with pytest.raises(ValueError, match="none of the 1 training images is at least 16x16"):
        data.train_dataset([tmp_path / "train"], scale=SCALE, crop_size=CROP, batch_size=1)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no readable image"):
        data.train_dataset([tmp_path / "bad"], scale=SCALE, crop_size=CROP, batch_size=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.train_dataset([tmp_path / "missing"], scale=SCALE, crop_size=CROP)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        data.train_dataset([tmp_path / "empty"], scale=SCALE, crop_size=CROP)
    with pytest.raises(ValueError, match="no training data"):
        data.train_dataset([], scale=SCALE, crop_size=CROP)


def test_crop_size_rules():
    assert data.default_crop_size(4) == 192
    assert data.default_crop_size(2) == 96
    data.check_crop_size(192, 4)
    data.check_crop_size(96, 2)
    with pytest.raises(ValueError, match="crop_size 100 must be a multiple of 8"):
        data.check_crop_size(100, 4)
    with pytest.raises(ValueError, match="multiple of 24"):
        data.check_crop_size(96 + 8, 3)
    with pytest.raises(ValueError, match="at least 16"):
        data.check_crop_size(8, 2)


def test_div2k_root_uses_only_the_hr_folder(tmp_path):
    _write_coded(tmp_path / "DIV2K" / "DIV2K_train_HR", 2)
    _write_coded(tmp_path / "DIV2K" / "DIV2K_valid_HR", 1, start_id=10)
    _write_coded(
        tmp_path / "DIV2K" / "DIV2K_train_LR_bicubic" / "X2", 2, height=12, width=14, start_id=20
    )
    train = folders.find_image_files(tmp_path / "DIV2K")
    assert [os.path.basename(path) for _, path in train] == ["img00.png", "img01.png"]
    assert all("DIV2K_train_HR" in path for _, path in train)
    names = [name for name, _ in data.validation_images(tmp_path / "DIV2K", scale=SCALE)]
    assert names == ["DIV2K_valid_HR/img10.png"]
    # The HR folder itself works as-is too.
    assert folders.find_image_files(tmp_path / "DIV2K" / "DIV2K_train_HR") == train


@pytest.mark.parametrize("cache", ["memory", "folder", "none"])
def test_caches_give_identical_batches(tmp_path, cache):
    _write_coded(tmp_path / "train", 3)
    kwargs = dict(scale=SCALE, crop_size=CROP, batch_size=3, seed=2)
    reference = _batches(data.train_dataset([tmp_path / "train"], cache="memory", **kwargs), 3)
    setting = str(tmp_path / "cache") if cache == "folder" else cache
    batches = _batches(data.train_dataset([tmp_path / "train"], cache=setting, **kwargs), 3)
    for a, b in zip(reference, batches):
        np.testing.assert_array_equal(a, b)


def test_cache_folder_is_reused_and_follows_changes(tmp_path, monkeypatch):
    _write_coded(tmp_path / "train", 2)
    cache_dir = tmp_path / "cache"
    store = data.training_store([tmp_path / "train"], cache=str(cache_dir))
    assert store.path is not None and os.path.dirname(store.path) == str(cache_dir)
    cached = sorted(os.listdir(cache_dir))
    assert len(cached) == 2 and cached[0].endswith(".json") and cached[1].endswith(".u8")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    with monkeypatch.context() as patch:
        patch.setattr(folders, "decode_or_skip", no_decoding)
        again = data.training_store([tmp_path / "train"], cache=str(cache_dir))
    assert again.names == store.names
    np.testing.assert_array_equal(again.crop(1, 2, 3, CROP), store.crop(1, 2, 3, CROP))

    # A changed file gives a new fingerprint, so new cache files.
    Image.fromarray(_coded_image(9, 24, 28)).save(tmp_path / "train" / "img01.png")
    os.utime(tmp_path / "train" / "img01.png", ns=(1, 1))
    changed = data.training_store([tmp_path / "train"], cache=str(cache_dir))
    assert len(os.listdir(cache_dir)) == 4
    assert changed.crop(1, 0, 0, CROP)[0, 0, 0] == 9


def test_cache_none_leaves_nothing_behind(tmp_path, monkeypatch):
    _write_coded(tmp_path / "train", 2)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    store = data.training_store([tmp_path / "train"], cache="none")
    assert store.path is None
    assert os.listdir(tmp_path / "tmp") == []
    np.testing.assert_array_equal(store.image(1), _coded_image(1, 24, 28))


@pytest.mark.slow
def test_exit_with_a_live_iterator_does_not_hang(tmp_path):
    # A py_function inside the pipeline made the interpreter hang at exit when
    # a call was in flight; the pipeline is pure TensorFlow to rule that out.
    _write_coded(tmp_path / "train", 3)
    script = (
        "import sys\n"
        "from car_tf import data\n"
        f"dataset = data.train_dataset([{str(tmp_path / 'train')!r}], scale=2, crop_size=16, batch_size=4, cache=sys.argv[1])\n"
        "iterator = iter(dataset)\n"
        "for _ in range(3):\n"
        "    next(iterator)\n"
        "print('ok')\n"
    )
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script, "none"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_bad_cache_setting():
    with pytest.raises(ValueError, match="cache must be"):
        cache_lib.build_image_store([], cache=None)


def test_validation_images_are_cropped_at_the_bottom_right(tmp_path, caplog):
    _write_coded(tmp_path / "val" / "setA", 1, height=27, width=21)
    _write_coded(tmp_path / "val" / "setA" / "sub", 1, height=16, width=16, start_id=1)
    _write_coded(tmp_path / "val" / "setB", 1, height=15, width=40, start_id=2)
    (tmp_path / "val" / "setB" / "zero.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="car_tf"):
        images = data.validation_images(
            [tmp_path / "val" / "setA", tmp_path / "val" / "setB"], scale=SCALE
        )
    assert [name for name, _ in images] == ["setA/img00.png", "setA/sub/img01.png"]
    name, image = images[0]
    assert image.dtype == np.float32 and image.shape == (24, 16, 3)
    np.testing.assert_array_equal(
        np.rint(image * 255).astype(np.uint8), _coded_image(0, 27, 21)[:24, :16]
    )
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "setB/img02.png" in messages and "smaller than 16" in messages
    assert str(tmp_path / "val" / "setB" / "zero.png") in messages
    assert len(data.validation_images([tmp_path / "val" / "setA"], scale=SCALE, limit=1)) == 1


def test_validation_dataset_yields_named_batches_of_one(tmp_path):
    _write_coded(tmp_path / "val", 2, height=17, width=24)
    dataset = data.validation_dataset([tmp_path / "val"], scale=SCALE)
    items = [(name.numpy(), image.numpy()) for name, image in dataset]
    assert [name.tolist() for name, _ in items] == [[b"val/img00.png"], [b"val/img01.png"]]
    for index, (_, image) in enumerate(items):
        assert image.shape == (1, 16, 24, 3) and image.dtype == np.float32
        np.testing.assert_allclose(image[0], _coded_image(index, 16, 24) / 255.0, atol=1e-7)


def test_works_under_a_distribution_strategy(tmp_path):
    _write_coded(tmp_path / "train", 2)
    dataset = data.train_dataset(
        [tmp_path / "train"], scale=SCALE, crop_size=CROP, batch_size=2, seed=0
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = strategy.experimental_distribute_dataset(dataset)
    batch = next(iter(distributed))
    np.testing.assert_array_equal(batch.numpy(), next(iter(dataset)).numpy())
