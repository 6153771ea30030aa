"""Tests of car_tf.export_lib and the export tools: SavedModel, TFLite/LiteRT, loading."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import car_tf
from car_tf import export_lib, pretrained
from car_tf.models import build_car_model, default_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# An HR size that is not a multiple of 8, so every export path pads and crops.
ODD_HEIGHT, ODD_WIDTH = 21, 30


def _write_model_dir(path, config):
    """A training-style model_dir (config.json + model.weights.h5) of a randomly initialised model."""
    model = build_car_model(config)
    os.makedirs(path)
    with open(os.path.join(path, pretrained.CONFIG), "w") as handle:
        json.dump(config, handle)
    model.save_weights(os.path.join(path, pretrained.WEIGHTS))
    return str(path)


def _images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _max_level_difference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def _run(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
                          **kwargs)


def _saved_model_ops(path):
    """Op types in a SavedModel's graph and function library."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _write_model_dir(tmp_path_factory.mktemp("car") / "x2", default_config(2, "edsr", "tiny"))


@pytest.fixture(scope="module")
def exports(model_dir, tmp_path_factory):
    """{"composite": version dir, "custom": version dir}, both of the model in model_dir."""
    root = tmp_path_factory.mktemp("exports")
    paths = {}
    for impl in ("composite", "custom"):
        model = pretrained.load_model(model_dir, impl)
        paths[impl] = export_lib.export_saved_model(model, str(root / impl), 1, impl)
    return paths


def test_reflect_indices_match_numpy_reflect_padding():
    # np.pad "reflect" also keeps reflecting back and forth when the pad exceeds the size.
    for size in range(1, 7):
        for new_size in range(size, 3 * size + 12):
            expected = np.pad(np.arange(size), (0, new_size - size), mode="reflect")
            np.testing.assert_array_equal(export_lib.reflect_indices(size, new_size), expected)


def test_padded_size_is_the_smallest_size_the_network_takes():
    assert [export_lib.padded_size(n, 2) for n in (1, 16, 17, 24, 25)] == [16, 16, 24, 24, 32]
    assert export_lib.padded_size(tf.constant(17), 4).numpy() == 24


def test_downscale_any_size_is_the_model_on_the_padded_image_cropped():
    model = build_car_model({**default_config(2, "bicubic", "tiny"), "resampler_impl": "composite"})
    hr = _images((2, ODD_HEIGHT, ODD_WIDTH, 3))
    lr = export_lib.downscale_any_size(model, hr).numpy()
    padded = np.pad(hr, ((0, 0), (0, 24 - ODD_HEIGHT), (0, 32 - ODD_WIDTH), (0, 0)), mode="reflect")
    expected = model.downscale_uint8(padded).numpy()[:, :11, :15]
    np.testing.assert_array_equal(lr, expected)
    # Smaller than min_hr_size (16 at x2): padded by repeated reflection, LR ceil(H/s) x ceil(W/s).
    assert export_lib.downscale_any_size(model, _images((1, 5, 3, 3))).shape == (1, 3, 2, 3)


def test_with_resampler_impl_keeps_the_weights():
    model = build_car_model(default_config(2, "edsr", "tiny"))
    composite = export_lib.with_resampler_impl(model, "composite")
    assert composite.config["resampler_impl"] == "composite"
    for a, b in zip(model.get_weights(), composite.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert export_lib.with_resampler_impl(composite, "composite") is composite


def test_saved_model_layout_signatures_and_shapes(exports):
    path = exports["composite"]
    assert os.path.basename(path) == "1"
    assert os.listdir(os.path.dirname(path)) == ["1"], "no staging folder left behind"
    with open(os.path.join(path, export_lib.METADATA_PATH)) as handle:
        assert json.load(handle)["resampler_impl"] == "composite"

    loaded = car_tf.load_saved_model(os.path.dirname(path))  # a model base: picks version 1
    assert set(loaded.signatures) == set(export_lib.SIGNATURES)
    hr = _images((2, ODD_HEIGHT, ODD_WIDTH, 3))
    lr = loaded.signatures["downscale"](hr=tf.constant(hr))["lr"]
    assert lr.dtype == tf.uint8 and lr.shape == (2, 11, 15, 3)
    np.testing.assert_array_equal(loaded.signatures["serving_default"](hr=tf.constant(hr))["lr"], lr)
    sr = loaded.signatures["upscale"](lr=lr)["sr"]
    assert sr.dtype == tf.uint8 and sr.shape == (2, 22, 30, 3)


def test_image_bytes_signatures_match_the_uint8_ones(exports):
    loaded = tf.saved_model.load(exports["composite"])
    # Two sizes in one request: the string signatures take one image at a time.
    images = [_images((ODD_HEIGHT, ODD_WIDTH, 3), 2), _images((16, 24, 3), 3)]
    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    lr_pngs = loaded.signatures["downscale_image_bytes"](image_bytes=pngs)["lr_png_bytes"]
    sr_pngs = loaded.signatures["upscale_image_bytes"](image_bytes=lr_pngs)["sr_png_bytes"]
    for image, lr_png, sr_png in zip(images, lr_pngs, sr_pngs, strict=True):
        lr = loaded.signatures["downscale"](hr=tf.constant(image[None]))["lr"][0]
        assert _max_level_difference(tf.io.decode_png(lr_png), lr) == 0
        sr = loaded.signatures["upscale"](lr=lr[None])["sr"][0]
        assert _max_level_difference(tf.io.decode_png(sr_png), sr) == 0


def test_composite_export_has_only_builtin_ops_and_custom_export_has_the_op(exports):
    assert export_lib.CUSTOM_OP_NAME not in _saved_model_ops(exports["composite"])
    assert export_lib.CUSTOM_OP_NAME in _saved_model_ops(exports["custom"])


def test_export_refuses_an_existing_version_unless_overwrite(exports, model_dir):
    base = os.path.dirname(exports["composite"])
    model = pretrained.load_model(model_dir, "composite")
    with pytest.raises(FileExistsError, match="already exists"):
        export_lib.export_saved_model(model, base, 1)
    with pytest.raises(ValueError, match="positive"):
        export_lib.export_saved_model(model, base, 0)


@pytest.mark.slow
def test_composite_export_runs_without_car_tf_like_the_custom_op_model(exports, tmp_path):
    hr = _images((2, ODD_HEIGHT, ODD_WIDTH, 3), 4)
    np.save(tmp_path / "hr.npy", hr)
    script = tmp_path / "no_car_tf.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        import numpy as np
        import tensorflow as tf

        composite, custom, work = sys.argv[1:]
        report = {}
        loaded = tf.saved_model.load(composite)
        lr = loaded.signatures["downscale"](hr=tf.constant(np.load(work + "/hr.npy")))["lr"]
        sr = loaded.signatures["upscale"](lr=lr)["sr"]
        np.savez(work + "/out.npz", lr=lr.numpy(), sr=sr.numpy())
        report["car_tf_modules"] = [m for m in sys.modules if m.split(".")[0] == "car_tf"]
        try:
            tf.saved_model.load(custom)
            report["plain_tf_error"] = None
        except Exception as error:
            report["plain_tf_error"] = f"{type(error).__name__}: {error}"
        # An install whose op library was never built: no .so for car_tf to find.
        import glob
        glob.glob = lambda *args, **kwargs: []
        import car_tf
        try:
            car_tf.load_saved_model(custom)
            report["car_tf_error"] = None
        except Exception as error:
            report["car_tf_error"] = f"{type(error).__name__}: {error}"
        print(json.dumps(report))
    """))
    result = _run([sys.executable, str(script), exports["composite"], exports["custom"],
                   str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["car_tf_modules"] == []
    assert "Op type not registered 'AdaptiveResample'" in report["plain_tf_error"]
    assert report["car_tf_error"].startswith("MissingOpError")
    assert "import car_tf" in report["car_tf_error"]
    assert "--resampler_impl=composite" in report["car_tf_error"]

    fresh = np.load(tmp_path / "out.npz")
    # After `import car_tf` (this process), plain tf.saved_model.load finds the op.
    custom = tf.saved_model.load(exports["custom"])
    lr = custom.signatures["downscale"](hr=tf.constant(hr))["lr"]
    assert _max_level_difference(fresh["lr"], lr) <= 1
    sr = custom.signatures["upscale"](lr=tf.constant(fresh["lr"]))["sr"]
    assert _max_level_difference(fresh["sr"], sr) <= 1


def test_missing_op_error_explains_only_missing_op_errors():
    error = RuntimeError("Op type not registered 'AdaptiveResample' in binary running on host.")
    explained = export_lib.missing_op_error(error, "model/1")
    assert isinstance(explained, export_lib.MissingOpError)
    assert "model/1 uses AdaptiveResample" in str(explained) and "import car_tf" in str(explained)
    assert export_lib.missing_op_error(RuntimeError("something else"), "model/1") is None


@pytest.mark.slow
def test_saved_model_cli_shows_the_export(exports):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = _run([cli, "show", "--all", "--dir", exports["composite"]])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in export_lib.SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    assert "DT_UINT8" in result.stdout and "DT_STRING" in result.stdout


def _tflite_export(root, upscaler, quantizations):
    """(composite tiny x2 model, {quantization: paths}) exported at the ODD size."""
    model = build_car_model({**default_config(2, upscaler, "tiny"), "resampler_impl": "composite"})
    paths = {
        quantization: export_lib.export_tflite(model, str(root), ODD_HEIGHT, ODD_WIDTH, quantization)
        for quantization in quantizations
    }
    return model, paths


@pytest.fixture(scope="module")
def tflite_bicubic(tmp_path_factory):
    return _tflite_export(tmp_path_factory.mktemp("tflite_bicubic"), "bicubic", ["float32"])


@pytest.fixture(scope="module")
def tflite_edsr(tmp_path_factory):
    return _tflite_export(tmp_path_factory.mktemp("tflite_edsr"), "edsr", export_lib.QUANTIZATIONS)


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
    lr_tf = export_lib.downscale_any_size(model, hr).numpy()
    lr_lite = export_lib.run_tflite(files["downscaler"], hr)
    assert lr_lite.shape == (1, 11, 15, 3)
    assert _max_level_difference(lr_lite, lr_tf) <= 1
    # TF's upscaler here is the model's own (ResizeBicubic for bicubic).
    sr_lite = export_lib.run_tflite(files["upscaler"], lr_tf)
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
    lr_tf = export_lib.downscale_any_size(model, hr).numpy()
    lr_lite = export_lib.run_tflite(files["downscaler"], hr)
    sr_lite = export_lib.run_tflite(files["upscaler"], lr_tf)
    sr_tf = model.upscale_uint8(lr_tf).numpy()
    # Measured on this tiny random model: at most 1 level, mean below 0.2. The bound leaves room.
    for lite, reference in ((lr_lite, lr_tf), (sr_lite, sr_tf)):
        assert _max_level_difference(lite, reference) <= 3
        assert np.abs(lite.astype(np.int32) - reference).mean() < 0.5


def test_run_tflite_rejects_another_input_shape(tflite_bicubic):
    _, paths = tflite_bicubic
    with pytest.raises(ValueError, match="takes uint8"):
        export_lib.run_tflite(paths["float32"]["downscaler"], _images((1, 16, 16, 3)))


def test_benchmark_tflite_reports_size_and_latency(tflite_bicubic):
    _, paths = tflite_bicubic
    path = paths["float32"]["upscaler"]
    result = export_lib.benchmark_tflite(path, runs=2, warmup=1, num_threads=1)
    assert result["size_bytes"] == os.path.getsize(path)
    assert result["input_shape"] == [1, 11, 15, 3] and result["output_shape"] == [1, 22, 30, 3]
    assert 0 < result["min_ms"] <= result["median_ms"]


@pytest.mark.slow
def test_tools_export_and_benchmark(tmp_path):
    model = build_car_model(default_config(2, "bicubic", "tiny"))
    keras_file = str(tmp_path / "model.keras")
    model.save(keras_file)

    result = _run([sys.executable, "tools/export_savedmodel.py", f"--model={keras_file}",
                   f"--export_base={tmp_path / 'serving'}", "--version=3"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "serving" / "3")
    lr = car_tf.load_saved_model(str(tmp_path / "serving")).signatures["downscale"](
        hr=tf.constant(_images((1, 16, 16, 3))))["lr"]
    assert lr.shape == (1, 8, 8, 3)

    result = _run([sys.executable, "tools/export_tflite.py", f"--model={keras_file}",
                   f"--output_dir={tmp_path / 'lite'}", "--height=16", "--width=24"])
    assert result.returncode == 0, result.stderr[-3000:]
    files = result.stdout.split()
    assert [os.path.basename(f) for f in files] == [
        "downscaler_16x24_float32.tflite", "upscaler_8x12_float32.tflite"]

    result = _run([sys.executable, "tools/benchmark_tflite.py", "--runs=1", "--warmup=0", "--json"]
                  + [f"--tflite={f}" for f in files])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["input_shape"] for r in json.loads(result.stdout)] == [[1, 16, 24, 3], [1, 8, 12, 3]]

    result = _run([sys.executable, "tools/export_savedmodel.py", "--model=no-such-model",
                   f"--export_base={tmp_path / 'x'}"])
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("export_savedmodel: model 'no-such-model'")
