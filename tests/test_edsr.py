"""car_tf.models.EDSR: exact parameter counts, shapes, mean shift, residual scaling."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from car_tf.models import EDSR, EDSR_BASELINE, EDSR_PAPER, count_trainable_params
from car_tf.models.layers import DIV2K_MEAN_RGB


def _built(scale, **config):
    net = EDSR(scale, **config)
    net.build((None, None, None, 3))
    return net


@pytest.mark.parametrize("scale, expected", [(2, 40_729_603), (4, 43_089_923)])
def test_paper_parameter_count_is_exact(scale, expected):
    assert EDSR_PAPER == {"blocks": 32, "features": 256, "res_scale": 0.1}
    assert count_trainable_params(_built(scale, **EDSR_PAPER)) == expected


@pytest.mark.parametrize("scale, expected", [(2, 1_369_859), (4, 1_517_571)])
def test_baseline_parameter_count(scale, expected):
    # EDSR-baseline is known as the 1.37M (x2) / 1.52M (x4) parameter model.
    assert EDSR_BASELINE == {"blocks": 16, "features": 64, "res_scale": 1.0}
    assert count_trainable_params(_built(scale, **EDSR_BASELINE)) == expected


@pytest.mark.parametrize("scale, stages", [(2, 1), (3, 1), (4, 2), (8, 3)])
def test_output_shape_and_upsampling_stages(scale, stages):
    net = EDSR(scale, blocks=1, features=8)
    sr = net(tf.random.stateless_uniform((2, 5, 7, 3), seed=(1, scale)))
    assert sr.shape == (2, 5 * scale, 7 * scale, 3)
    up_convs = [layer for layer in net.tail if isinstance(layer, keras.layers.Conv2D)][:-1]
    assert len(up_convs) == stages
    factor = 3 if scale == 3 else 2
    assert all(conv.filters == 8 * factor * factor for conv in up_convs)


def test_zero_network_returns_the_mean():
    net = _built(2, blocks=2, features=8)
    net.set_weights([np.zeros_like(w) for w in net.get_weights()])
    sr = net(tf.random.stateless_uniform((1, 4, 4, 3), seed=(2, 3))).numpy()
    np.testing.assert_allclose(sr, np.broadcast_to(DIV2K_MEAN_RGB, sr.shape), atol=1e-7)


def test_residual_scale_multiplies_the_block_branch():
    net = _built(2, blocks=1, features=4, res_scale=0.1)
    block = net.body[0]
    x = tf.random.stateless_normal((1, 3, 3, 4), seed=(4, 5))
    branch = block.conv2(block.conv1(x))
    np.testing.assert_allclose(block(x).numpy(), (x + 0.1 * branch).numpy(), atol=1e-6)


def test_zero_padding_at_the_border():
    # EDSR pads with zeros: a constant image through one 3x3 conv with an
    # all-ones kernel sums 9 neighbours inside and only 4 in a corner.
    net = _built(2, blocks=0, features=1)
    head = net.head
    head.kernel.assign(tf.ones_like(head.kernel))
    head.bias.assign(tf.zeros_like(head.bias))
    out = head(tf.ones((1, 4, 4, 3))).numpy()[0, :, :, 0]
    assert out[0, 0] == pytest.approx(12.0)
    assert out[1, 1] == pytest.approx(27.0)


def test_unsupported_scale():
    with pytest.raises(ValueError, match="EDSR scale must be one of"):
        EDSR(5)


def test_serialisation_round_trip():
    net = EDSR(4, blocks=1, features=8, res_scale=0.5, name="edsr")
    lr = tf.random.stateless_uniform((1, 4, 4, 3), seed=(6, 7))
    expected = net(lr)
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(net), safe_mode=True
    )
    assert clone.get_config() == net.get_config()
    assert clone.built  # deserialisation rebuilds from the recorded shape
    clone.set_weights(net.get_weights())
    np.testing.assert_array_equal(clone(lr).numpy(), expected.numpy())
