"""car_tf.models.ResamplerNet: exact paper parameter counts, shapes, kernel/offset ranges, checks."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from car_tf.models import (
    ResamplerNet,
    count_trainable_params,
    kernel_size_for,
    min_hr_size,
    size_multiple,
)
from car_tf.models.layers import (
    DepthToSpace,
    ReflectionConv2D,
    ResidualBlock,
    SpaceToDepth,
    conv2d,
    leaky_relu,
    run_chain,
    space_to_depth_conv,
)

TINY = {"stem_features": 8, "features": 16, "blocks": 1, "trunk_features": 16, "trunk_depth": 1}


def _built(scale, **widths):
    net = ResamplerNet(scale, **widths)
    net.build((None, None, None, 3))
    return net


def _expected_count(scale, stem_features, features, blocks, trunk_features, trunk_depth,
                    head_kernel_size=3):
    """Closed form of the architecture in the module docstring (weights + biases)."""

    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    taps = kernel_size_for(scale) ** 2
    up = 8 // scale
    w = trunk_features
    encoder = (
        conv(5, 3, stem_features)
        + conv(1, 4 * stem_features, features)
        + conv(1, 4 * features, features)
        + blocks * 2 * conv(3, features, features)
        + conv(1, 4 * features, w)
    )
    trunk = trunk_depth * conv(3, w, w) + conv(1, w, w * up * up) + conv(3, w, w)
    head = conv(3, w, w) + conv(head_kernel_size, w, taps)
    return encoder + 2 * trunk + 3 * head


@pytest.mark.parametrize("scale, expected", [(2, 10_645_651), (4, 9_896_443)])
def test_paper_parameter_count_is_exact(scale, expected):
    net = _built(scale)
    assert count_trainable_params(net) == expected
    assert not net.non_trainable_weights  # the mean shift is a constant


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize(
    "widths",
    [TINY, {"stem_features": 4, "features": 8, "blocks": 0, "trunk_features": 12, "trunk_depth": 0},
     {"stem_features": 32, "features": 64, "blocks": 2, "trunk_features": 48, "trunk_depth": 2},
     {"stem_features": 32, "features": 64, "blocks": 2, "trunk_features": 48, "trunk_depth": 2,
      "head_kernel_size": 1}],
)
def test_configurable_widths_follow_the_architecture(scale, widths):
    assert count_trainable_params(_built(scale, **widths)) == _expected_count(scale, **widths)


def test_paper_count_matches_the_closed_form():
    paper = {"stem_features": 64, "features": 128, "blocks": 5, "trunk_features": 256,
             "trunk_depth": 3}
    assert _expected_count(2, **paper) == 10_645_651
    assert _expected_count(4, **paper) == 9_896_443


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes_and_ranges(scale):
    net = ResamplerNet(scale, **TINY)
    hr = tf.random.stateless_uniform((2, 32, 48, 3), seed=(1, scale))
    kernels, offsets_x, offsets_y = net(hr)
    k = kernel_size_for(scale)
    assert k == 3 * scale + 1
    for tensor in (kernels, offsets_x, offsets_y):
        assert tensor.shape == (2, 32 // scale, 48 // scale, k * k)
        assert tensor.dtype == tf.float32
    np.testing.assert_allclose(tf.reduce_sum(kernels, -1).numpy(), 1.0, atol=1e-5)
    assert float(tf.reduce_min(kernels)) > 0.0
    for offsets in (offsets_x, offsets_y):
        assert float(tf.reduce_max(tf.abs(offsets))) < 1.0
    # The two offset heads have separate weights.
    assert not np.allclose(offsets_x.numpy(), offsets_y.numpy())


def test_kernels_stay_normalised_when_the_clamp_bites():
    net = ResamplerNet(2, **TINY)
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(3, 4))
    net(hr)
    # A huge positive bias saturates every raw weight at the upper clamp (1):
    # the kernel becomes uniform.
    net.kernel_head[-1].bias.assign(tf.fill(net.kernel_head[-1].bias.shape, 1e3))
    kernels, _, _ = net(hr)
    np.testing.assert_allclose(kernels.numpy(), 1.0 / 49, rtol=1e-5)
    # A huge negative bias hits the lower clamp (1e-6): uniform again, no NaN.
    net.kernel_head[-1].bias.assign(tf.fill(net.kernel_head[-1].bias.shape, -1e3))
    kernels, _, _ = net(hr)
    np.testing.assert_allclose(kernels.numpy(), 1.0 / 49, rtol=1e-5)


def _kernel_tap_gradients(net, hr):
    """|d loss / d raw tap output| summed over pixels, per tap, for a loss that uses every tap."""
    weights = tf.random.stateless_uniform((net.kernel_size**2,), seed=(9, 9))
    with tf.GradientTape() as tape:
        kernels, _, _ = net(hr)
        loss = tf.reduce_sum(kernels * weights)
    bias = net.kernel_head[-1].bias
    return np.abs(tape.gradient(loss, bias).numpy())


def test_softmax_kernels_sum_to_one_and_every_tap_trains():
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(3, 5))
    net = ResamplerNet(2, **TINY, kernel_normalization="softmax")
    kernels, _, _ = net(hr)
    np.testing.assert_allclose(tf.reduce_sum(kernels, -1).numpy(), 1.0, rtol=1e-5)
    assert float(tf.reduce_min(kernels)) > 0.0
    # Far below the clamp's floor, softmax still passes a gradient to every tap...
    net.kernel_head[-1].bias.assign(tf.fill(net.kernel_head[-1].bias.shape, -50.0))
    assert (_kernel_tap_gradients(net, hr) > 0).all()
    # ...where the clamp passes none: the taps are dead.
    clamped = ResamplerNet(2, **TINY)
    clamped(hr)
    clamped.kernel_head[-1].bias.assign(tf.fill(clamped.kernel_head[-1].bias.shape, -50.0))
    assert (_kernel_tap_gradients(clamped, hr) == 0).all()
    assert _round_trip(net).get_config()["kernel_normalization"] == "softmax"
    with pytest.raises(ValueError, match="kernel_normalization"):
        ResamplerNet(2, **TINY, kernel_normalization="relu")


@pytest.mark.parametrize("scale,head_kernel_size", [(2, 3), (4, 3), (4, 1)])
def test_signed_kernels_start_as_the_area_average_with_zero_offsets(scale, head_kernel_size):
    from car_tf.ops import adaptive_resample

    hr = tf.random.stateless_uniform((2, 32, 32, 3), seed=(7, scale))
    net = ResamplerNet(scale, **TINY, head_kernel_size=head_kernel_size,
                       kernel_normalization="signed")
    kernels, offsets_x, offsets_y = net(hr)
    assert not np.any(offsets_x.numpy()) and not np.any(offsets_y.numpy())
    # The unmoved taps over each LR pixel's own s x s block, 1/s^2 each: the area average.
    lr = adaptive_resample(hr, kernels, offsets_x, offsets_y, float(scale))
    area = tf.nn.avg_pool2d(hr, scale, scale, "VALID")
    np.testing.assert_allclose(lr.numpy(), area.numpy(), atol=1e-6)


def test_signed_kernels_sum_to_one_take_either_sign_and_never_saturate(tmp_path):
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(3, 6))
    net = ResamplerNet(2, **TINY, kernel_normalization="signed")
    net(hr)
    out = net.kernel_head[-1]
    out.kernel.assign(tf.random.stateless_normal(out.kernel.shape, seed=(1, 2)))
    out.bias.assign(tf.fill(out.bias.shape, -5.0))
    kernels, _, _ = net(hr)
    np.testing.assert_allclose(tf.reduce_sum(kernels, -1).numpy(), 1.0, atol=1e-4)
    assert float(tf.reduce_min(kernels)) < 0.0 < float(tf.reduce_max(kernels))
    # Even with every raw output far below the clamp's floor, every tap trains.
    assert (_kernel_tap_gradients(net, hr) > 0).all()
    assert _round_trip(net).get_config()["kernel_normalization"] == "signed"
    # A loaded model keeps its trained weights, not the area-average start.
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, net(inputs)[0])
    model.save(tmp_path / "signed.keras")
    restored = keras.saving.load_model(tmp_path / "signed.keras")
    np.testing.assert_allclose(restored(hr).numpy(), kernels.numpy(), atol=1e-5)


def test_size_multiple_and_minimum():
    assert size_multiple(2) == 8
    assert size_multiple(4) == 8
    assert size_multiple(3) == 24
    assert min_hr_size(4) == 16


@pytest.mark.parametrize("shape, words", [
    ((1, 20, 16, 3), "height 20 must be a multiple of 8"),
    ((1, 16, 12, 3), "width 12 must be a multiple of 8"),
    ((1, 8, 16, 3), "at least 16"),
    ((1, 16, 16, 4), "3 (RGB) channels"),
    ((16, 16, 3), "[N, H, W, 3]"),
])
def test_bad_input_shapes_raise_clear_errors(shape, words):
    net = ResamplerNet(2, **TINY)
    with pytest.raises(ValueError) as info:
        net(tf.zeros(shape))
    assert words in str(info.value)


def test_unsupported_scale():
    with pytest.raises(ValueError, match="scale must be one of"):
        ResamplerNet(3)


def test_dynamic_spatial_shape_in_tf_function():
    net = ResamplerNet(4, **TINY)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def run(hr):
        return net(hr)

    kernels, offsets_x, _ = run(tf.zeros((1, 32, 16, 3)))
    assert kernels.shape == (1, 8, 4, 169)
    kernels, _, _ = run(tf.zeros((2, 16, 24, 3)))
    assert kernels.shape == (2, 4, 6, 169)


def test_serialisation_round_trip():
    net = ResamplerNet(2, **TINY, name="resampler")
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(5, 6))
    expected = net(hr)
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(net), safe_mode=True
    )
    assert clone.get_config() == net.get_config()
    assert clone.built  # deserialisation rebuilds from the recorded shape
    clone.set_weights(net.get_weights())
    for got, want in zip(clone(hr), expected):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_one_by_one_heads_round_trip_and_reject_other_sizes():
    net = ResamplerNet(4, **TINY, head_kernel_size=1)
    hr = tf.random.stateless_uniform((1, 16, 16, 3), seed=(5, 7))
    expected = net(hr)
    assert net.kernel_head_out.kernel.shape[:2] == (1, 1)
    clone = _round_trip(net)
    assert clone.get_config()["head_kernel_size"] == 1
    clone.set_weights(net.get_weights())
    for got, want in zip(clone(hr), expected):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(ValueError, match="head_kernel_size must be 1 or 3"):
        ResamplerNet(4, **TINY, head_kernel_size=5)


def _round_trip(layer):
    return keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer), safe_mode=True
    )


def test_reflection_conv_pads_by_reflection():
    conv = ReflectionConv2D(2, 3, activation="relu")
    x = tf.random.stateless_normal((1, 4, 5, 3), seed=(7, 8))
    y = conv(x)
    assert y.shape == (1, 4, 5, 2)
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    want = tf.nn.relu(tf.nn.conv2d(padded, conv.kernel, 1, "VALID") + conv.bias)
    np.testing.assert_allclose(y.numpy(), want.numpy(), atol=1e-5)
    clone = _round_trip(conv)
    assert clone.built  # deserialisation rebuilds from the recorded shape
    clone.set_weights(conv.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), y.numpy())
    with pytest.raises(ValueError, match="odd kernel sizes"):
        ReflectionConv2D(2, 4)


def test_leaky_relu_slope_and_residual_block_round_trip():
    x = tf.constant([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(leaky_relu(x).numpy(), [-0.4, 0.0, 3.0])
    block = ResidualBlock(4, leaky_relu, 1.0, "reflect")
    inputs = tf.random.stateless_normal((1, 3, 3, 4), seed=(9, 9))
    expected = block(inputs)
    clone = _round_trip(block)
    assert clone.get_config() == block.get_config()
    assert clone.built  # deserialisation rebuilds from the recorded shape
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(clone(inputs).numpy(), expected.numpy())


def test_space_to_depth_and_back():
    x = tf.reshape(tf.range(2 * 4 * 6 * 3, dtype=tf.float32), (2, 4, 6, 3))
    down = SpaceToDepth(2)(x)
    assert down.shape == (2, 2, 3, 12)
    np.testing.assert_array_equal(_round_trip(DepthToSpace(2))(down).numpy(), x.numpy())


@pytest.mark.parametrize("block", [2, 4])
def test_space_to_depth_conv_is_the_pair_run_apart(block):
    down = SpaceToDepth(block)
    conv = conv2d(5, 1, "reflect", leaky_relu)
    inputs = tf.random.stateless_normal([2, 8, 12, 3], seed=[1, 2])
    conv.build(down.compute_output_shape(inputs.shape))
    conv.bias.assign(tf.random.stateless_normal([5], seed=[3, 4]))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        apart = conv(down(inputs))
        fused = space_to_depth_conv(inputs, down, conv)
    np.testing.assert_allclose(fused.numpy(), apart.numpy(), rtol=0, atol=1e-5)
    for source in (inputs, conv.kernel, conv.bias):
        np.testing.assert_allclose(tape.gradient(fused, source).numpy(),
                                   tape.gradient(apart, source).numpy(), rtol=0, atol=1e-4)
    # Under mixed_bfloat16 it computes in bfloat16, as the conv would.
    conv.dtype_policy = "mixed_bfloat16"
    fused = space_to_depth_conv(inputs, down, conv)
    assert fused.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(fused, tf.float32).numpy(),
                               tf.cast(conv(down(inputs)), tf.float32).numpy(), rtol=0.02, atol=0.02)
    with pytest.raises(ValueError, match="1x1"):
        space_to_depth_conv(inputs, down, conv2d(5, 3, "reflect"))


def test_the_network_runs_its_space_to_depth_pairs_fused_with_the_same_result():
    net = _built(4, **TINY)
    hr = tf.random.stateless_uniform([1, 64, 48, 3], seed=[5, 6])
    layers = [net.sub_mean, *net.encoder]
    one_by_one = hr
    for layer in layers:
        one_by_one = layer(one_by_one)
    np.testing.assert_allclose(run_chain(layers, hr).numpy(), one_by_one.numpy(), rtol=0,
                               atol=1e-5)


def test_sublayers_hold_every_weight_and_the_precision_reaches_them():
    net = _built(4, **TINY)
    own = {id(weight) for layer in net.sublayers() if not isinstance(layer, ResidualBlock)
           for weight in layer.weights}
    assert own == {id(weight) for weight in net.weights}
    net.set_body_dtype_policy("mixed_bfloat16")
    kept = [layer for layer in net.sublayers() if layer.dtype_policy.name == "float32"]
    assert kept == [net.kernel_head[-1]]
