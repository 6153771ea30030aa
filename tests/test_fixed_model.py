"""The fixed-kernel model (car_tf.models.fixed): one strided convolution equal to the op."""

import numpy as np
import pytest
import tensorflow as tf

from car_tf import models
from car_tf.ops import adaptive_resample
from tests.synthetic_images import photo


def _random_kernel(scale, seed):
    taps = (3 * scale + 1) ** 2
    kernel = np.random.default_rng(seed).normal(0, 0.05, taps).astype(np.float32)
    return kernel + (1.0 - kernel.sum()) / taps


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("impl", ["custom", "composite"])
def test_the_convolution_equals_the_op_with_constant_kernels_and_zero_offsets(scale, impl):
    hr = tf.random.stateless_uniform([2, 8 * scale, 12 * scale, 3], seed=[scale, 1])
    kernel = _random_kernel(scale, scale)
    ours = models.fixed_kernel_downscale(hr, kernel, scale)
    lr_shape = [2, 8, 12, kernel.size]
    kernels = tf.broadcast_to(kernel, lr_shape)
    zeros = tf.zeros(lr_shape)
    reference = adaptive_resample(hr, kernels, zeros, zeros, float(scale), impl=impl)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_uint8_downscale_is_within_one_level_of_the_op(scale):
    model = models.FixedKernelModel(scale)
    model.raw_kernel.assign(_random_kernel(scale, 7))
    hr = photo(16 * scale, 16 * scale, seed=scale)[np.newaxis]
    ours = model.downscale_uint8(hr).numpy().astype(int)
    kernel = model.kernel()
    shape = [1, 16, 16, kernel.shape[0]]
    reference = adaptive_resample(tf.constant(hr, tf.float32) / 255.0,
                                  tf.broadcast_to(kernel, shape), tf.zeros(shape),
                                  tf.zeros(shape), float(scale))
    expected = np.round(np.clip(reference.numpy(), 0, 1) * 255).astype(int)
    assert np.abs(ours - expected).max() <= 1


@pytest.mark.parametrize("normalization", ["signed", "softmax"])
def test_kernels_sum_to_one_and_start_as_the_area_average(normalization):
    model = models.FixedKernelModel(4, resampler_kernel_normalization=normalization)
    assert float(tf.reduce_sum(model.kernel())) == pytest.approx(1.0, abs=1e-5)
    hr = tf.random.stateless_uniform([1, 32, 32, 3], seed=[0, 3])
    box = tf.nn.avg_pool2d(hr, 4, 4, "VALID")
    np.testing.assert_allclose(model.downscale_outputs(hr)["lr_float"].numpy(), box.numpy(),
                               atol=1e-4)


def test_roundtrip_trains_the_kernel_and_saves_as_keras(tmp_path):
    model = models.FixedKernelModel(2)
    hr = tf.random.stateless_uniform([1, 32, 32, 3], seed=[0, 5])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(model(hr)["sr"] - hr))
    gradient = tape.gradient(loss, model.raw_kernel)
    assert gradient is not None and np.abs(gradient.numpy()).max() > 0
    model.raw_kernel.assign(_random_kernel(2, 3))
    path = str(tmp_path / "fixed.keras")
    model.save(path)
    import keras

    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, models.FixedKernelModel) and loaded.scale == 2
    np.testing.assert_array_equal(loaded.downscale_uint8(photo(32, 32)[None]).numpy(),
                                  model.downscale_uint8(photo(32, 32)[None]).numpy())
    assert loaded.upscale_uint8(np.zeros([1, 4, 4, 3], np.uint8)).shape == (1, 8, 8, 3)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="resampler_kernel_normalization must be one of"):
        models.FixedKernelModel(2, resampler_kernel_normalization="clamp")
    with pytest.raises(ValueError, match="bicubic upscaler only"):
        models.FixedKernelModel(2, "edsr")
    with pytest.raises(ValueError, match="hr"):
        models.FixedKernelModel(4).downscale(tf.zeros([1, 30, 30, 3]))


def test_build_model_builds_either_architecture_from_its_config():
    fixed = models.build_model(models.fixed_config(4))
    assert isinstance(fixed, models.FixedKernelModel) and fixed.config == models.fixed_config(4)
    car = models.build_model(models.default_config(2, "bicubic", "tiny"))
    assert isinstance(car, models.CARModel)
    assert models.build_model(models.default_config(2, "bicubic", "tiny"),
                              resampler_impl="composite").config["resampler_impl"] == "composite"
    assert isinstance(models.build_model(models.fixed_config(2), resampler_impl="custom"),
                      models.FixedKernelModel)
    with pytest.raises(ValueError, match="architecture must be one of"):
        models.build_model({"architecture": "unet", "scale": 2})
    with pytest.raises(ValueError, match="unknown fixed-kernel config keys"):
        models.build_model({**models.fixed_config(2), "edsr_blocks": 3})


def test_reach_covers_what_the_taps_read():
    model = models.FixedKernelModel(4)
    model.raw_kernel.assign(_random_kernel(4, 11))
    hr = tf.random.stateless_uniform([1, 64, 64, 3], seed=[2, 2])
    reach = model.downscale_reach()
    # Changing HR pixels just beyond the reach of LR pixel column 8 (HR 32..35) leaves it,
    # changing one within the reach moves it.
    lr = model.downscale_outputs(hr)["lr_float"].numpy()[0, :, 8]
    outside = tf.tensor_scatter_nd_update(hr, [[0, 10, 32 - reach - 1, 0], [0, 10, 36 + reach, 0]],
                                          [5.0, 5.0])
    np.testing.assert_array_equal(model.downscale_outputs(outside)["lr_float"].numpy()[0, :, 8], lr)
    inside = tf.tensor_scatter_nd_update(hr, [[0, 10, 32 - reach, 0]], [5.0])
    assert not np.array_equal(model.downscale_outputs(inside)["lr_float"].numpy()[0, :, 8], lr)
    assert model.upscale_reach() == models.BicubicUpscaler(4).reach()


@pytest.mark.parametrize("name", ["car-x2-fixed", "car-x4-fixed"])
def test_bundled_fixed_models_load_by_name_and_export_with_the_same_signatures(name, tmp_path):
    from car_tf import pretrained
    from car_tf.export import graph, litert, savedmodel, tflite

    model = pretrained.load_model(name)
    assert isinstance(model, models.FixedKernelModel) and f"x{model.scale}" in name
    hr = photo(48, 64, seed=9)[np.newaxis]
    expected = graph.downscale_any_size(model, hr).numpy()
    loaded = tf.saved_model.load(savedmodel.export_saved_model(model, str(tmp_path / "base")))
    lr = loaded.signatures["downscale"](hr=tf.constant(hr))["lr"].numpy()
    assert lr.shape == expected.shape and np.abs(lr.astype(int) - expected).max() <= 1
    sr = loaded.signatures["upscale"](lr=tf.constant(lr))["sr"].numpy()
    assert sr.shape == hr.shape
    files = tflite.export_tflite(model, str(tmp_path / "tflite"), 48, 64)
    assert np.abs(litert.run_tflite(files["downscaler"], hr).astype(int) - expected).max() <= 1
