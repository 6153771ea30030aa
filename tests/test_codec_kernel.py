"""car_tf.analysis.codec_kernel: symmetric separable kernels, Nelder-Mead, and the codec
objective, which must score a kernel exactly as the rate-distortion evaluation does."""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from car_tf import fixed_numpy, pretrained
from car_tf.analysis import codec_kernel
from car_tf.evaluation import rate_distortion
from car_tf.ops.composite import unmoved_tap_positions
from synthetic_images import photo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUALITIES = (30, 50, 70, 90)


@pytest.mark.parametrize("scale, free", [(2, 2), (3, 4), (4, 5)])
def test_symmetric_taps_mirror_about_the_centre_and_sum_to_one(scale, free):
    assert codec_kernel.free_weights(scale) == free
    relative = np.linspace(0.5, -0.2, free)
    taps = codec_kernel.symmetric_taps(scale, relative)
    positions = unmoved_tap_positions(3 * scale + 1)
    assert taps.sum() == pytest.approx(1.0)
    assert taps[0] == 0.0
    for j in range(1, taps.size):
        mirror = int(np.flatnonzero(np.isclose(positions, -positions[j]))[0])
        assert taps[mirror] == pytest.approx(taps[j])
    # The nearest taps carry the reference weight, the next ones `relative` of it.
    nearest = taps[np.argmin(np.abs(positions))]
    second = np.unique(np.abs(positions[1:]))[1]
    assert taps[np.isclose(np.abs(positions), second)][0] == pytest.approx(relative[0] * nearest)


def test_wrong_weight_counts_and_zero_sums_are_refused():
    with pytest.raises(ValueError, match="2 relative weights"):
        codec_kernel.symmetric_taps(2, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="sum to 0"):
        codec_kernel.symmetric_taps(2, [-1.0, 0.0])


@pytest.mark.parametrize("scale", [2, 4])
def test_relative_weights_invert_separable_kernel(scale):
    relative = np.linspace(0.3, -0.15, codec_kernel.free_weights(scale))
    kernel = codec_kernel.separable_kernel(scale, relative)
    assert kernel.shape == (3 * scale + 1,) * 2
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(codec_kernel.relative_weights(kernel, scale), relative, atol=1e-5)


def test_nelder_mead_finds_a_quadratic_minimum_and_never_loses_its_best():
    target = np.array([0.3, -0.2, 0.1])
    calls = []

    def objective(point):
        calls.append(point)
        return float(np.sum((point - target) ** 2 * [1.0, 4.0, 9.0]))

    history = []
    result = codec_kernel.nelder_mead(objective, np.zeros(3), 0.1, 150,
                                      report=lambda i, value, point: history.append(value))
    np.testing.assert_allclose(result.best, target, atol=1e-3)
    assert result.evaluations == len(calls)
    assert history == result.history and len(history) == 150
    assert all(later <= earlier for earlier, later in zip(history, history[1:]))
    assert result.value == min(objective(p) for p in calls[:-1] + [result.best])


def _images(count, size=48):
    return [photo(size, size, seed) for seed in range(count)]


def test_objective_scores_a_kernel_as_the_rate_distortion_evaluation(tmp_path):
    scale = 2
    images = _images(2)
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
    kernel = codec_kernel.separable_kernel(scale, [0.05, -0.15])
    objective = codec_kernel.CodecObjective(images, scale, "jpeg", QUALITIES)
    rates, psnrs = objective.kernel_curve(kernel)

    points, _ = rate_distortion.evaluate_folder(codec_kernel.fixed_model(kernel, scale),
                                                str(tmp_path), "jpeg", QUALITIES)
    for name, (curve_rates, curve_psnrs) in (("car", (rates, psnrs)),
                                             ("bicubic", objective.reference)):
        row = sorted((p for p in points if p.downscaler == name and p.upscaler == "bicubic"),
                     key=lambda p: p.quality)
        # The search downscales in NumPy, the evaluation in TensorFlow: one level apart at
        # most, so the JPEG sizes and scores may differ a little for the kernel's row only.
        tolerance = 0.0 if name == "bicubic" else 0.02
        np.testing.assert_allclose(curve_rates, [p.bpp for p in row], rtol=tolerance + 1e-9)
        np.testing.assert_allclose(curve_psnrs, [p.psnr_y for p in row], atol=tolerance * 5 + 1e-9)
    assert objective.bd_rate(objective.reference) == pytest.approx(0.0, abs=1e-9)


def test_objective_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="lossless|lossy"):
        codec_kernel.CodecObjective(_images(1), 2, "png", QUALITIES)
    with pytest.raises(ValueError, match="at least 4"):
        codec_kernel.CodecObjective(_images(1), 2, "jpeg", (30, 50))
    with pytest.raises(ValueError, match="large enough"):
        codec_kernel.CodecObjective([photo(8, 8)], 4, "jpeg", QUALITIES)


def test_search_never_ends_worse_than_its_start():
    scale = 2
    objective = codec_kernel.CodecObjective(_images(2), scale, "jpeg", QUALITIES)
    start = codec_kernel.separable_kernel(scale, [0.4, -0.3])
    kernel, result = codec_kernel.search(objective, start, iterations=3, step=0.1)
    start_value = objective.bd_rate(objective.kernel_curve(start))
    assert result.value <= start_value
    assert objective.bd_rate(objective.kernel_curve(kernel)) == pytest.approx(result.value)
    np.testing.assert_allclose(kernel, codec_kernel.separable_kernel(scale, result.best))


def test_blend_runs_from_bicubic_to_the_kernel():
    from car_tf.protocol import bicubic_downscale_uint8

    scale = 2
    hr = photo(32, 40, 3)
    kernel = codec_kernel.separable_kernel(scale, [0.05, -0.15])
    as_kernel = codec_kernel.BlendDownscaler(kernel, scale, 0.0, 0.0)(hr)
    fixed = np.asarray(codec_kernel.fixed_model(kernel, scale).downscale_uint8(hr[None]))[0]
    assert np.abs(as_kernel.astype(int) - fixed).max() <= 1
    assert np.mean(as_kernel != fixed) < 0.01
    as_bicubic = codec_kernel.BlendDownscaler(kernel, scale, -40.0, 0.0)(hr)
    assert np.abs(as_bicubic.astype(int) - bicubic_downscale_uint8(hr, scale)).max() <= 1
    # A positive slope keeps more of the kernel's detail where the detail is stronger.
    blend = codec_kernel.BlendDownscaler(kernel, scale, 0.0, 1.5)
    z = np.linspace(-3.0, 3.0, 7)
    assert np.all(np.diff(blend.weights(z)) > 0)
    assert blend.weights(z).max() < codec_kernel.BLEND_MAX


@pytest.mark.parametrize("adaptive", [False, True])
def test_blend_search_starts_at_the_kernel_and_scores_what_it_returns(adaptive):
    scale = 2
    objective = codec_kernel.CodecObjective(_images(2), scale, "jpeg", QUALITIES)
    kernel = codec_kernel.separable_kernel(scale, [0.05, -0.15])
    blend, result = codec_kernel.blend_search(objective, kernel, 2, adaptive)
    start = objective.bd_rate(objective.curve(codec_kernel.BlendDownscaler(kernel, scale, 0, 0)))
    assert result.value <= start
    assert result.best.size == (2 if adaptive else 1)
    if not adaptive:
        assert blend.slope == 0.0
    assert objective.bd_rate(objective.curve(blend)) == pytest.approx(result.value)


def test_tool_writes_a_model_folder_that_loads_everywhere(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for seed in range(3):
        Image.fromarray(photo(48, 48, seed)).save(train / f"{seed}.png")
    model_dir = tmp_path / "found"
    command = [sys.executable, os.path.join(ROOT, "tools", "search_codec_kernel.py"),
               "--scale=2", f"--train_dirs={train}", "--images=2", "--iterations=1",
               "--lr_codec=jpeg", *[f"--lr_quality={q}" for q in QUALITIES],
               f"--data_dir={train}", f"--model_dir={model_dir}", "--blend_iterations=1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "iteration 1: BD-rate" in result.stdout and "found after" in result.stdout
    assert "adaptive blend against fixed blend: " in result.stdout
    settings = json.loads((model_dir / "train_config.json").read_text())["search"]
    assert len(settings["images"]) == 2 and settings["lr_quality"] == list(QUALITIES)
    numpy_kernel = fixed_numpy.load_fixed_kernel(str(model_dir)).kernel
    np.testing.assert_allclose(
        numpy_kernel, codec_kernel.separable_kernel(2, settings["relative_weights"]), atol=1e-6)
    model = pretrained.load_model(str(model_dir))
    np.testing.assert_allclose(model.kernel().numpy().reshape(7, 7), numpy_kernel, atol=1e-6)


def test_tool_refuses_bad_input_in_one_line(tmp_path):
    command = [sys.executable, os.path.join(ROOT, "tools", "search_codec_kernel.py"),
               "--scale=2", f"--train_dirs={tmp_path}", "--lr_codec=jpeg", "--lr_quality=101"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("search_codec_kernel.py: error:")
    assert "quality" in result.stderr
