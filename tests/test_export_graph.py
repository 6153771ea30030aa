"""car_tf.export.graph: any input size, and the resampler implementation an export uses
(with the composite's local fast path for the SavedModel)."""

import numpy as np
import pytest

from car_tf import pretrained
from car_tf.export import graph
from car_tf.models import build_car_model, default_config
from export_fixtures import ODD_HEIGHT, ODD_WIDTH
from export_fixtures import images as _images


def test_downscale_any_size_is_the_model_on_the_padded_image_cropped():
    model = build_car_model({**default_config(2, "bicubic", "tiny"), "resampler_impl": "composite"})
    hr = _images((2, ODD_HEIGHT, ODD_WIDTH, 3))
    lr = graph.downscale_any_size(model, hr).numpy()
    padded = np.pad(hr, ((0, 0), (0, 24 - ODD_HEIGHT), (0, 32 - ODD_WIDTH), (0, 0)), mode="reflect")
    expected = model.downscale_uint8(padded).numpy()[:, :11, :15]
    np.testing.assert_array_equal(lr, expected)
    # Smaller than min_hr_size (16 at x2): padded by repeated reflection, LR ceil(H/s) x ceil(W/s).
    assert graph.downscale_any_size(model, _images((1, 5, 3, 3))).shape == (1, 3, 2, 3)


def test_with_resampler_impl_keeps_the_weights():
    model = build_car_model(default_config(2, "edsr", "tiny"))
    composite = graph.with_resampler_impl(model, "composite")
    assert composite.config["resampler_impl"] == "composite"
    for a, b in zip(model.get_weights(), composite.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert graph.with_resampler_impl(composite, "composite") is composite


def test_with_resampler_impl_sets_the_local_fast_path_on_a_copy_only():
    model = build_car_model({**default_config(4, "bicubic", "tiny"), "resampler_impl": "composite"})
    fast = graph.with_resampler_impl(model, "composite", local_fast_path=True)
    assert fast is not model and fast.downscaler.local_fast_path
    assert not model.downscaler.local_fast_path
    for a, b in zip(model.get_weights(), fast.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert graph.with_resampler_impl(fast, "composite", local_fast_path=True) is fast
    assert not graph.with_resampler_impl(fast, "composite").downscaler.local_fast_path


def test_a_bundled_model_takes_the_local_fast_path_and_matches_the_custom_op(local_path_calls):
    # The trained offsets move taps by ~1e-4 HR pixels: the export's downscale runs the
    # gather-free path, and its LR equals the compiled op's up to a level.
    model = pretrained.load_model("car-x4-bicubic", "custom")
    fast = graph.with_resampler_impl(model, "composite", local_fast_path=True)
    hr = _images((1, 61, 90, 3), 3)
    lr = graph.downscale_any_size(fast, hr).numpy()
    assert local_path_calls == [4]
    expected = graph.downscale_any_size(model, hr).numpy()
    assert np.abs(lr.astype(int) - expected).max() <= 1


def test_with_resampler_impl_sets_the_precision_on_a_copy_only():
    model = build_car_model({**default_config(4, "bicubic", "tiny"), "resampler_impl": "composite"})

    def policies(car_model):
        return {layer.dtype_policy.name for layer in car_model.resampler.sublayers()}

    mixed = graph.with_resampler_impl(model, "composite", precision="mixed_bfloat16")
    assert policies(mixed) == {"float32", "mixed_bfloat16"}  # the kernel head's last stays float32
    assert policies(model) == {"float32"}
    model.resampler.set_body_dtype_policy("mixed_bfloat16")  # as a Runner does
    assert policies(graph.with_resampler_impl(model, "composite", precision="float32")) == {"float32"}
    with pytest.raises(ValueError, match="precision must be one of"):
        graph.with_resampler_impl(model, "composite", precision="auto")
