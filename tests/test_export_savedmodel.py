"""car_tf.export.savedmodel: layout, signatures, ops, loading with and without car_tf."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import car_tf
from car_tf import memory, pretrained
from car_tf.export import savedmodel
from car_tf.models import default_config
from export_fixtures import ODD_HEIGHT, ODD_WIDTH
from export_fixtures import images as _images
from export_fixtures import max_level_difference as _max_level_difference
from export_fixtures import run as _run
from export_fixtures import write_model_dir as _write_model_dir


def _saved_model_nodes(path):
    """The nodes of a SavedModel's graph and of its function library."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    graph = proto.meta_graphs[0].graph_def
    return list(graph.node) + [node for function in graph.library.function
                               for node in function.node_def]


def _saved_model_ops(path):
    """Op types in a SavedModel's graph and function library."""
    return {node.op for node in _saved_model_nodes(path)}


def _conv_dtypes(path):
    """The dtypes of a SavedModel's Conv2D nodes."""
    return {tf.as_dtype(node.attr["T"].type) for node in _saved_model_nodes(path)
            if node.op == "Conv2D"}


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
        paths[impl] = savedmodel.export_saved_model(model, str(root / impl), 1, impl)
    return paths


def test_saved_model_layout_signatures_and_shapes(exports):
    path = exports["composite"]
    assert os.path.basename(path) == "1"
    assert os.listdir(os.path.dirname(path)) == ["1"], "no staging folder left behind"
    with open(os.path.join(path, savedmodel.METADATA_PATH)) as handle:
        assert json.load(handle)["resampler_impl"] == "composite"

    loaded = car_tf.load_saved_model(os.path.dirname(path))  # a model base: picks version 1
    assert set(loaded.signatures) == set(savedmodel.SIGNATURES)
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
    assert savedmodel.CUSTOM_OP_NAME not in _saved_model_ops(exports["composite"])
    # The composite resampler's local fast path is in the graph (car_tf.ops.composite).
    assert "ExtractImagePatches" in _saved_model_ops(exports["composite"])
    assert savedmodel.CUSTOM_OP_NAME in _saved_model_ops(exports["custom"])


def test_a_mixed_bfloat16_export_is_within_a_level_of_the_float32_one(exports, model_dir,
                                                                      tmp_path):
    model = pretrained.load_model(model_dir, "composite")
    path = savedmodel.export_saved_model(model, str(tmp_path), 1, precision="mixed_bfloat16")
    with open(os.path.join(path, savedmodel.METADATA_PATH)) as handle:
        assert json.load(handle)["precision"] == "mixed_bfloat16"
    with open(os.path.join(exports["composite"], savedmodel.METADATA_PATH)) as handle:
        assert json.load(handle)["precision"] == "float32"
    assert _conv_dtypes(path) == {tf.float32, tf.bfloat16}  # the kernel head's last stays float32
    assert _conv_dtypes(exports["composite"]) == {tf.float32}
    hr = tf.constant(_images((1, ODD_HEIGHT, ODD_WIDTH, 3), 6))
    lr = tf.saved_model.load(path).signatures["downscale"](hr=hr)["lr"]
    reference = tf.saved_model.load(exports["composite"]).signatures["downscale"](hr=hr)["lr"]
    assert _max_level_difference(lr, reference) <= 1


def test_export_refuses_an_existing_version_unless_overwrite(exports, model_dir):
    base = os.path.dirname(exports["composite"])
    model = pretrained.load_model(model_dir, "composite")
    with pytest.raises(FileExistsError, match="already exists"):
        savedmodel.export_saved_model(model, base, 1)
    with pytest.raises(ValueError, match="positive"):
        savedmodel.export_saved_model(model, base, 0)


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
    explained = savedmodel.missing_op_error(error, "model/1")
    assert isinstance(explained, savedmodel.MissingOpError)
    assert "model/1 uses AdaptiveResample" in str(explained) and "import car_tf" in str(explained)
    assert savedmodel.missing_op_error(RuntimeError("something else"), "model/1") is None


@pytest.mark.slow
def test_saved_model_cli_shows_the_export(exports):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = _run([cli, "show", "--all", "--dir", exports["composite"]])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in savedmodel.SIGNATURES:
        assert f"signature_def['{name}']" in result.stdout
    assert "DT_UINT8" in result.stdout and "DT_STRING" in result.stdout


@pytest.fixture(scope="module")
def tiled_export(model_dir, tmp_path_factory):
    """The composite export with tiles of 32 HR pixels, so a small image spans several."""
    model = pretrained.load_model(model_dir, "composite")
    return savedmodel.export_saved_model(model, str(tmp_path_factory.mktemp("tiled")), 1, tile=32)


def test_the_downscale_runs_in_tiles_and_matches_the_cli(tiled_export, model_dir):
    from car_tf.inference import Runner

    hr = _images((1, 83, 70, 3), 5)
    loaded = tf.saved_model.load(tiled_export)
    lr = loaded.signatures["downscale"](hr=tf.constant(hr))["lr"].numpy()
    model = pretrained.load_model(model_dir, "custom")
    assert len(Runner(model, tile=32).downscale_tiles(83, 70)) > 4
    for tile in (32, 0):
        assert _max_level_difference(lr[0], Runner(model, tile=tile).downscale(hr[0])) <= 1
    metadata = json.load(open(os.path.join(tiled_export, savedmodel.METADATA_PATH)))
    assert metadata["downscale_tile"] == 32
    # The tiles are a loop in the graph, not one copy of the network per tile.
    assert "While" in _saved_model_ops(tiled_export) or "StatelessWhile" in _saved_model_ops(tiled_export)


@pytest.mark.parametrize("signature, name, shape", [
    ("downscale", "hr", (1, 0, 5, 3)),
    ("downscale", "hr", (2, 7, 0, 3)),
    ("upscale", "lr", (1, 4, 0, 3)),
])
def test_empty_images_fail_naming_the_expected_shape(exports, signature, name, shape):
    loaded = tf.saved_model.load(exports["composite"])
    expected = f"{name} must be uint8 [N, H, W, 3] with H, W >= 1, got [{','.join(map(str, shape))}]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(expected)):
        loaded.signatures[signature](**{name: tf.zeros(shape, tf.uint8)})


@pytest.mark.slow
def test_downscale_memory_of_a_big_image_follows_the_tile_not_the_image():
    # 1500 x 1500 x4 with the bundled lite model, in a process with TensorFlow only. Before
    # the in-graph tiles and the row-by-row resampler the same export peaked at 3.4 GB
    # (the resampler's [1, 376, 376, 169, 3] gathers alone are 287 MB each).
    result = _run([sys.executable, "tools/benchmark_savedmodel.py", "--height", "1500",
                   "--width", "1500", "--model", "car-x4-bicubic", "--skip_cli", "--json"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])["saved_model"]
    assert report["car_tf_modules"] == []
    assert report["peak_rss_mib"] < 2000, report


def test_benchmark_reports_the_childs_own_peak_not_its_parents():
    # getrusage's ru_maxrss in a child starts from its parent's size at the spawn: with
    # 1 GiB held here, a small child would read >= 1 GiB. The tool's TF-only child reads its
    # peak with this source (memory.peak_rss_source: it must not import car_tf).
    source = memory.peak_rss_source()
    held = np.ones(2**30 // 8)
    child = subprocess.run([sys.executable, "-c", source + "print(peak_rss_mib())"],
                           capture_output=True, text=True, check=True)
    assert held.sum() > 0 and float(child.stdout) < 200
