"""The adaptive resampler op (car_tf.ops.adaptive_resample): the custom op against
its pure-TF twin and two independent references (tests/resample_reference.py),
its gradients, determinism, bad inputs and the impl dispatch.

Checks of the composite alone (its own gradients, dynamic shapes) live in
tests/test_composite.py.
"""

import importlib
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from car_tf import ops
from resample_reference import (
    adaptive_resample_numpy,
    adaptive_resample_padded,
    off_grid_inputs,
    random_inputs,
)

# No skip when the library is missing: an unbuilt op must fail the suite, not pass it vacuously.
assert ops.custom_op_available(), f"op library unavailable: {ops.op_library_error()}"

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _custom(image, kernels, offsets_x, offsets_y, offset_unit):
    return ops.adaptive_resample(image, kernels, offsets_x, offsets_y, offset_unit, impl="custom").numpy()


def _composite(image, kernels, offsets_x, offsets_y, offset_unit):
    return ops.adaptive_resample(image, kernels, offsets_x, offsets_y, offset_unit, impl="composite").numpy()


def _grads(impl, image, kernels, offsets_x, offsets_y, offset_unit, upstream):
    """Gradients of sum(output * upstream) for all four inputs, as numpy arrays."""
    inputs = [tf.constant(a) for a in (image, kernels, offsets_x, offsets_y)]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = ops.adaptive_resample(*inputs, offset_unit, impl=impl)
    return [g.numpy() for g in tape.gradient(output, inputs, output_gradients=tf.constant(upstream))]


# ---- forward parity --------------------------------------------------------------------------

# (scale, k, batch, HR size, LR size, offset spread in offset units). Non-square images; a
# spread of 3 units puts taps 6-12 HR pixels away from their centre, far beyond the border.
PARITY_CASES = [
    pytest.param(2, 7, 2, (14, 18), (7, 9), 0.5, id="x2-k7"),
    pytest.param(2, 7, 3, (10, 16), (5, 8), 3.0, id="x2-k7-far"),
    pytest.param(4, 13, 2, (20, 28), (5, 7), 0.5, id="x4-k13"),
    pytest.param(4, 13, 2, (16, 24), (4, 6), 3.0, id="x4-k13-far"),
]


@pytest.mark.parametrize("scale, k, batch, in_size, out_size, spread", PARITY_CASES)
def test_forward_float32_matches_composite_and_references(scale, k, batch, in_size, out_size, spread):
    args = random_inputs(k, batch, in_size, out_size, 3, k, spread, np.float32) + (float(scale),)
    custom = _custom(*args)
    assert custom.shape == (batch, *out_size, 3) and custom.dtype == np.float32
    loop = adaptive_resample_numpy(*args)
    np.testing.assert_allclose(custom, loop, rtol=0, atol=1e-5)
    np.testing.assert_allclose(_composite(*args), loop, rtol=0, atol=1e-5)
    np.testing.assert_allclose(custom, _composite(*args), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale, k, batch, in_size, out_size, spread", PARITY_CASES)
def test_forward_float64_matches_composite_and_references(scale, k, batch, in_size, out_size, spread):
    args = random_inputs(k + 1, batch, in_size, out_size, 3, k, spread, np.float64) + (float(scale),)
    custom = _custom(*args)
    assert custom.dtype == np.float64
    np.testing.assert_allclose(custom, adaptive_resample_numpy(*args), rtol=0, atol=1e-12)
    np.testing.assert_allclose(custom, _composite(*args), rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_forward_any_channel_count(channels):
    # 1, 3 and 4 channels take the CPU kernel's tap-block float32 path, the others the per-tap one.
    args = random_inputs(channels, 2, (9, 11), (4, 5), channels, 5, 1.0) + (2.0,)
    np.testing.assert_allclose(_custom(*args), adaptive_resample_numpy(*args), rtol=0, atol=1e-5)


def test_forward_non_integer_ratio():
    # W/w = 15/4 and H/h = 13/5: the pixel centres of eq. 1 fall between HR pixels.
    args = random_inputs(7, 2, (13, 15), (5, 4), 3, 3, 1.0) + (3.0,)
    np.testing.assert_allclose(_custom(*args), adaptive_resample_numpy(*args), rtol=0, atol=1e-5)


# ---- semantics -------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["custom", "composite"])
@pytest.mark.parametrize("scale", [2, 4])
def test_unmoved_taps_read_single_hr_pixels_as_in_eq_2(impl, scale):
    # Eq. 2 puts tap (i, j) at (u + i - k/2, v + j - k/2), k/2 real: with
    # k = 3s + 1 every unmoved tap lands on an HR pixel centre, x*s - s - 1 + j,
    # so a one-hot kernel copies one pixel and 4 taps of 1/4 give a 2x2 mean.
    rng = np.random.default_rng(0)
    k = 3 * scale + 1
    image = rng.random((2, 4 * scale, 5 * scale, 3)).astype(np.float32)
    offsets = np.zeros((2, 4, 5, k * k), np.float32)
    centre = k // 2
    one_hot = np.zeros_like(offsets)
    one_hot[..., centre * k + centre] = 1.0
    output = ops.adaptive_resample(image, one_hot, offsets, offsets, scale, impl=impl).numpy()
    # The centre tap sits at x*s - s - 1 + k//2 = x*s + s/2 - 1 (HR pixel index).
    first = scale // 2 - 1
    np.testing.assert_array_equal(output, image[:, first::scale, first::scale])

    block = np.zeros_like(offsets)
    for i, j in ((centre, centre), (centre, centre + 1), (centre + 1, centre), (centre + 1, centre + 1)):
        block[..., i * k + j] = 0.25
    output = ops.adaptive_resample(image, block, offsets, offsets, scale, impl=impl).numpy()
    pairs = image[:, first:first + 4 * scale:scale] + image[:, first + 1:first + 4 * scale + 1:scale]
    block_mean = (pairs[:, :, first::scale] + pairs[:, :, first + 1::scale]) / 4
    np.testing.assert_allclose(output, block_mean, rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", ["custom", "composite"])
@pytest.mark.parametrize("spread", [1.0, 4.0, 50.0])
def test_edges_equal_reflect_padding_then_clamping(impl, spread):
    # spread 50 (x offset_unit 2) sends most taps beyond the reflected band, into the clamp.
    image, kernels, offsets_x, offsets_y = random_inputs(11, 2, (7, 9), (4, 5), 2, 5, spread, np.float64)
    output = ops.adaptive_resample(image, kernels, offsets_x, offsets_y, 2.0, impl=impl).numpy()
    expected = adaptive_resample_padded(image, kernels, offsets_x, offsets_y, 2.0)
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-12)


def test_offsets_move_taps_by_offset_unit_hr_pixels():
    # k = 3 at unit 4 on a 16 -> 4 grid: centres at 4x + 1.5, the centre tap at
    # 4x + 1.5 + (1 - 3/2) = 4x + 1. Offsets of (0.375, -0.125) units of 4 HR pixels
    # move it by (+1.5, -0.5) HR pixels, onto half-pixel positions where the
    # bilinear sample is a 2x2 mean.
    rng = np.random.default_rng(3)
    image = rng.random((1, 16, 16, 1))
    kernels = np.zeros((1, 4, 4, 9))
    kernels[..., 4] = 1.0
    offsets_x, offsets_y = np.full_like(kernels, 0.375), np.full_like(kernels, -0.125)
    output = _custom(image, kernels, offsets_x, offsets_y, 4.0)
    # Columns 4x + 2.5 and rows 4y + 0.5.
    rows, cols = np.arange(4) * 4, np.arange(4) * 4 + 2
    expected = 0.25 * (
        image[0, rows][:, cols] + image[0, rows][:, cols + 1] + image[0, rows + 1][:, cols] + image[0, rows + 1][:, cols + 1]
    )
    np.testing.assert_allclose(output[0], expected, rtol=0, atol=1e-12)


# ---- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["custom", "composite"])
def test_gradients_match_finite_differences(impl):
    image, kernels, offsets_x, offsets_y, unit = off_grid_inputs(0)

    # One traced graph, so that the ~1300 evaluations of the finite differences stay cheap.
    @tf.function
    def resample(image, kernels, offsets_x, offsets_y):
        return ops.adaptive_resample(image, kernels, offsets_x, offsets_y, unit, impl=impl)

    theoretical, numerical = tf.test.compute_gradient(resample, [image, kernels, offsets_x, offsets_y])
    for name, analytic, numeric in zip(("image", "kernels", "offsets_x", "offsets_y"), theoretical, numerical):
        assert np.abs(numeric).max() > 1e-3, f"{name}: the check exercised nothing"
        error = np.abs(analytic - numeric).max()
        assert error < 1e-6, f"{name}: max error {error}"


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("batch", [1, 3])
def test_custom_gradients_equal_composite_autodiff(dtype, atol, batch):
    # batch 1 and 3 take the CPU kernel's per-channel and per-image backward paths.
    args = random_inputs(5, batch, (11, 13), (4, 5), 3, 5, 2.0, dtype) + (3.0,)
    upstream = np.random.default_rng(6).normal(size=(batch, 4, 5, 3)).astype(dtype)
    custom = _grads("custom", *args, upstream)
    composite = _grads("composite", *args, upstream)
    for name, a, b in zip(("image", "kernels", "offsets_x", "offsets_y"), custom, composite):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=atol * max(1.0, np.abs(b).max()), err_msg=name)


def test_second_order_gradients_are_not_supported():
    # tf.no_gradient("AdaptiveResampleGrad"): differentiating a gradient of the custom op gives
    # None (no path) rather than a wrong number; the composite twin supports it.
    image, kernels, offsets_x, offsets_y = (tf.constant(a) for a in random_inputs(2, 1, (8, 8), (4, 4), 1, 3))
    inputs = [image, kernels, offsets_x, offsets_y]
    for impl, supported in (("custom", False), ("composite", True)):
        with tf.GradientTape() as outer:
            outer.watch(inputs)
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                loss = tf.reduce_sum(ops.adaptive_resample(*inputs, 2.0, impl=impl) ** 2)
            first = inner.gradient(loss, inputs)
            assert all(g is not None for g in first)
            total = tf.add_n([tf.reduce_sum(g) for g in first])
        second = outer.gradient(total, inputs)
        if supported:
            assert all(g is not None for g in second)
        else:
            assert second == [None, None, None, None]


# ---- determinism and CPU kernel paths --------------------------------------------------------


def _determinism_case():
    args = random_inputs(21, 3, (16, 20), (4, 5), 3, 13, 1.5) + (4.0,)
    upstream = np.random.default_rng(22).normal(size=(3, 4, 5, 3)).astype(np.float32)
    return args, upstream


def test_image_gradient_is_bitwise_reproducible():
    args, upstream = _determinism_case()
    for batch in (1, 3):  # Both CPU backward paths.
        sliced = [a[:batch] for a in args[:4]] + [args[4]]
        first = _grads("custom", *sliced, upstream[:batch])
        for _ in range(4):
            again = _grads("custom", *sliced, upstream[:batch])
            for a, b in zip(first, again):
                assert a.tobytes() == b.tobytes()


def test_one_image_does_not_depend_on_its_batch():
    # Batch 1 and batch 3 run different CPU backward paths (per channel vs per image) on a
    # multi-core machine; both must give bitwise the same numbers for the same image.
    args, upstream = _determinism_case()
    whole = [_custom(*args)] + _grads("custom", *args, upstream)
    alone = [_custom(*[a[1:2] for a in args[:4]], args[4])] + _grads(
        "custom", *[a[1:2] for a in args[:4]], args[4], upstream[1:2]
    )
    for name, a, b in zip(("output", "image", "kernels", "offsets_x", "offsets_y"), whole, alone):
        assert a[1:2].tobytes() == b.tobytes(), name


def test_channel_paths_agree_bitwise():
    # Forward output and image gradient of a channel depend on that channel only. The float32
    # CPU kernel has a tap-block path for 1, 3 and 4 channels and a per-tap one otherwise: on
    # the same channels they must agree to the bit.
    image, kernels, offsets_x, offsets_y = random_inputs(31, 2, (12, 14), (4, 5), 5, 7, 2.0)
    upstream = np.random.default_rng(32).normal(size=(2, 4, 5, 5)).astype(np.float32)
    reference_output = _custom(image, kernels, offsets_x, offsets_y, 2.0)
    reference_grad = _grads("custom", image, kernels, offsets_x, offsets_y, 2.0, upstream)[0]
    for channels in (1, 2, 3, 4):
        part = np.ascontiguousarray(image[..., :channels])
        output = _custom(part, kernels, offsets_x, offsets_y, 2.0)
        grad = _grads("custom", part, kernels, offsets_x, offsets_y, 2.0, upstream[..., :channels])[0]
        assert output.tobytes() == np.ascontiguousarray(reference_output[..., :channels]).tobytes()
        assert grad.tobytes() == np.ascontiguousarray(reference_grad[..., :channels]).tobytes()


# ---- everything that must run in a fresh process ---------------------------------------------
#
# Bad inputs could crash the process, and the thread count can only be set before TF starts.
# One child process runs every case below in order, with a single intra-op thread, and prints
# one JSON line per case; a crash fails the cases from the one that crashed on, and pytest
# survives it.


def _error_of(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the type is part of the result.
        return {"error": type(error).__name__, "message": str(error)}
    return {"error": None}


def _zeros(*shape):
    return np.zeros(shape, np.float32)


def _library():
    return ops.load_op_library()


def _case_error(image, kernels, offsets_x, offsets_y, offset_unit=2.0):
    return _error_of(lambda: _custom(image, kernels, offsets_x, offsets_y, offset_unit))


def _case_grad_error(image, kernels, offsets_x, offsets_y, grad_output):
    return _error_of(
        lambda: _library().adaptive_resample_grad(image, kernels, offsets_x, offsets_y, grad_output, offset_unit=2.0)
    )


def _case_composite_error(image, kernels, offsets_x, offsets_y):
    return _error_of(lambda: _composite(image, kernels, offsets_x, offsets_y, 2.0))


def _case_empty(image_shape, taps_shape):
    image, taps = _zeros(*image_shape), _zeros(*taps_shape)
    output_shape = (taps_shape[0], taps_shape[1], taps_shape[2], image_shape[3])
    custom = _custom(image, taps, taps, taps, 2.0)
    composite = _composite(image, taps, taps, taps, 2.0)
    grads = _library().adaptive_resample_grad(image, taps, taps, taps, _zeros(*output_shape), offset_unit=2.0)
    return {
        "custom": list(custom.shape),
        "composite": list(composite.shape),
        "grads": [list(g.shape) for g in grads],
        "grads_zero": all(not np.any(g.numpy()) for g in grads),
    }


# Taps made non-finite (or huge) in _case_non_finite: (tensor, n, y, x, t, value).
NON_FINITE_TAPS = [
    ("x", 0, 1, 2, 4, np.nan),
    ("y", 1, 3, 0, 0, np.inf),
    ("x", 1, 0, 4, 8, -np.inf),
    ("y", 0, 2, 3, 5, np.nan),
]
# offset_unit * 1e38 is still below float32's maximum.
HUGE_TAPS = [("x", 0, 0, 0, 0, 1e30), ("y", 1, 1, 1, 3, -1e30), ("x", 1, 2, 2, 7, 1e38)]


def _indices(mask):
    return sorted([int(i) for i in index] for index in zip(*np.nonzero(mask)))


def _case_non_finite():
    image, kernels, offsets_x, offsets_y = random_inputs(41, 2, (8, 10), (4, 5), 3, 3, 1.0)
    for tensor, n, y, x, t, value in NON_FINITE_TAPS + HUGE_TAPS:
        (offsets_x if tensor == "x" else offsets_y)[n, y, x, t] = value
    upstream = np.ones((2, 4, 5, 3), np.float32)
    custom = _custom(image, kernels, offsets_x, offsets_y, 2.0)
    composite = _composite(image, kernels, offsets_x, offsets_y, 2.0)
    grads = _library().adaptive_resample_grad(image, kernels, offsets_x, offsets_y, upstream, offset_unit=2.0)
    composite_grads = _grads("composite", image, kernels, offsets_x, offsets_y, 2.0, upstream)
    finite = np.isfinite(custom)
    return {
        "output_nan_pixels": _indices(~finite.all(-1)),
        "output_nan_is_whole_pixel": bool(np.all(finite.all(-1) | ~finite.any(-1))),
        "output_is_nan_not_inf": bool(np.all(np.isnan(custom[~finite]))),
        "composite_same_nan_mask": bool(np.array_equal(finite, np.isfinite(composite))),
        "finite_outputs_agree": float(np.abs(np.where(finite, custom - composite, 0)).max()),
        "grad_nan_taps": [_indices(~np.isfinite(g.numpy())) for g in grads[1:]],
        "composite_grad_nan_taps": [_indices(~np.isfinite(g)) for g in composite_grads[1:]],
        "grad_image_nan_mask_as_composite": bool(
            np.array_equal(np.isfinite(grads[0].numpy()), np.isfinite(composite_grads[0]))
        ),
        "grad_image_nan_count": int((~np.isfinite(grads[0].numpy())).sum()),
    }


def _case_single_thread_grads():
    args, upstream = _determinism_case()
    return {"grads": [g.tolist() for g in _grads("custom", *args, upstream)]}


K9, K49 = _zeros(2, 4, 4, 9), _zeros(2, 4, 4, 49)
IMAGE = _zeros(2, 8, 8, 3)

# name -> zero-argument function returning a JSON-able result.
CHILD_CASES = {
    "image_rank": lambda: _case_error(_zeros(8, 8, 3), K9, K9, K9),
    "kernels_rank": lambda: _case_error(IMAGE, _zeros(2, 4, 4, 9, 1), K9, K9),
    "offsets_x_shape": lambda: _case_error(IMAGE, K9, _zeros(2, 4, 5, 9), K9),
    "offsets_y_shape": lambda: _case_error(IMAGE, K9, K9, _zeros(2, 4, 4, 4)),
    "batch_mismatch": lambda: _case_error(_zeros(3, 8, 8, 3), K9, K9, K9),
    "taps_not_square": lambda: _case_error(IMAGE, *[_zeros(2, 4, 4, 8)] * 3),
    "taps_zero": lambda: _case_error(IMAGE, *[_zeros(2, 4, 4, 0)] * 3),
    "height_too_small": lambda: _case_error(_zeros(2, 3, 8, 3), K49, K49, K49),
    "width_too_small": lambda: _case_error(_zeros(2, 8, 3, 3), K49, K49, K49),
    "size_just_enough": lambda: _case_error(_zeros(2, 4, 4, 3), K49, K49, K49),
    "offset_unit_nan": lambda: _case_error(IMAGE, K9, K9, K9, offset_unit=float("nan")),
    "grad_output_shape": lambda: _case_grad_error(IMAGE, K9, K9, K9, _zeros(2, 4, 4, 2)),
    "grad_image_rank": lambda: _case_grad_error(_zeros(8, 8, 3), K9, K9, K9, _zeros(2, 4, 4, 3)),
    "grad_taps_not_square": lambda: _case_grad_error(IMAGE, *[_zeros(2, 4, 4, 8)] * 3, _zeros(2, 4, 4, 3)),
    "composite_image_rank": lambda: _case_composite_error(_zeros(8, 8, 3), K9, K9, K9),
    "composite_offsets_x_shape": lambda: _case_composite_error(IMAGE, K9, _zeros(2, 4, 5, 9), K9),
    "composite_batch_mismatch": lambda: _case_composite_error(_zeros(3, 8, 8, 3), K9, K9, K9),
    "composite_taps_not_square": lambda: _case_composite_error(IMAGE, *[_zeros(2, 4, 4, 8)] * 3),
    "composite_height_too_small": lambda: _case_composite_error(_zeros(2, 3, 8, 3), K49, K49, K49),
    "composite_offset_unit_inf": lambda: _error_of(lambda: _composite(IMAGE, K9, K9, K9, float("inf"))),
    "empty_batch": lambda: _case_empty((0, 8, 8, 3), (0, 4, 4, 9)),
    "empty_height": lambda: _case_empty((2, 8, 8, 3), (2, 0, 4, 9)),
    "empty_width": lambda: _case_empty((2, 8, 8, 3), (2, 4, 0, 9)),
    "empty_channels": lambda: _case_empty((2, 8, 8, 0), (2, 4, 4, 9)),
    "empty_image_and_output": lambda: _case_empty((2, 0, 0, 3), (2, 0, 0, 49)),
    "non_finite_offsets": _case_non_finite,
    "single_thread_grads": _case_single_thread_grads,
}


def _run_child_cases():
    """Entry point of the child process: one JSON line per case, flushed before the next."""
    for name, case in CHILD_CASES.items():
        print(json.dumps({"case": name, "started": True}), flush=True)
        print(json.dumps({"case": name, "result": case()}), flush=True)


@pytest.fixture(scope="module")
def child_results():
    code = (
        "import tensorflow as tf\n"
        "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
        "import test_adaptive_resample\n"
        "test_adaptive_resample._run_child_cases()\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    results, started = {}, None
    for line in child.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "result" in record:
                results[record["case"]] = record["result"]
            else:
                started = record["case"]
    return results, child, started


def _child_result(child_results, name):
    results, child, started = child_results
    if name not in results:
        pytest.fail(
            f"the child process ended (exit {child.returncode}) before finishing case {name!r}; "
            f"last case started: {started!r}\n{child.stderr[-3000:]}"
        )
    return results[name]


@pytest.mark.parametrize(
    "case, message",
    [
        ("image_rank", "image must be rank 4 [N, H, W, C], got shape [8,8,3]"),
        ("kernels_rank", "kernels must be rank 4 [N, h, w, k*k], got shape [2,4,4,9,1]"),
        ("offsets_x_shape", "offsets_x must have the shape of kernels [2,4,4,9], got [2,4,5,9]"),
        ("offsets_y_shape", "offsets_y must have the shape of kernels [2,4,4,9], got [2,4,4,4]"),
        ("batch_mismatch", "kernels batch size 2 differs from image batch size 3"),
        ("taps_not_square", "the last dimension of kernels must be a positive perfect square k*k, got 8"),
        ("taps_zero", "the last dimension of kernels must be a positive perfect square k*k, got 0"),
        ("height_too_small", "image height and width must exceed k/2 = 3 for reflection padding, got [2,3,8,3]"),
        ("width_too_small", "image height and width must exceed k/2 = 3 for reflection padding, got [2,8,3,3]"),
        ("offset_unit_nan", "offset_unit must be finite"),
        ("grad_output_shape", "grad_output must have the output shape [2,4,4,3], got [2,4,4,2]"),
        ("grad_image_rank", "image must be rank 4"),
        ("grad_taps_not_square", "the last dimension of kernels must be a positive perfect square k*k, got 8"),
    ],
)
def test_bad_input_raises_invalid_argument_naming_the_tensor(child_results, case, message):
    result = _child_result(child_results, case)
    assert result["error"] == "InvalidArgumentError", result
    assert message in result["message"]


@pytest.mark.parametrize(
    "image_shape, taps_shape, message",
    [
        ((8, 8, 3), (1, 2, 2, 49), "image must be rank 4"),
        ((1, 8, 8, 3), (1, 2, 49), "kernels must be rank 4"),
        # car_tf.ops.validation names it first, with the kernel's message, for both impls.
        ((1, 8, 8, 3), (2, 2, 2, 49), "kernels batch size 2 differs from image batch size 1"),
    ],
)
def test_graph_mode_shape_errors_name_the_tensor(image_shape, taps_shape, message):
    # In a tf.function the op's shape function rejects these before the kernel runs.
    image = tf.TensorSpec(image_shape, tf.float32)
    taps = tf.TensorSpec(taps_shape, tf.float32)
    resample = tf.function(lambda i, k: ops.adaptive_resample(i, k, k, k, 2.0, impl="custom"))
    with pytest.raises(ValueError, match=message):
        resample.get_concrete_function(image, taps)


def test_graph_mode_offsets_must_match_kernels():
    image = tf.TensorSpec((1, 8, 8, 3), tf.float32)
    kernels = tf.TensorSpec((1, 2, 2, 49), tf.float32)
    offsets = tf.TensorSpec((1, 2, 3, 49), tf.float32)
    resample = tf.function(lambda i, k, o: ops.adaptive_resample(i, k, o, k, 2.0, impl="custom"))
    with pytest.raises(ValueError, match="offsets_x must have the shape of kernels"):
        resample.get_concrete_function(image, kernels, offsets)


def test_smallest_valid_image_is_accepted(child_results):
    # H = W = k//2 + 1 is the least REFLECT padding allows.
    assert _child_result(child_results, "size_just_enough") == {"error": None}


@pytest.mark.parametrize(
    "case, message",
    [
        ("composite_image_rank", "image must be rank 4 [N, H, W, C], got shape [8,8,3]"),
        ("composite_offsets_x_shape", "offsets_x must have the shape of kernels [2,4,4,9], got [2,4,5,9]"),
        ("composite_batch_mismatch", "kernels batch size 2 differs from image batch size 3"),
        ("composite_taps_not_square", "the last dimension of kernels must be a positive perfect square k*k, got 8"),
        ("composite_height_too_small",
         "image height and width must exceed k/2 = 3 for reflection padding, got [2,3,8,3] with k = 7"),
        ("composite_offset_unit_inf", "offset_unit must be finite, got inf"),
    ],
)
def test_composite_bad_input_raises_as_the_op_does(child_results, case, message):
    # The same check (car_tf.ops.validation) as the custom op's, with its error class and message.
    result = _child_result(child_results, case)
    assert result["error"] == "InvalidArgumentError", result
    assert message in result["message"]


@pytest.mark.parametrize(
    "case, output_shape",
    [
        ("empty_batch", [0, 4, 4, 3]),
        ("empty_height", [2, 0, 4, 3]),
        ("empty_width", [2, 4, 0, 3]),
        ("empty_channels", [2, 4, 4, 0]),
        ("empty_image_and_output", [2, 0, 0, 3]),
    ],
)
def test_empty_inputs_give_empty_results(child_results, case, output_shape):
    result = _child_result(child_results, case)
    assert result["custom"] == output_shape
    assert result["composite"] == output_shape
    image_shape, taps_shape = {
        "empty_batch": ([0, 8, 8, 3], [0, 4, 4, 9]),
        "empty_height": ([2, 8, 8, 3], [2, 0, 4, 9]),
        "empty_width": ([2, 8, 8, 3], [2, 4, 0, 9]),
        "empty_channels": ([2, 8, 8, 0], [2, 4, 4, 9]),
        "empty_image_and_output": ([2, 0, 0, 3], [2, 0, 0, 49]),
    }[case]
    assert result["grads"] == [image_shape, taps_shape, taps_shape, taps_shape]
    assert result["grads_zero"]


def test_non_finite_offsets_give_nan_exactly_where_used(child_results):
    result = _child_result(child_results, "non_finite_offsets")
    nan_taps = sorted([n, y, x, t] for _, n, y, x, t, _ in NON_FINITE_TAPS)
    assert result["output_nan_pixels"] == sorted([n, y, x] for n, y, x, _ in nan_taps)
    assert result["output_nan_is_whole_pixel"] and result["output_is_nan_not_inf"]
    assert result["composite_same_nan_mask"]
    # Huge finite offsets (1e30, 1e38) clamp to the border and stay finite, as in the composite.
    assert result["finite_outputs_agree"] < 1e-5
    # Kernel gradients are NaN at the non-finite taps and nowhere else. A tap whose x is
    # non-finite reads one clamped column, so its x-derivative (the tr - tl terms) is exactly 0
    # while its y-derivative is NaN; likewise with x and y swapped. Autodiff of the composite
    # gives the same masks.
    kernel_nan, offset_x_nan, offset_y_nan = result["grad_nan_taps"]
    assert kernel_nan == nan_taps
    assert offset_x_nan == sorted([n, y, x, t] for axis, n, y, x, t, _ in NON_FINITE_TAPS if axis == "y")
    assert offset_y_nan == sorted([n, y, x, t] for axis, n, y, x, t, _ in NON_FINITE_TAPS if axis == "x")
    assert result["grad_nan_taps"] == result["composite_grad_nan_taps"]
    # The image gradient gets NaN at the border pixels those taps were clamped to, as autodiff
    # of the composite does.
    assert result["grad_image_nan_mask_as_composite"]
    assert 0 < result["grad_image_nan_count"] <= 4 * 3 * len(NON_FINITE_TAPS)


def test_gradients_do_not_depend_on_the_thread_count(child_results):
    single_thread = _child_result(child_results, "single_thread_grads")["grads"]
    args, upstream = _determinism_case()
    for a, b in zip(_grads("custom", *args, upstream), single_thread):
        assert a.tobytes() == np.asarray(b, np.float32).tobytes()


# ---- property test ---------------------------------------------------------------------------


@st.composite
def _problems(draw):
    k = draw(st.sampled_from([1, 3, 5, 7]))
    pad = k // 2
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "batch": draw(st.integers(1, 3)),
        "in_size": (draw(st.integers(pad + 1, 12)), draw(st.integers(pad + 1, 12))),
        "out_size": (draw(st.integers(1, 5)), draw(st.integers(1, 5))),
        "channels": draw(st.integers(1, 4)),
        "kernel_size": k,
        "offset_spread": draw(st.sampled_from([0.0, 0.3, 1.0, 5.0])),
        "offset_unit": draw(st.sampled_from([1.0, 2.0, 3.0, 4.0])),
    }


@settings(max_examples=25, deadline=None)
@given(problem=_problems())
def test_property_custom_equals_composite(problem):
    offset_unit = problem.pop("offset_unit")
    args = random_inputs(**problem) + (offset_unit,)
    np.testing.assert_allclose(_custom(*args), _composite(*args), rtol=0, atol=1e-5)


def test_float16_runs_on_cpu_through_float32():
    # The op has no float16 CPU kernel; the Python API computes it in float32 there.
    assert not tf.config.list_logical_devices("GPU")
    args = random_inputs(5, 2, (12, 10), (4, 5), 3, 5, 0.5)
    half = [tf.constant(a, tf.float16) for a in args]
    output = ops.adaptive_resample(*half, 2.0, impl="custom")
    assert output.dtype == tf.float16
    widened = [tf.cast(a, tf.float32) for a in half]
    expected = tf.cast(ops.adaptive_resample(*widened, 2.0, impl="custom"), tf.float16)
    np.testing.assert_array_equal(output.numpy(), expected.numpy())
    np.testing.assert_allclose(output.numpy(), _composite(*half, 2.0), rtol=0, atol=2e-2)
    with tf.GradientTape() as tape:
        tape.watch(half)
        result = ops.adaptive_resample(*half, 2.0, impl="custom")
    assert all(g.dtype == tf.float16 for g in tape.gradient(result, half))


# ---- one contract: fuzzed inputs through both implementations ---------------------------------

# Finite units three times as likely as the non-finite ones (1e39 is inf as the op's float32).
FUZZ_OFFSET_UNITS = [2.0, 1.0, 0.0, -1.5, 4.0] * 3 + [float("nan"), float("inf"), float("-inf"), 1e39]


@st.composite
def _fuzzed_inputs(draw):
    """Mostly valid shapes, each of the op's checks broken now and then: ranks, offsets
    shaped unlike the kernels, batches, tap counts, offset_unit, images too small, empties."""
    small = st.integers(0, 3)
    k = draw(st.sampled_from([1, 2, 3, 5]))
    taps = draw(st.sampled_from([k * k] * 6 + [0, 2, 8]))
    batch = draw(st.integers(0, 2))
    image = [batch, draw(st.integers(0, 6)), draw(st.integers(0, 6)), draw(st.integers(0, 3))]
    kernels = [batch, draw(small), draw(small), taps]
    if draw(st.integers(0, 9)) == 0:
        kernels[0] = draw(st.integers(0, 3))
    offsets = [list(kernels), list(kernels)]
    for shape in offsets:
        if draw(st.integers(0, 9)) == 0:
            shape[draw(st.integers(0, 3))] = draw(small)
    shapes = [image, kernels] + offsets
    for shape in shapes:
        if draw(st.integers(0, 19)) == 0:
            if draw(st.booleans()) and len(shape) > 1:
                shape.pop(draw(st.integers(0, len(shape) - 1)))
            else:
                shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = [rng.random(shapes[0]).astype(np.float32),
              rng.normal(size=shapes[1]).astype(np.float32),
              rng.normal(scale=0.7, size=shapes[2]).astype(np.float32),
              rng.normal(scale=0.7, size=shapes[3]).astype(np.float32)]
    return values, draw(st.sampled_from(FUZZ_OFFSET_UNITS))


def _outcome(call):
    try:
        return None, np.asarray(call())
    except Exception as error:  # noqa: BLE001 - the class is what is compared.
        return error, None


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(case=_fuzzed_inputs())
def test_fuzzed_inputs_custom_and_composite_agree(case):
    """The compiled op's own checks, the custom path and the composite accept and reject the
    same inputs, with the same error class and the op's message; where they accept, they agree."""
    values, offset_unit = case
    raw_error, raw = _outcome(lambda: _library().adaptive_resample(*values, offset_unit=offset_unit))
    custom_error, custom = _outcome(lambda: _custom(*values, offset_unit))
    composite_error, composite = _outcome(lambda: _composite(*values, offset_unit))
    shapes = [v.shape for v in values]
    classes = [type(e).__name__ if e else None for e in (raw_error, custom_error, composite_error)]
    assert classes[0] == classes[1] == classes[2], (shapes, offset_unit, classes, str(composite_error))
    if raw_error is not None:
        assert classes[0] == "InvalidArgumentError"
        assert composite_error.message in raw_error.message, (shapes, offset_unit)
        assert custom_error.message == composite_error.message
        return
    assert raw.shape == custom.shape == composite.shape
    np.testing.assert_array_equal(raw, custom)
    np.testing.assert_allclose(custom, composite, rtol=0, atol=1e-4)


# ---- dispatch --------------------------------------------------------------------------------


def _op_types(impl):
    args = [tf.constant(a) for a in random_inputs(1, 1, (8, 8), (4, 4), 3, 3)]
    graph = tf.function(lambda *a: ops.adaptive_resample(*a, 2.0, impl=impl)).get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}


def test_impl_dispatch():
    assert "AdaptiveResample" in _op_types("custom")
    assert "AdaptiveResample" in _op_types("auto")
    composite = _op_types("composite")
    assert "AdaptiveResample" not in composite and "GatherV2" in composite
    assert ops.resolve_impl("auto") == "custom"


@pytest.mark.parametrize("impl", ["Custom", "cuda", "", None])
def test_invalid_impl_raises_value_error(impl):
    args = random_inputs(1, 1, (8, 8), (4, 4), 3, 3)
    with pytest.raises(ValueError, match="impl must be one of"):
        ops.adaptive_resample(*args, 2.0, impl=impl)


def test_auto_falls_back_to_composite_when_the_library_cannot_load(monkeypatch, caplog):
    module = importlib.import_module("car_tf.ops.adaptive_resample")
    monkeypatch.setattr(module, "_library", None)
    monkeypatch.setattr(module, "_load_error", "simulated load failure")
    monkeypatch.setattr(module, "_warned_fallback", False)
    with caplog.at_level(logging.WARNING):
        assert ops.resolve_impl("auto") == "composite"
        assert ops.resolve_impl("auto") == "composite"
    warnings = [r for r in caplog.records if "simulated load failure" in r.getMessage()]
    assert len(warnings) == 1
    args = random_inputs(1, 1, (8, 8), (4, 4), 3, 3)
    np.testing.assert_allclose(
        ops.adaptive_resample(*args, 2.0).numpy(), adaptive_resample_numpy(*args, 2.0), rtol=0, atol=1e-5
    )
    with pytest.raises(RuntimeError, match="simulated load failure"):
        ops.resolve_impl("custom")
