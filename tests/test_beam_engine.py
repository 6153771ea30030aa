"""car_tf.beam.engine and handler: the model on a worker, loaded once, run in the CLI's
tiles with equal-sized windows batched; bundled names, .keras files and SavedModels."""

import sys

import numpy as np
import pytest

from car_tf import inference, pretrained
from car_tf.beam import engine
from car_tf.beam.handler import CarModelHandler
from synthetic_images import photo

MODEL = "car-x4-bicubic"


@pytest.fixture(scope="module")
def model():
    return pretrained.load_model(MODEL)


def _largest_difference(a, b):
    assert a.shape == b.shape
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_tiled_batches_equal_the_cli_runner(model):
    tile = 32  # below what the command line takes, so that small images take 2 x 2 tiles
    images = [photo(40, 56, seed=0), photo(40, 56, seed=1), photo(17, 29, seed=2)]
    alpha = np.full((40, 56), 200, np.uint8)
    runner = inference.Runner(model, tile)
    worker = engine.Engine(model, tile)
    results = worker.resample(images, [None, alpha, None], "downscale", batch_size=4)
    for image, (rgb, _) in zip(images, results):
        assert _largest_difference(rgb, runner.downscale(image)) <= 1
    assert results[0][1] is None
    np.testing.assert_array_equal(results[1][1], runner.downscale_alpha(alpha))
    # The lite model's halo covers these small images, so each 40 x 56 image is 4 tiles
    # whose windows are all 40 x 56: their 8 windows go in two calls of 4, and the
    # 17 x 29 image's one window (another shape) in a third.
    assert len(runner.downscale_tiles(40, 56)) == 4
    assert worker.network_calls == 3


def test_batch_size_one_is_bitwise_the_cli(model):
    image = photo(24, 40, seed=3)
    worker = engine.Engine(model, 0)
    (rgb, _), = worker.resample([image], [None], "downscale")
    np.testing.assert_array_equal(rgb, inference.Runner(model, 0).downscale(image))
    (sr, _), = worker.resample([rgb], [None], "upscale")
    np.testing.assert_array_equal(sr, inference.Runner(model, 0).upscale(rgb))


def test_a_failing_network_call_fails_only_its_images(model, monkeypatch):
    import tensorflow as tf

    worker = engine.Engine(model, 0)
    real = worker._networks["downscale"]

    def network(windows):
        if windows.shape[1] == 24:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM")
        return real(windows)

    monkeypatch.setitem(worker._networks, "downscale", network)
    results = worker.resample([photo(24, 32), photo(16, 16)], [None, None], "downscale")
    assert results[0] == engine.OUT_OF_MEMORY
    assert results[1][0].shape == (4, 4, 3)


def test_the_engine_is_loaded_once_per_process():
    first = engine.shared_engine(MODEL, "auto", 1024, precision="auto")
    assert engine.shared_engine(MODEL, "auto", 1024, precision="auto") is first
    assert CarModelHandler(MODEL, "downscale").load_model() is first
    assert CarModelHandler(MODEL, "upscale").load_model() is first
    other = CarModelHandler(MODEL, "downscale", precision="float32").load_model()
    assert other is not first and other.model is not first.model  # its own dtype policy


def test_a_worker_process_freezes_what_it_loaded(monkeypatch):
    import gc
    import types

    assert not engine.in_sdk_worker_process()  # pytest's process is no worker
    before = gc.get_freeze_count()
    engine.shared_engine(MODEL, "composite", 0, precision="float32")
    assert gc.get_freeze_count() == before
    worker_main = types.SimpleNamespace(__spec__=types.SimpleNamespace(
        name=engine.SDK_WORKER_MAIN))
    monkeypatch.setitem(sys.modules, "__main__", worker_main)
    assert engine.in_sdk_worker_process()
    try:
        worker = engine.shared_engine(MODEL, "composite", 64, precision="float32")
        assert gc.get_freeze_count() > before
        (rgb, _), = worker.resample([photo(24, 40, seed=6)], [None], "downscale")
        assert rgb.shape == (6, 10, 3)
    finally:
        gc.unfreeze()


def test_precision_is_the_cli_runners():
    image = photo(24, 40, seed=5)
    for precision in ("float32", "mixed_bfloat16"):
        worker = engine.Engine(pretrained.load_model(MODEL), 0, precision)
        (rgb, _), = worker.resample([image], [None], "downscale")
        expected = inference.Runner(pretrained.load_model(MODEL), 0, precision).downscale(image)
        np.testing.assert_array_equal(rgb, expected)


def test_handler_batches_by_pixels_and_rejects_unknown_directions():
    handler = CarModelHandler(MODEL, "downscale", batch_pixels=1000)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 1000
    with pytest.raises(ValueError, match="direction"):
        CarModelHandler(MODEL, "sideways")


@pytest.mark.slow
def test_keras_file_and_saved_model_give_the_bundled_models_pixels(model, tmp_path):
    from car_tf.export.savedmodel import export_saved_model

    keras_path = str(tmp_path / "car.keras")
    model.save(keras_path)
    export_base = str(tmp_path / "export")
    export_saved_model(model, export_base)
    image = photo(40, 56, seed=4)
    expected, = engine.Engine(model, 32).resample([image], [None], "downscale")
    for path in (keras_path, export_base):
        loaded = engine.load_model(path)
        assert loaded.scale == 4
        (rgb, _), = engine.Engine(loaded, 32).resample([image], [None], "downscale")
        assert _largest_difference(rgb, expected[0]) <= 1, path
    assert isinstance(engine.load_model(export_base), engine.SavedModelCAR)


def test_missing_models_raise_model_not_found(tmp_path):
    with pytest.raises(pretrained.ModelNotFoundError):
        engine.load_model(str(tmp_path / "nothing.keras"))


def test_a_fixed_model_downscales_through_the_compiled_twin_as_the_cli():
    fixed = pretrained.load_model("car-x4-fixed")
    worker = engine.Engine(fixed, 32)
    assert worker.runner.fixed_kernel is not None
    images = [photo(40, 56, seed=4), photo(17, 29, seed=5)]
    alpha = np.full((17, 29), 90, np.uint8)
    results = worker.resample(images, [None, alpha], "downscale", batch_size=4)
    cli = inference.Runner(fixed, 32)
    for image, (rgb, _) in zip(images, results):
        np.testing.assert_array_equal(rgb, cli.downscale(image))
    np.testing.assert_array_equal(results[1][1], cli.downscale_alpha(alpha))
    assert worker.network_calls == 0  # no TensorFlow call for the downscale
    (sr, _), = worker.resample([results[0][0]], [None], "upscale")
    assert sr.shape == (40, 56, 3) and worker.network_calls > 0  # the upscale is TensorFlow's
