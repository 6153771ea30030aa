"""Bundled-model outputs, bit for bit, against golden_outputs.npz.

The .npz was written by `outputs()` below before the restructuring of issue 18, so any
change to what the bundled models, the tiled runner or the reference bicubic downscale
compute shows up here as a failure. Rewrite it (`python tests/test_golden_outputs.py`)
only for a change meant to alter outputs, and say so in the commit.
"""

import os
import sys

import numpy as np
import pytest

from car_tf import image_io, inference, pretrained, sample_data
from car_tf.protocol import bicubic_downscale_uint8

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_outputs.npz")
MODELS = ("car-x4-bicubic", "car-x2-bicubic", "car-x4-edsr-lite", "edsr-x2-lite-bicubic-lr")


def hr_crop():
    """A 64x64 crop of a bundled sample image, with edges and texture."""
    path = os.path.join(os.path.dirname(sample_data.__file__), "butterfly.png")
    return image_io.read_image(path).rgb[40:104, 56:120]


def outputs():
    """Every recorded output, by key: uint8 arrays."""
    hr = hr_crop()
    result = {"hr_crop": hr}
    for name in MODELS:
        model = pretrained.load_model(name)
        key = name.replace("-", "_")
        lr = np.asarray(model.downscale_uint8(hr[np.newaxis]))[0]
        result[key + "_lr"] = lr
        result[key + "_sr"] = np.asarray(model.upscale_uint8(lr[np.newaxis]))[0]
        if name == "car-x4-bicubic":
            # Tiles smaller than the image and sides that are not multiples of the scale.
            runner = inference.Runner(model, tile=32)
            result[key + "_tiled_lr"] = runner.downscale(hr[:61, :59])
            result[key + "_tiled_sr"] = runner.upscale(result[key + "_tiled_lr"])
    for scale in (2, 4):
        result[f"bicubic_x{scale}_lr"] = bicubic_downscale_uint8(hr, scale)
    return result


@pytest.fixture(scope="module")
def current():
    return outputs()


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as stored:
        return {key: stored[key] for key in stored.files}


def test_same_keys(current, golden):
    assert sorted(current) == sorted(golden)


@pytest.mark.parametrize("key", [
    "hr_crop",
    *[f"{name.replace('-', '_')}_{part}" for name in MODELS for part in ("lr", "sr")],
    "car_x4_bicubic_tiled_lr",
    "car_x4_bicubic_tiled_sr",
    "bicubic_x2_lr",
    "bicubic_x4_lr",
])
def test_output_unchanged(current, golden, key):
    assert current[key].dtype == np.uint8
    np.testing.assert_array_equal(current[key], golden[key])


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1] if len(sys.argv) > 1 else GOLDEN, **outputs())
