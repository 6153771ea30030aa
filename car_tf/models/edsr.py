"""EDSR (Lim et al., CVPR 2017 workshops), the SR network that guides CAR in the paper.

  LR [N,h,w,3] - mean RGB -> 3x3 conv F
  -> x + [blocks * ResidualBlock(F, ReLU, res_scale), 3x3 conv F]
  -> upsampler: per factor 2, 3x3 conv 4F + depth-to-space 2 (x3: 9F, 3)
  -> 3x3 conv 3 -> + mean RGB  = SR [N, h*s, w*s, 3]

Zero ("same") padding and biases throughout, no normalisation, as in EDSR.
The paper's configuration (EDSR_PAPER: 32 blocks, 256 features, residual
scale 0.1) has 40,729,603 trainable parameters at scale 2 and 43,089,923 at
scale 4; EDSR-baseline (EDSR_BASELINE) is 16 blocks, 64 features, scale 1.0.
"""

import keras

from car_tf.models.layers import (
    DIV2K_MEAN_RGB,
    DepthToSpace,
    MeanShift,
    ResidualBlock,
    add_sublayers,
    build_chain,
    conv2d,
)
from car_tf.models.receptive_field import network_reach

EDSR_PAPER = {"blocks": 32, "features": 256, "res_scale": 0.1}
EDSR_BASELINE = {"blocks": 16, "features": 64, "res_scale": 1.0}
EDSR_SCALES = (2, 3, 4, 8)


def _upsampling_factors(scale):
    if scale == 3:
        return [3]
    if scale in (2, 4, 8):
        return [2] * (scale.bit_length() - 1)
    raise ValueError(f"EDSR scale must be one of {EDSR_SCALES}, got {scale}")


@keras.saving.register_keras_serializable(package="car_tf")
class EDSR(keras.layers.Layer):
    """LR [N, h, w, 3] float in ~[0, 1] -> SR [N, h*scale, w*scale, 3], unclipped.

    Args:
      scale: upscaling factor, 2, 3, 4 or 8.
      blocks: residual blocks.
      features: channels of every conv but the last.
      res_scale: residual scaling inside each block (0.1 stabilises wide EDSRs).
    """

    def __init__(self, scale, blocks=16, features=64, res_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        factors = _upsampling_factors(self.scale)
        if int(blocks) < 0 or int(features) < 1:
            raise ValueError(f"EDSR needs blocks >= 0 and features >= 1, got {blocks}, {features}")
        self.blocks = int(blocks)
        self.features = int(features)
        self.res_scale = float(res_scale)
        f = self.features

        self.sub_mean = MeanShift(DIV2K_MEAN_RGB, sign=-1.0, name="sub_mean")
        self.head = conv2d(f, 3, "zero", name="head")
        body = [
            ResidualBlock(f, "relu", self.res_scale, "zero", name=f"res_block{index}")
            for index in range(self.blocks)
        ]
        body.append(conv2d(f, 3, "zero", name="body_out"))
        tail = []
        for index, factor in enumerate(factors):
            tail += [
                conv2d(f * factor * factor, 3, "zero", name=f"up{index}_conv"),
                DepthToSpace(factor, name=f"up{index}"),
            ]
        tail.append(conv2d(3, 3, "zero", name="tail_out"))
        self.body = add_sublayers(self, body)
        self.tail = add_sublayers(self, tail)
        self.add_mean = MeanShift(DIV2K_MEAN_RGB, sign=1.0, name="add_mean")

    def build(self, input_shape):
        shape = build_chain([self.sub_mean, self.head, *self.body], input_shape)
        build_chain([*self.tail, self.add_mean], shape)

    def call(self, lr):
        x = self.head(self.sub_mean(lr))
        residual = x
        for layer in self.body:
            residual = layer(residual)
        x = x + residual
        for layer in self.tail:
            x = layer(x)
        return self.add_mean(x)

    def reach(self):
        """LR pixels of context each side that the SR pixels of one LR pixel depend on."""
        layers = [self.sub_mean, self.head, *self.body, *self.tail, self.add_mean]
        return network_reach(layers, self.scale, 1)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.scale
        return (n, None if h is None else h * s, None if w is None else w * s, 3)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "blocks": self.blocks,
            "features": self.features,
            "res_scale": self.res_scale,
        }
