"""The pure-TF twin of the adaptive resampler (car_tf.ops.adaptive_resample_composite) on
its own: shapes known only at run time, the op's size check, 64-bit indices, and its
gather-free local path (local_fast_path=True) against the gather path, the custom op and
the numpy loop. The gather path's agreement with the custom op and the references, and its
gradients against finite differences, are in tests/test_adaptive_resample.py."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from car_tf import ops
from resample_reference import adaptive_resample_numpy, off_grid_inputs, random_inputs


def test_unknown_static_shapes():
    # A SavedModel signature leaves every dimension open, the tap count (hence k) included.
    spec = tf.TensorSpec([None, None, None, None], tf.float32)
    resample = tf.function(
        lambda *a: ops.adaptive_resample_composite(*a, 2.0), input_signature=[spec] * 4
    )
    for kernel_size, in_size, out_size in ((3, (9, 11), (4, 5)), (7, (12, 10), (6, 5))):
        args = random_inputs(kernel_size, 2, in_size, out_size, 3, kernel_size, 1.5)
        output = resample(*args).numpy()
        assert output.shape == (2, *out_size, 3)
        np.testing.assert_allclose(output, adaptive_resample_numpy(*args, 2.0), rtol=0, atol=1e-5)
    # One trace served both kernel sizes.
    assert resample.experimental_get_tracing_count() == 1


def test_uses_built_in_ops_only():
    args = [tf.constant(a) for a in random_inputs(1, 1, (8, 8), (4, 4), 3, 3)]
    graph = tf.function(lambda *a: ops.adaptive_resample_composite(*a, 2.0)).get_concrete_function(*args).graph
    registered = set(tf.raw_ops.__dict__)
    assert {op.type for op in graph.get_operations()} - {"Placeholder", "Identity", "NoOp"} <= registered


def test_unmoved_tap_positions_are_where_the_resampler_reads():
    # An image whose value is its own column (or row) index: a one-hot kernel on tap j
    # then returns the HR position that tap reads.
    for scale in (2, 4):
        k = 3 * scale + 1
        positions = ops.unmoved_tap_positions(k)
        np.testing.assert_array_equal(positions, np.arange(k) - k / 2)
        size = 8 * scale
        rows, columns = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        image = tf.constant(np.stack([columns, rows], axis=-1)[None], tf.float32)
        lr = size // scale
        centres = (np.arange(lr) + 0.5) * scale - 0.5
        zeros = tf.zeros([1, lr, lr, k * k])
        for tap in (0, k + 1, k * k // 2, k * k - 1):
            kernels = tf.one_hot(tf.fill([1, lr, lr], tap), k * k)
            out = ops.adaptive_resample_composite(image, kernels, zeros, zeros, float(scale)).numpy()
            inside = slice(2, lr - 2)  # no tap of these pixels reaches the reflected border
            np.testing.assert_allclose(
                out[0, inside, inside, 0],
                np.broadcast_to(centres[None, inside] + positions[tap % k], (lr - 4, lr - 4)))
            np.testing.assert_allclose(
                out[0, inside, inside, 1],
                np.broadcast_to(centres[inside, None] + positions[tap // k], (lr - 4, lr - 4)))


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("image_shape", [(2, 3, 8, 3), (2, 8, 3, 3)])
def test_too_small_images_are_refused_with_the_ops_message(static, image_shape):
    image = tf.zeros(image_shape)
    taps = tf.zeros((2, 4, 4, 49))  # k = 7, k/2 = 3
    expected = (f"image height and width must exceed k/2 = 3 for reflection padding, "
                f"got [{','.join(map(str, image_shape))}] with k = 7")
    resample = ops.adaptive_resample_composite
    if not static:
        spec = tf.TensorSpec([None, None, None, None], tf.float32)
        resample = tf.function(lambda *a: ops.adaptive_resample_composite(*a, 2.0),
                               input_signature=[spec] * 4)
        call = lambda: resample(image, taps, taps, taps)  # noqa: E731
    else:
        call = lambda: resample(image, taps, taps, taps, 2.0)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(expected)):
        call()
    # One pixel more is enough, and an empty output reads nothing.
    bigger = [size + 1 if size == 3 and axis in (1, 2) else size
              for axis, size in enumerate(image_shape)]
    if static:
        ops.adaptive_resample_composite(tf.zeros(bigger), taps, taps, taps, 2.0)
        empty = tf.zeros((2, 0, 4, 49))
        ops.adaptive_resample_composite(image, empty, empty, empty, 2.0)
    else:
        resample(tf.zeros(bigger), taps, taps, taps)


@pytest.mark.parametrize("taps", [None, 9], ids=["k-at-run-time", "k-static"])
def test_gather_indices_are_64_bit(taps):
    # N * H * W past 2^31 cannot be run here; the indices' dtype is what keeps them whole.
    # With k known only at run time the gathers sit in a while loop's body function.
    spec = tf.TensorSpec([None, None, None, None], tf.float32)
    taps_spec = tf.TensorSpec([None, None, None, taps], tf.float32)
    graph_def = tf.function(lambda *a: ops.adaptive_resample_composite(*a, 2.0)).get_concrete_function(
        spec, taps_spec, taps_spec, taps_spec).graph.as_graph_def()
    nodes = list(graph_def.node) + [node for function in graph_def.library.function
                                    for node in function.node_def]
    gathers = [node for node in nodes if node.op == "GatherV2"]
    assert gathers and all(node.attr["Tindices"].type == tf.int64.as_datatype_enum for node in gathers)


_MEMORY_PROBE = """
import json
import tensorflow as tf
from car_tf import ops
from car_tf.memory import peak_memory
image = tf.random.uniform([1, 1200, 1200, 3])
kernels = tf.random.normal([1, 300, 300, 169])
offsets = kernels * 0.1
before = peak_memory()["peak_rss_mib"]
ops.adaptive_resample_composite(image, kernels, offsets, offsets, 4.0).numpy()
print(json.dumps({"extra_mib": peak_memory()["peak_rss_mib"] - before}))
"""


@pytest.mark.slow
def test_memory_stays_near_one_kernel_rows_gathers():
    # x4 (k = 13) from a 1200 x 1200 image: gathering all 169 taps at once took 1.8 GB more
    # than the inputs; one kernel row at a time, four [1, 300, 300, 13, 3] gathers are 14 MB each.
    child = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert child.returncode == 0, child.stderr[-2000:]
    extra = json.loads(child.stdout.strip().splitlines()[-1])["extra_mib"]
    assert extra < 300, extra


# ---- the local fast path ---------------------------------------------------------------------


def _moves_inputs(seed, scale, batch, out_size, channels, moves, dtype):
    """Inputs at H = scale * h whose taps move by `moves` HR pixels: an array broadcast to
    the taps, or a float bound for uniform random moves in (-bound, bound)."""
    k = 3 * scale + 1
    in_size = (scale * out_size[0], scale * out_size[1])
    image, kernels, _, _ = random_inputs(seed, batch, in_size, out_size, channels, k, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    shape = kernels.shape
    if np.isscalar(moves):
        moves_x, moves_y = (rng.uniform(-moves, moves, shape) for _ in range(2))
    else:
        moves_x = np.broadcast_to(moves, shape)
        moves_y = np.broadcast_to(moves[::-1], shape)
    # Signed kernels, as the bundled models' ("signed" normalisation).
    kernels = (kernels - 1.5 / (k * k)).astype(dtype)
    unit = float(scale)
    return image, kernels, (moves_x / unit).astype(dtype), (moves_y / unit).astype(dtype), unit


def _edge_moves(k):
    """Per-tap moves at the edges of the local path's range: 0 (a kink of the bilinear
    weights), +-(1 - 2^-20), +-1e-5 (the trained models' size) and +-0.5."""
    values = np.array([0.0, 1 - 2.0**-20, -(1 - 2.0**-20), 1e-5, -1e-5, 0.5, -0.5])
    return np.resize(values, k * k)


LOCAL_CASES = [
    # (scale, batch, LR size, channels): odd and non-square sizes; at x1 and x2 the window
    # reaches past k // 2 into the clamp; (2, 2) at x2 is the smallest image, H = k // 2 + 1.
    pytest.param(1, 2, (5, 7), 3, id="x1"),
    pytest.param(2, 1, (2, 2), 3, id="x2-smallest"),
    pytest.param(2, 2, (3, 5), 1, id="x2-one-channel"),
    pytest.param(3, 1, (3, 4), 3, id="x3"),
    pytest.param(4, 2, (3, 5), 3, id="x4"),
    pytest.param(4, 1, (2, 2), 2, id="x4-smallest"),
]


@pytest.mark.parametrize("moves", ["random", "edges"])
@pytest.mark.parametrize("scale, batch, out_size, channels", LOCAL_CASES)
def test_local_path_matches_gather_path_custom_op_and_numpy(local_path_calls, scale, batch, out_size,
                                                           channels, moves):
    k = 3 * scale + 1
    chosen = 0.999 if moves == "random" else _edge_moves(k)
    for dtype, atol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        args = _moves_inputs(3, scale, batch, out_size, channels, chosen, dtype)
        local = ops.adaptive_resample_composite(*args, local_fast_path=True).numpy()
        gather = ops.adaptive_resample_composite(*args).numpy()
        custom = ops.adaptive_resample(*args, impl="custom").numpy()
        reference = adaptive_resample_numpy(*args)
        assert local.dtype == dtype and local.shape == (batch, *out_size, channels)
        for name, other in (("gather path", gather), ("custom op", custom), ("numpy", reference)):
            np.testing.assert_allclose(local, other, rtol=0, atol=atol, err_msg=name)
    assert local_path_calls == [scale, scale]


@pytest.mark.parametrize("case", ["one-tap-moves-1", "one-tap-moves-1.5", "nan", "inf",
                                  "non-integer-ratio", "k-not-3s+1", "float16"])
def test_local_path_falls_back_to_the_gather_path(local_path_calls, case):
    image, kernels, offsets_x, offsets_y, unit = _moves_inputs(4, 2, 2, (3, 4), 3, 0.5, np.float32)
    taps = kernels.shape[-1]
    offsets_x = offsets_x.copy()
    if case == "one-tap-moves-1":
        offsets_x[1, 2, 3, taps - 1] = 1.0 / unit  # the edge of the range is outside it
    elif case == "one-tap-moves-1.5":
        offsets_y = offsets_y.copy()
        offsets_y[0, 0, 0, 0] = -1.5 / unit
    elif case in ("nan", "inf"):
        offsets_x[0, 1, 1, taps // 2] = np.nan if case == "nan" else np.inf
    elif case == "non-integer-ratio":
        image = image[:, :5]  # H = 5 for h = 3
    elif case == "k-not-3s+1":
        kernels, offsets_x, offsets_y = (a[..., :25] for a in (kernels, offsets_x, offsets_y))
    else:
        image, kernels, offsets_x, offsets_y = (a.astype(np.float16) for a in
                                                (image, kernels, offsets_x, offsets_y))
    args = (image, kernels, offsets_x, offsets_y, unit)
    local = ops.adaptive_resample_composite(*args, local_fast_path=True).numpy()
    gather = ops.adaptive_resample_composite(*args).numpy()
    # The gather path itself ran: bitwise equal, NaNs where it puts them.
    np.testing.assert_array_equal(local, gather)
    assert local_path_calls == []
    if case in ("nan", "inf"):
        used = np.zeros(local.shape[:3], bool)
        used[0, 1, 1] = True
        assert np.isnan(local[used]).all() and np.isfinite(local[~used]).all()


def test_local_path_in_a_graph_with_run_time_sizes():
    # The SavedModel's tiles: H, W and h, w known only when run; the tap count is static.
    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    taps_spec = tf.TensorSpec([None, None, None, 169], tf.float32)
    resample = tf.function(
        lambda *a: ops.adaptive_resample_composite(*a, 4.0, local_fast_path=True),
        input_signature=[image_spec] + [taps_spec] * 3)
    graph = resample.get_concrete_function().graph
    functions = graph.as_graph_def().library.function
    assert any(node.op == "ExtractImagePatches" for f in functions for node in f.node_def)
    # The fallback is a loop over kernel rows, not 13 unrolled copies of a row's four corner
    # gathers (which made the SavedModel's graph ~4x larger): the apply's two edge gathers
    # and one row's four.
    gathers = sum(node.op == "GatherV2" for f in functions for node in f.node_def)
    assert gathers == 6
    for out_size, moves in (((5, 3), 0.9), ((4, 4), 3.0)):  # the local path, then the gather path
        image, kernels, offsets_x, offsets_y, unit = _moves_inputs(6, 4, 2, out_size, 3, moves,
                                                                   np.float32)
        output = resample(image, kernels, offsets_x, offsets_y).numpy()
        np.testing.assert_allclose(output, adaptive_resample_numpy(image, kernels, offsets_x,
                                                                   offsets_y, unit),
                                   rtol=0, atol=2e-6)
    # A ratio other than the scale, at run time: the gather path.
    image, kernels, offsets_x, offsets_y, unit = _moves_inputs(7, 4, 1, (3, 3), 3, 0.5, np.float32)
    wider = np.concatenate([image, image[:, :, :5]], axis=2)  # W = 17 for w = 3
    np.testing.assert_allclose(resample(wider, kernels, offsets_x, offsets_y).numpy(),
                               adaptive_resample_numpy(wider, kernels, offsets_x, offsets_y, unit),
                               rtol=0, atol=2e-6)


def _gradients(local_fast_path, args, upstream):
    inputs = [tf.constant(a) for a in args[:4]]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = ops.adaptive_resample_composite(*inputs, args[4], local_fast_path=local_fast_path)
    return tape.gradient(output, inputs, output_gradients=tf.constant(upstream))


@pytest.mark.parametrize("scale", [2, 4])
def test_local_path_gradients_equal_the_gather_paths(local_path_calls, scale):
    # float64, moves at 0 (where the bilinear weights have a kink: both paths take the
    # derivative from the right), near +-1 and in between.
    args = _moves_inputs(8, scale, 2, (3, 2), 3, _edge_moves(3 * scale + 1), np.float64)
    upstream = np.random.default_rng(9).normal(size=(2, 3, 2, 3))
    local = _gradients(True, args, upstream)
    gather = _gradients(False, args, upstream)
    for name, a, b in zip(("image", "kernels", "offsets_x", "offsets_y"), local, gather):
        assert np.abs(b.numpy()).max() > 1e-3, name
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-12, err_msg=name)
    assert local_path_calls == [scale]


def test_local_path_gradients_match_finite_differences(local_path_calls):
    # Moves within 0.1..0.9 of a pixel either way, so compute_gradient's steps cross no kink.
    rng = np.random.default_rng(10)
    image, kernels, _, _, unit = _moves_inputs(10, 2, 1, (2, 3), 2, 0.5, np.float64)
    moves = lambda: rng.uniform(0.1, 0.9, kernels.shape) * rng.choice([-1, 1], kernels.shape)  # noqa: E731

    @tf.function
    def resample(image, kernels, offsets_x, offsets_y):
        return ops.adaptive_resample_composite(image, kernels, offsets_x, offsets_y, unit,
                                               local_fast_path=True)

    theoretical, numerical = tf.test.compute_gradient(
        resample, [image, kernels, moves() / unit, moves() / unit])
    for name, analytic, numeric in zip(("image", "kernels", "offsets_x", "offsets_y"),
                                       theoretical, numerical):
        assert np.abs(numeric).max() > 1e-3, f"{name}: the check exercised nothing"
        assert np.abs(analytic - numeric).max() < 1e-6, name
    assert local_path_calls  # traced into the graph
