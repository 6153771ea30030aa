"""car_tf.losses against small hand-computed cases (paper eqs. 8-11)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math

import numpy as np
import pytest
import tensorflow as tf

from car_tf.losses import car_losses, l1_loss, offset_distance_weights, offset_loss, tv_loss


def test_l1_is_a_per_example_mean():
    hr = np.zeros((2, 1, 2, 3), np.float32)
    sr = np.zeros((2, 1, 2, 3), np.float32)
    sr[0, 0, 0] = [0.3, -0.3, 0.6]  # |.| sums to 1.2 over 6 values
    sr[1] = 0.1
    np.testing.assert_allclose(l1_loss(hr, sr).numpy(), [0.2, 0.1], rtol=1e-6)


def test_distance_weights_follow_eq9():
    # k = 3: distances from (1.5, 1.5), divided by sqrt(9/2 + 9/2) = 3.
    w = offset_distance_weights(3).reshape(3, 3)
    assert w[0, 0] == pytest.approx(math.sqrt(1.5**2 * 2) / 3)
    assert w[1, 1] == pytest.approx(math.sqrt(0.5**2 * 2) / 3)
    assert w[2, 2] == pytest.approx(math.sqrt(0.5**2 * 2) / 3)
    assert w[0, 2] == pytest.approx(math.sqrt(1.5**2 + 0.5**2) / 3)
    assert w[2, 0] == pytest.approx(w[0, 2])
    assert offset_distance_weights(7).shape == (49,)


def test_offset_loss_hand_case():
    # One image, two LR pixels, k = 3. Pixel 0: tap 0 moved by (0.3, 0.4),
    # length 0.5, weight sqrt(4.5)/3; tap 4 (row 1, col 1) by (0, -0.2),
    # weight sqrt(0.5)/3. Pixel 1 unmoved. The loss is the mean over pixels.
    ox = np.zeros((1, 1, 2, 9), np.float32)
    oy = np.zeros((1, 1, 2, 9), np.float32)
    ox[0, 0, 0, 0], oy[0, 0, 0, 0] = 0.3, 0.4
    oy[0, 0, 0, 4] = -0.2
    pixel0 = 0.5 * math.sqrt(4.5) / 3 + 0.2 * math.sqrt(0.5) / 3
    np.testing.assert_allclose(offset_loss(ox, oy).numpy(), [pixel0 / 2], rtol=1e-6)


def test_offset_loss_gradient_is_finite_at_zero():
    ox = tf.Variable(tf.zeros((1, 2, 2, 9)))
    oy = tf.Variable(tf.zeros((1, 2, 2, 9)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(offset_loss(ox, oy))
    gx, gy = tape.gradient(loss, [ox, oy])
    np.testing.assert_array_equal(gx.numpy(), 0.0)
    np.testing.assert_array_equal(gy.numpy(), 0.0)


def test_tv_hand_case():
    # k = 1 (one tap), a 2x2 LR image.
    kernels = np.array([[0.5, 0.25], [1.0, 1.0]], np.float32)[None, :, :, None]
    oy = np.array([[0.1, 0.4], [0.0, -0.2]], np.float32)[None, :, :, None]
    ox = np.array([[0.2, 0.0], [-0.3, 0.5]], np.float32)[None, :, :, None]
    # offsets_y along the width: |0.4-0.1|*0.5 + |-0.2-0|*1.0 = 0.35
    # offsets_x along the height: |-0.3-0.2|*0.5 + |0.5-0|*0.25 = 0.375
    np.testing.assert_allclose(tv_loss(kernels, ox, oy).numpy(), [0.725], rtol=1e-6)


def test_tv_weights_each_change_by_the_size_of_a_signed_kernel_tap():
    # A negative tap must not make moving its offsets apart pay off.
    oy = np.array([[0.1, 0.4]], np.float32)[None, :, :, None]
    ox = np.zeros_like(oy)
    positive = tv_loss(np.array([[0.5, 0.5]], np.float32)[None, :, :, None], ox, oy)
    negative = tv_loss(np.array([[-0.5, 1.5]], np.float32)[None, :, :, None], ox, oy)
    np.testing.assert_allclose(positive.numpy(), [0.15], rtol=1e-6)
    np.testing.assert_allclose(negative.numpy(), [0.15], rtol=1e-6)


def test_tv_ignores_the_other_directions():
    kernels = np.full((1, 3, 3, 4), 0.25, np.float32)
    varying_along_width = np.tile(np.arange(3, dtype=np.float32)[None, None, :, None],
                                  (1, 3, 1, 4))
    varying_along_height = np.transpose(varying_along_width, (0, 2, 1, 3))
    # Horizontal offsets changing between horizontal neighbours are not penalised,
    # nor vertical offsets changing between vertical neighbours.
    assert tv_loss(kernels, varying_along_width, varying_along_height).numpy()[0] == 0.0
    # The penalised directions: 3 rows x 2 pairs x 4 taps x |1| x 0.25, twice.
    got = tv_loss(kernels, varying_along_height, varying_along_width).numpy()[0]
    assert got == pytest.approx(12.0)


def _outputs(batch=2, size=4, taps=49, seed=0):
    rng = np.random.default_rng(seed)
    kernels = rng.uniform(0.01, 1, (batch, size // 2, size // 2, taps)).astype(np.float32)
    return {
        "sr": rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32),
        "kernels": kernels / kernels.sum(-1, keepdims=True),
        "offsets_x": rng.uniform(-1, 1, kernels.shape).astype(np.float32),
        "offsets_y": rng.uniform(-1, 1, kernels.shape).astype(np.float32),
    }


def test_car_losses_combines_the_terms_per_example():
    outputs = _outputs()
    hr = np.random.default_rng(1).uniform(0, 1, outputs["sr"].shape).astype(np.float32)
    losses = car_losses(hr, outputs, scale=2)
    assert set(losses) == {"total", "l1", "offset", "tv"}
    for value in losses.values():
        assert value.shape == (2,) and value.dtype == tf.float32
    expected = losses["l1"] + 0.001 * losses["offset"] + 0.005 * losses["tv"]
    np.testing.assert_allclose(losses["total"].numpy(), expected.numpy(), rtol=1e-6)
    custom = car_losses(hr, outputs, offset_weight=0.5, tv_weight=0.0, scale=2)
    np.testing.assert_allclose(
        custom["total"].numpy(), (losses["l1"] + 0.5 * losses["offset"]).numpy(), rtol=1e-6
    )
    # Example 1 alone gives example 1's values.
    single = car_losses(hr[1:], {key: value[1:] for key, value in outputs.items()})
    for key in losses:
        np.testing.assert_allclose(single[key].numpy(), losses[key].numpy()[1:], rtol=1e-6)


def test_car_losses_checks_shapes():
    outputs = _outputs()
    with pytest.raises(ValueError, match="scale 4 needs 169"):
        car_losses(np.zeros((2, 4, 4, 3), np.float32), outputs, scale=4)
    with pytest.raises(ValueError, match="differ"):
        car_losses(np.zeros((2, 8, 8, 3), np.float32), outputs)
