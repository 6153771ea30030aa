"""Models, images and exports shared by the tests of car_tf.export."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from car_tf import pretrained
from car_tf.export import tflite
from car_tf.models import build_car_model, default_config


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# An HR size that is not a multiple of 8, so every export path pads and crops.
ODD_HEIGHT, ODD_WIDTH = 21, 30


def write_model_dir(path, config):
    """A training-style model_dir (config.json + model.weights.h5) of a randomly initialised model."""
    model = build_car_model(config)
    os.makedirs(path)
    with open(os.path.join(path, pretrained.CONFIG), "w") as handle:
        json.dump(config, handle)
    model.save_weights(os.path.join(path, pretrained.WEIGHTS))
    return str(path)


def images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def max_level_difference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def run(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
                          **kwargs)


def tflite_export(root, upscaler, quantizations):
    """(composite tiny x2 model, {quantization: paths}) exported at the ODD size."""
    model = build_car_model({**default_config(2, upscaler, "tiny"), "resampler_impl": "composite"})
    paths = {
        quantization: tflite.export_tflite(model, str(root), ODD_HEIGHT, ODD_WIDTH, quantization)
        for quantization in quantizations
    }
    return model, paths


@pytest.fixture(scope="module")
def tflite_bicubic(tmp_path_factory):
    return tflite_export(tmp_path_factory.mktemp("tflite_bicubic"), "bicubic", ["float32"])


@pytest.fixture(scope="module")
def tflite_edsr(tmp_path_factory):
    return tflite_export(tmp_path_factory.mktemp("tflite_edsr"), "edsr", tflite.QUANTIZATIONS)
