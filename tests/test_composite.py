"""The pure-TF twin of the adaptive resampler (car_tf.ops.adaptive_resample_composite) on
its own: shapes known only at run time, the op's size check, 64-bit indices. Its agreement
with the custom op and the references, and its gradients against finite differences, are in
tests/test_adaptive_resample.py."""

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
