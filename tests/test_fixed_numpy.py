"""car_tf.fixed_numpy: fixed-kernel downscaling in NumPy and its compiled twin, against the
TensorFlow model."""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from car_tf import cli, fixed_numpy, models, pretrained
from car_tf.inference import Runner
from tests.synthetic_images import photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(REPO, "car_tf", "sample_data", "*.png")))
# Float32 sums in another order: a value within rounding error of a half level may land on
# the other side of it, and nowhere else.
MAX_DIFFERING = 1e-3


def _tf_downscale(model, rgb):
    """FixedKernelModel.downscale_uint8 as `car downscale` ran it before: via the Runner,
    in TensorFlow."""
    return Runner(model, tile=0, native_fixed=False).downscale(rgb)


def _assert_within_one_level(ours, reference):
    assert ours.shape == reference.shape and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - reference)
    assert difference.max() <= 1
    assert np.mean(difference > 0) <= MAX_DIFFERING


def _random_model(scale, normalization, seed):
    model = models.FixedKernelModel(scale, resampler_kernel_normalization=normalization)
    taps = model.kernel_size**2
    model.raw_kernel.assign(np.random.default_rng(seed).normal(0, 0.1, taps).astype(np.float32))
    return model


def _numpy_twin(model):
    return fixed_numpy.FixedKernel(
        model.kernel().numpy().reshape(model.kernel_size, model.kernel_size), model.scale)


@pytest.mark.parametrize("native", [False, True], ids=["numpy", "compiled"])
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 13), (16, 16), (37, 53), (67, 9)])
def test_random_signed_kernels_match_the_model_at_any_size(scale, shape, native):
    model = _random_model(scale, "signed", seed=scale)
    rgb = photo(*shape, seed=shape[0])
    _assert_within_one_level(fixed_numpy.downscale_uint8(rgb, _numpy_twin(model), native=native),
                             _tf_downscale(model, rgb))


def test_the_compiled_twin_is_built_and_taken_by_default():
    # make build (setup.py) builds it; were it missing, the fast path would silently be
    # NumPy's, several times slower (docs/BENCHMARKS.md).
    assert fixed_numpy.native_library() is not None
    model = _numpy_twin(_random_model(4, "signed", seed=8))
    rgb = photo(203, 301, seed=8)
    default = fixed_numpy.downscale_uint8(rgb, model)
    np.testing.assert_array_equal(default, fixed_numpy.downscale_uint8(rgb, model, native=True))
    # The two twins differ at most where a float32 sum lands within rounding of a half level.
    _assert_within_one_level(default, fixed_numpy.downscale_uint8(rgb, model, native=False))
    calls = []
    fixed_numpy.downscale_uint8(rgb, model, lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]


@pytest.mark.parametrize("channels", [1, 4])
def test_the_compiled_twin_takes_any_channel_count(channels):
    model = _numpy_twin(_random_model(2, "signed", seed=channels))
    rgb = np.dstack([photo(19, 23, seed=c)[:, :, 0] for c in range(channels)])
    _assert_within_one_level(fixed_numpy.downscale_uint8(rgb, model, native=True),
                             fixed_numpy.downscale_uint8(rgb, model, native=False))


def test_the_compiled_twin_refuses_indices_outside_the_image():
    library = fixed_numpy.native_library()
    model = _numpy_twin(_random_model(2, "signed", seed=1))
    rgb = photo(8, 8)
    # 4 x 4 LR pixels from 8 x 8: k = 7 taps at stride 2 read 4 + 3 blocks of 2 a side.
    valid = fixed_numpy._conv_input_indices(8, 2, 4 + 3)
    assert fixed_numpy._native_downscale(library, rgb, model.kernel, 2, valid, valid, 4,
                                         4).shape == (4, 4, 3)
    outside = valid.copy()
    outside[-1] = 8
    with pytest.raises(RuntimeError, match="code 3"):
        fixed_numpy._native_downscale(library, rgb, model.kernel, 2, outside, valid, 4, 4)
    with pytest.raises(RuntimeError, match="code 4"):
        fixed_numpy._native_downscale(library, rgb, model.kernel, 2, valid, outside - 9, 4, 4)
    with pytest.raises(RuntimeError, match="code 3"):  # too few rows for 5 LR rows
        fixed_numpy._native_downscale(library, rgb, model.kernel, 2, valid, valid, 5, 4)
    with pytest.raises(ValueError, match="uint8"):
        fixed_numpy._native_downscale(library, rgb.astype(np.float32), model.kernel, 2, valid,
                                      valid, 4, 4)


def test_asking_for_the_compiled_twin_where_it_is_not_built_says_how(monkeypatch):
    monkeypatch.setattr(fixed_numpy, "native_library", lambda: None)
    model = _numpy_twin(_random_model(2, "signed", seed=1))
    with pytest.raises(RuntimeError, match="build_ext --inplace"):
        fixed_numpy.downscale_uint8(photo(8, 8), model, native=True)
    # and the default falls back to NumPy
    assert fixed_numpy.downscale_uint8(photo(8, 8), model).shape == (4, 4, 3)


def test_bands_do_not_change_the_result():
    model = _numpy_twin(_random_model(4, "signed", seed=3))
    rgb = photo(150, 90, seed=1)
    whole = fixed_numpy.downscale_uint8(rgb, model, native=False)
    calls = []
    banded = fixed_numpy.downscale_uint8(rgb, model, lambda done, total: calls.append(total),
                                         band_bytes=1, native=False)
    np.testing.assert_array_equal(banded, whole)
    # band_bytes=1: one LR row per band.
    assert calls == [38] * 38


@pytest.mark.parametrize("normalization", ["signed", "softmax"])
def test_a_saved_model_folder_loads_as_the_model_computes(tmp_path, normalization):
    model = _random_model(2, normalization, seed=5)
    model.save_weights(str(tmp_path / pretrained.WEIGHTS))
    config = models.fixed_config(2, normalization)
    (tmp_path / pretrained.CONFIG).write_text(json.dumps(config))
    assert fixed_numpy.is_fixed_model_dir(str(tmp_path))
    loaded = fixed_numpy.load_fixed_kernel(str(tmp_path))
    np.testing.assert_allclose(loaded.kernel.reshape(-1), model.kernel().numpy(), atol=1e-7)
    rgb = photo(21, 34, seed=2)
    _assert_within_one_level(fixed_numpy.downscale_uint8(rgb, loaded), _tf_downscale(model, rgb))


@pytest.mark.parametrize("name", ["car-x4-fixed", "car-x2-fixed"])
def test_bundled_models_match_tensorflow_on_the_sample_images(name):
    assert SAMPLES
    ours = fixed_numpy.load_fixed_kernel(pretrained.resolve(name)[1], require_manifest=True)
    model = pretrained.load_model(name)
    np.testing.assert_allclose(ours.kernel.reshape(-1), model.kernel().numpy(), atol=1e-7)
    for path in SAMPLES:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        reference = _tf_downscale(model, rgb)
        for native in (False, True):
            _assert_within_one_level(fixed_numpy.downscale_uint8(rgb, ours, native=native),
                                     reference)


def test_other_models_are_not_taken_for_fixed_ones():
    assert not fixed_numpy.is_fixed_model_dir(pretrained.resolve("car-x4-bicubic")[1])
    with pytest.raises(ValueError, match="not a fixed-kernel model"):
        fixed_numpy.load_fixed_kernel(pretrained.resolve("car-x4-bicubic")[1])


def test_car_downscale_with_a_fixed_model_does_not_import_tensorflow(tmp_path):
    Image.fromarray(photo(40, 52)).save(tmp_path / "x.png")
    script = (
        "import json, sys\n"
        "from car_tf import cli\n"
        "status = cli.main(json.loads(sys.argv[1]))\n"
        "print(json.dumps([status, 'tensorflow' in sys.modules, 'keras' in sys.modules]))\n"
    )
    argv = ["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"),
            "--model", "car-x4-fixed", "--quiet"]
    result = subprocess.run([sys.executable, "-c", script, json.dumps(argv)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [cli.EXIT_OK, False, False]
    written = np.asarray(Image.open(tmp_path / "out" / "x.png"))
    _assert_within_one_level(written, _tf_downscale(pretrained.load_model("car-x4-fixed"),
                                                    photo(40, 52)))


def test_an_alpha_plane_goes_as_on_the_tensorflow_path(tmp_path):
    rgba = np.dstack([photo(30, 41), photo(30, 41, seed=4)[:, :, 0]])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    args = ["downscale", str(tmp_path / "x.png"), "--model", "car-x2-fixed", "--quiet"]
    assert cli.main([*args, "-o", str(tmp_path / "numpy")]) == cli.EXIT_OK
    # roundtrip takes the TensorFlow path; its lr/ file is that path's downscale.
    assert cli.main(["roundtrip", *args[1:], "-o", str(tmp_path / "tf")]) == cli.EXIT_OK
    ours = np.asarray(Image.open(tmp_path / "numpy" / "x.png"))
    reference = np.asarray(Image.open(tmp_path / "tf" / "lr" / "x.png"))
    np.testing.assert_array_equal(ours[:, :, 3], reference[:, :, 3])
    _assert_within_one_level(ours[:, :, :3], reference[:, :, :3])


def test_a_flipped_byte_in_a_copied_model_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(pretrained.resolve("car-x4-fixed")[1], folder)
    weights = folder / pretrained.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        fixed_numpy.load_fixed_kernel(str(folder))
    Image.fromarray(photo(16, 16)).save(tmp_path / "x.png")
    status = cli.main(["downscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"),
                       "--model", str(folder)])
    assert status == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"car: error: model {folder}: {weights}: missing or sha256 mismatch")
    assert "\n" not in error
    assert not (tmp_path / "out").exists()


def test_the_runner_takes_the_compiled_twin_for_a_fixed_model(monkeypatch):
    # Library users (pretrained.load_model + Runner) and Beam get what `car downscale` runs.
    model = _random_model(4, "signed", seed=7)
    runner = Runner(model, tile=32)
    assert runner.fixed_kernel is not None
    np.testing.assert_array_equal(runner.fixed_kernel.kernel.reshape(-1), model.kernel().numpy())
    rgb = photo(70, 45, seed=2)
    calls = []
    original = fixed_numpy.downscale_uint8
    monkeypatch.setattr(fixed_numpy, "downscale_uint8",
                        lambda *args, **kwargs: calls.append(kwargs) or original(*args, **kwargs))
    ours = runner.downscale(rgb)
    assert calls and calls[0]["native"] is True
    _assert_within_one_level(ours, _tf_downscale(model, rgb))
    assert Runner(model, tile=32, native_fixed=False).fixed_kernel is None
    assert Runner(pretrained.load_model("car-x4-bicubic"), tile=32).fixed_kernel is None
