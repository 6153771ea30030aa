"""car_tf.export.tflite: built-in ops only, close to TensorFlow, at every quantisation."""

import numpy as np
import pytest

from car_tf.export import graph, litert, tflite
from car_tf.models import build_car_model, default_config
from export_fixtures import ODD_HEIGHT, ODD_WIDTH, tflite_bicubic, tflite_edsr  # noqa: F401
from export_fixtures import images as _images
from export_fixtures import max_level_difference as _max_level_difference


def _litert_op_names(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    # _get_ops_details is the interpreter's only listing of the ops in a model.
    return {op["op_name"] for op in interpreter._get_ops_details()}


@pytest.mark.parametrize("upscaler", ["bicubic", pytest.param("edsr", marks=pytest.mark.slow)])
def test_tflite_float32_matches_tensorflow_within_one_level(request, upscaler):
    model, paths = request.getfixturevalue(f"tflite_{upscaler}")
    files = paths["float32"]
    hr = _images((1, ODD_HEIGHT, ODD_WIDTH, 3), 5)
    lr_tf = graph.downscale_any_size(model, hr).numpy()
    lr_lite = litert.run_tflite(files["downscaler"], hr)
    assert lr_lite.shape == (1, 11, 15, 3)
    assert _max_level_difference(lr_lite, lr_tf) <= 1
    # TF's upscaler here is the model's own (ResizeBicubic for bicubic).
    sr_lite = litert.run_tflite(files["upscaler"], lr_tf)
    assert _max_level_difference(sr_lite, model.upscale_uint8(lr_tf).numpy()) <= 1
    for path in files.values():
        ops = _litert_op_names(path)
        # Variables must be frozen into constants; no TF (Flex) or custom ops.
        assert not {"VAR_HANDLE", "READ_VARIABLE", "CUSTOM", "DELEGATE"} & ops, ops
        assert not any(op.startswith("Flex") for op in ops), ops


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["float16", "dynamic_range"])
def test_tflite_quantised_models_stay_close_to_tensorflow(tflite_edsr, quantization):
    model, paths = tflite_edsr
    files = paths[quantization]
    hr = _images((1, ODD_HEIGHT, ODD_WIDTH, 3), 6)
    lr_tf = graph.downscale_any_size(model, hr).numpy()
    lr_lite = litert.run_tflite(files["downscaler"], hr)
    sr_lite = litert.run_tflite(files["upscaler"], lr_tf)
    sr_tf = model.upscale_uint8(lr_tf).numpy()
    # Measured on this tiny random model: at most 1 level, mean below 0.2. The bound leaves room.
    for lite, reference in ((lr_lite, lr_tf), (sr_lite, sr_tf)):
        assert _max_level_difference(lite, reference) <= 3
        assert np.abs(lite.astype(np.int32) - reference).mean() < 0.5
