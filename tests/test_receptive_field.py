"""car_tf.models.receptive_field: each network's stated reach bounds its true dependence."""

import numpy as np
import pytest
import tensorflow as tf

from car_tf.models import AdaptiveDownscale, build_car_model, default_config
from car_tf.models.bicubic import CUBIC_REACH
from car_tf.models.receptive_field import network_reach


def _model(scale, upscaler, seed, head_kernel_size=3):
    tf.keras.utils.set_random_seed(seed)
    config = default_config(scale, upscaler, variant="tiny")
    config["resampler_head_kernel_size"] = head_kernel_size
    return build_car_model(config)


@pytest.fixture(scope="module")
def x4_edsr():
    return _model(4, "edsr", 4)


@pytest.fixture(scope="module")
def x2_bicubic():
    return _model(2, "bicubic", 2)


def test_a_layer_without_a_known_reach_is_an_error():
    with pytest.raises(ValueError, match="don't know how far layer"):
        network_reach([tf.keras.layers.Dense(3)], 1, 1)


def test_bicubic_upscaler_reaches_two_lr_pixels(x2_bicubic):
    assert x2_bicubic.upscaler.reach() == x2_bicubic.upscale_reach() == CUBIC_REACH == 2


def test_tap_reach_is_kernel_radius_plus_offset_plus_bilinear():
    # k = 13 at scale 4: radius 6, offsets below 1 LR pixel = 4 HR pixels, +1.
    assert AdaptiveDownscale(4).reach() == 6 + 4 + 1
    assert AdaptiveDownscale(2).reach() == 3 + 2 + 1


def _window_gradient_reach(gradient, start, end):
    """How far beyond [start, end) on either axis the gradient magnitude is non-zero."""
    rows, cols = np.nonzero(np.abs(gradient).sum(-1))
    return max(start - rows.min(), rows.max() + 1 - end, start - cols.min(), cols.max() + 1 - end)


@pytest.mark.parametrize("head_kernel_size", [3, 1])
@pytest.mark.parametrize("scale", [2, 4])
def test_resampler_net_reach_bounds_the_true_dependence_tightly(scale, head_kernel_size):
    model = _model(scale, "bicubic", 10 + scale, head_kernel_size)
    hr = tf.Variable(np.random.default_rng(scale).random((1, 192, 192, 3)).astype(np.float32))
    start, end = 64, 128  # an output window aligned to the 8-pixel grid, as tiles are
    with tf.GradientTape() as tape:
        kernels, offsets_x, offsets_y = model.resampler(hr)
        window = np.s_[0, start // scale:end // scale, start // scale:end // scale]
        total = (tf.reduce_sum(tf.square(kernels[window])) + tf.reduce_sum(offsets_x[window])
                 + tf.reduce_sum(offsets_y[window]))
    measured = _window_gradient_reach(tape.gradient(total, hr).numpy()[0], start, end)
    computed = model.resampler.reach()
    # Never an underestimate; and within one 8-pixel block of the truth (ReLUs
    # of random weights may zero the outermost paths).
    assert computed - 8 < measured <= computed


def test_edsr_reach_bounds_the_true_dependence_tightly(x4_edsr):
    lr = tf.Variable(np.random.default_rng(0).random((1, 40, 40, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(x4_edsr.upscale(lr)[0, 80:88, 80:88])
    measured = _window_gradient_reach(tape.gradient(total, lr).numpy()[0], 20, 22)
    computed = x4_edsr.upscaler.reach()
    # tiny EDSR x4: head, 2 block convs, body_out, up0 at LR; up1 at 2x, tail at 4x.
    assert computed == 6
    assert computed - 1 <= measured <= computed


def test_downscale_reach_is_the_larger_of_network_and_taps(x4_edsr):
    net = x4_edsr.resampler.reach()
    taps = x4_edsr.downscaler.reach()
    assert x4_edsr.downscale_reach() == max(net, taps)
    assert x4_edsr.upscale_reach() == x4_edsr.upscaler.reach()
