"""ResamplerNet: estimates a resampling kernel and per-tap offsets for every LR pixel.

Paper sections 3.1 and 4.1.2, laid out as in the authors' released network.
With the default (paper) widths it has 10,645,651 trainable parameters at
scale 2 and 9,896,443 at scale 4:

  HR [N,H,W,3] - mean RGB
  -> 5x5 conv stem_features, LeakyReLU(0.2)                     H
  -> space-to-depth 2, 1x1 conv features                        H/2
  -> space-to-depth 2, 1x1 conv features                        H/4
  -> x + blocks * ResidualBlock(features, LeakyReLU(0.2))       H/4
  -> space-to-depth 2, 1x1 conv trunk_features                  H/8
  -> two trunks with separate weights (kernels, offsets), each:
       trunk_depth * [3x3 conv trunk_features, ReLU]
       1x1 conv trunk_features * (8/s)^2, depth-to-space 8/s     H/s
       3x3 conv trunk_features, ReLU
  -> kernel head: 3x3 conv + ReLU, 3x3 conv k*k, clamp [1e-6, 1], / sum
  -> offset heads x and y (on the offsets trunk): 3x3 conv + ReLU, 3x3 conv k*k, tanh

The heads' last convs ("3x3 conv k*k") are head_kernel_size wide (paper 3). They
are the most expensive layers at inference (three convs into k*k = 169 channels at
H/4 for x4: ~40% of the lite network's multiply-adds), so the CPU-lite x4 model
makes them 1x1; the 3x3 hidden conv before each still sees the neighbourhood.

kernel_normalization "clamp" is the authors' (clip to [1e-6, 1], divide by the sum).
A clipped tap gets no gradient, and on CPU-length runs most taps die that way (96%
of the x4 taps in our first model sat at the clamp: docs/RESULTS.md); "softmax"
(exp, divide by the sum) keeps every tap positive and trainable.

"signed" drops the positivity that both impose: the paper only asks that a kernel's
taps sum to 1 (section 3.1), and the positivity comes from the authors' code. The
raw outputs are shifted by one common amount per pixel so that they sum to 1 (the
orthogonal projection onto that plane: linear, no tap ever saturates). Negative
lobes are what a downscaler for interpolation needs: the best single fixed 7x7
kernel for x2 (fitted on our training crops) scores +1.08 dB over bicubic/bicubic
on Set5 with signs free and +0.18 with positive taps only (docs/RESULTS.md). A signed ResamplerNet also starts from
a known state rather than random kernels and offsets: its kernel head's last conv
starts at zero weights with the area average of the LR pixel's own s x s HR block
as bias, and the offset heads' last convs start at zero (so all offsets are 0).

Every conv has a bias; every conv wider than 1x1 reflection-pads its input.
k = kernel_size = 3 * scale + 1 (a 3x3 LR-pixel footprint, section 4.1.2).
"""


import keras
import numpy as np
import tensorflow as tf

from car_tf.models.layers import (
    DIV2K_MEAN_RGB,
    DepthToSpace,
    MeanShift,
    ResidualBlock,
    SpaceToDepth,
    add_sublayers,
    build_chain,
    conv2d,
    leaky_relu,
    run_chain,
)
from car_tf.models.receptive_field import network_reach
from car_tf.ops.composite import unmoved_tap_positions
from car_tf.padding import FEATURE_STRIDE, min_hr_size, size_multiple  # noqa: F401  re-exported

RESAMPLER_SCALES = (2, 4, 8)
# Clamp range of the raw kernel weights before normalisation ("clamp", the authors'
# choice): positive weights only, so each kernel is a weighted average of HR samples.
KERNEL_MIN = 1e-6
KERNEL_MAX = 1.0
KERNEL_NORMALIZATIONS = ("clamp", "softmax", "signed")


def kernel_size_for(scale):
    """Taps per side of the resampling kernel: 3 LR pixels wide, plus one (3s + 1)."""
    return 3 * int(scale) + 1


def area_average_taps(scale):
    """[k*k] float32: 1/s^2 on the taps over the LR pixel's own s x s HR block, else 0.

    The block spans HR pixels less than s/2 from the LR pixel's centre, in rows and
    in columns (taps s + 1 .. 2s of each row).
    """
    scale = int(scale)
    line = (np.abs(unmoved_tap_positions(kernel_size_for(scale))) < scale / 2).astype(np.float32)
    return tf.constant(np.outer(line, line).reshape(-1) / float(scale * scale), tf.float32)


def check_hr_shape(shape, scale, name="hr"):
    """Raises ValueError if a known HR shape [N, H, W, 3] can't go through the network.

    Unknown (None) dimensions are not checked here; TensorFlow's own ops
    reject them at run time.
    """
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{name} must be a batch of images [N, H, W, 3], got shape {shape}")
    if shape[3] is not None and shape[3] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got shape {shape}")
    multiple, smallest = size_multiple(scale), min_hr_size(scale)
    for axis, label in ((1, "height"), (2, "width")):
        size = shape[axis]
        if size is not None and (size % multiple or size < smallest):
            raise ValueError(
                f"{name} {label} {size} must be a multiple of {multiple} and at least {smallest} "
                f"for scale {scale}; crop or pad the image"
            )


@keras.saving.register_keras_serializable(package="car_tf")
class ResamplerNet(keras.layers.Layer):
    """HR image -> (kernels, offsets_x, offsets_y), each [N, H/s, W/s, k*k].

    Input: [N, H, W, 3] float RGB in [0, 1], H and W multiples of
    size_multiple(scale) and at least min_hr_size(scale).
    Outputs, tap t = i*k + j with i the kernel row:
      kernels: positive, summing to 1 over the k*k taps;
      offsets_x: horizontal tap offsets in (-1, 1), in LR pixels (offset_unit = scale HR pixels);
      offsets_y: vertical tap offsets, likewise.

    Args:
      scale: downscaling factor, 2, 4 or 8.
      stem_features: width of the 5x5 stem conv (paper 64).
      features: width at H/2 and H/4, including the residual blocks (paper 128).
      blocks: residual blocks at H/4 (paper 5).
      trunk_features: width at H/8 and of the trunks and heads (paper 256).
      trunk_depth: 3x3 conv + ReLU layers in each trunk before upsampling (paper 3).
      head_kernel_size: side of the heads' last convs, 1 or 3 (paper 3).
      kernel_normalization: "clamp" (authors), "softmax" or "signed", how raw kernel
        outputs become weights summing to 1 (positive ones for the first two).
    """

    def __init__(self, scale, stem_features=64, features=128, blocks=5, trunk_features=256,
                 trunk_depth=3, head_kernel_size=3, kernel_normalization="clamp", **kwargs):
        super().__init__(**kwargs)
        scale = int(scale)
        if scale not in RESAMPLER_SCALES:
            raise ValueError(f"ResamplerNet scale must be one of {RESAMPLER_SCALES}, got {scale}")
        for label, value in (("stem_features", stem_features), ("features", features),
                             ("trunk_features", trunk_features)):
            if int(value) < 1:
                raise ValueError(f"ResamplerNet {label} must be >= 1, got {value}")
        if int(blocks) < 0 or int(trunk_depth) < 0:
            raise ValueError(
                f"ResamplerNet blocks and trunk_depth must be >= 0, got {blocks}, {trunk_depth}"
            )
        if int(head_kernel_size) not in (1, 3):
            raise ValueError(f"ResamplerNet head_kernel_size must be 1 or 3, got {head_kernel_size}")
        if kernel_normalization not in KERNEL_NORMALIZATIONS:
            raise ValueError(f"ResamplerNet kernel_normalization must be one of "
                             f"{KERNEL_NORMALIZATIONS}, got {kernel_normalization!r}")
        self.scale = scale
        self.kernel_size = kernel_size_for(scale)
        self.head_kernel_size = int(head_kernel_size)
        self.kernel_normalization = kernel_normalization
        self.stem_features = int(stem_features)
        self.features = int(features)
        self.blocks = int(blocks)
        self.trunk_features = int(trunk_features)
        self.trunk_depth = int(trunk_depth)

        taps = self.kernel_size**2
        width = self.trunk_features
        up = FEATURE_STRIDE // scale
        leaky = leaky_relu

        self.sub_mean = MeanShift(DIV2K_MEAN_RGB, sign=-1.0, name="sub_mean")
        self.encoder = add_sublayers(self, [
            conv2d(self.stem_features, 5, "reflect", leaky, name="stem"),
            SpaceToDepth(2, name="down2"),
            conv2d(self.features, 1, "reflect", name="down2_conv"),
            SpaceToDepth(2, name="down4"),
            conv2d(self.features, 1, "reflect", name="down4_conv"),
        ])
        self.res_blocks = add_sublayers(self, [
            ResidualBlock(self.features, leaky, 1.0, "reflect", name=f"res_block{index}")
            for index in range(self.blocks)
        ])
        self.bottleneck = add_sublayers(self, [
            SpaceToDepth(2, name="down8"),
            conv2d(width, 1, "reflect", name="down8_conv"),
        ])

        def trunk(prefix):
            layers = [
                conv2d(width, 3, "reflect", "relu", name=f"{prefix}_conv{index}")
                for index in range(self.trunk_depth)
            ]
            layers += [
                conv2d(width * up * up, 1, "reflect", name=f"{prefix}_up_conv"),
                DepthToSpace(up, name=f"{prefix}_up"),
                conv2d(width, 3, "reflect", "relu", name=f"{prefix}_out"),
            ]
            return add_sublayers(self, layers)

        def head(prefix, activation):
            return add_sublayers(self, [
                conv2d(width, 3, "reflect", "relu", name=f"{prefix}_hidden"),
                conv2d(taps, self.head_kernel_size, "reflect", activation, name=f"{prefix}_out"),
            ])

        self.kernel_trunk = trunk("kernel_trunk")
        self.offset_trunk = trunk("offset_trunk")
        self.kernel_head = head("kernel_head", None)
        self.offset_x_head = head("offset_x_head", "tanh")
        self.offset_y_head = head("offset_y_head", "tanh")

    def build(self, input_shape):
        check_hr_shape(input_shape, self.scale, "ResamplerNet input")
        shape = build_chain([self.sub_mean, *self.encoder, *self.res_blocks, *self.bottleneck],
                            input_shape)
        kernel_features = build_chain(self.kernel_trunk, shape)
        offset_features = build_chain(self.offset_trunk, shape)
        build_chain(self.kernel_head, kernel_features)
        build_chain(self.offset_x_head, offset_features)
        build_chain(self.offset_y_head, offset_features)
        if self.kernel_normalization == "signed":
            self._start_from_area_average()

    def _start_from_area_average(self):
        """Kernel head -> the s x s area average of the LR pixel's own HR block; offsets -> 0.

        Only the last conv of each head changes; a saved model's weights replace these
        when it loads.
        """
        kernel_out, offset_x_out, offset_y_out = (
            self.kernel_head[-1], self.offset_x_head[-1], self.offset_y_head[-1])
        for layer in (kernel_out, offset_x_out, offset_y_out):
            layer.kernel.assign(tf.zeros_like(layer.kernel))
            layer.bias.assign(tf.zeros_like(layer.bias))
        kernel_out.bias.assign(area_average_taps(self.scale))

    def set_body_dtype_policy(self, policy):
        """Runs every layer but the kernel head's last convolution under the Keras dtype
        policy `policy` ("float32", or "mixed_bfloat16": bfloat16 compute, float32 weights).

        The kernel head's last convolution, and the kernel normalisation after it, stay
        float32: a kernel tap's relative error is the LR pixel's (bfloat16's 2^-9 on taps
        of up to ~0.3 would move LR values by up to a level on its own). The offset heads'
        last convolutions run in bfloat16: an offset's error moves a tap by a fraction of
        its offset (at most 2^-9 of one LR pixel), which changes a sample by that distance
        times the local gradient, far below a level for the offsets our models predict.
        They were float32 too until the x2 profile showed the three heads' last 3x3
        convolutions taking 57% of the network's CPU time (docs/BENCHMARKS.md). With the
        body in bfloat16 the bundled car-x{2,4}-bicubic move under 1% of LR pixels, each by
        one level (tests/test_inference.py).
        """
        keep = self.kernel_head[-1]
        for layer in self.sublayers():
            if layer is not keep:
                layer.dtype_policy = policy

    def sublayers(self):
        """Every layer of the network in call order, the residual blocks' convolutions too
        (nested layers each hold their own dtype policy)."""
        nested = [part for block in self.res_blocks for part in (block, block.conv1, block.conv2)]
        return [self.sub_mean, *self.encoder, *nested, *self.bottleneck,
                *self.kernel_trunk, *self.kernel_head, *self.offset_trunk,
                *self.offset_x_head, *self.offset_y_head]

    def reach(self):
        """HR pixels of context each side that an LR pixel's kernels and offsets depend on.

        The worst of the kernel branch and the offset branches, counted through the stem,
        the space-to-depth levels, the residual blocks, the trunks and their
        depth-to-space, and the heads.
        """
        stem = [self.sub_mean, *self.encoder, *self.res_blocks, *self.bottleneck]
        branches = (
            [*self.kernel_trunk, *self.kernel_head],
            [*self.offset_trunk, *self.offset_x_head],
            [*self.offset_trunk, *self.offset_y_head],
        )
        return max(network_reach(stem + branch, 1, self.scale) for branch in branches)

    def call(self, hr):
        check_hr_shape(hr.shape, self.scale, "ResamplerNet input")
        x = run_chain([self.sub_mean, *self.encoder], hr)
        if self.res_blocks:
            x = x + run_chain(self.res_blocks, x)
        x = run_chain(self.bottleneck, x)

        kernel_features = run_chain(self.kernel_trunk, x)
        raw = run_chain(self.kernel_head, kernel_features)
        if self.kernel_normalization == "softmax":
            kernels = tf.nn.softmax(raw, axis=-1)
        elif self.kernel_normalization == "signed":
            taps = tf.cast(self.kernel_size**2, raw.dtype)
            kernels = raw + (1.0 - tf.reduce_sum(raw, axis=-1, keepdims=True)) / taps
        else:
            # Clamping keeps every weight positive; the sum is then >= k*k * 1e-6, never zero.
            raw = tf.clip_by_value(raw, KERNEL_MIN, KERNEL_MAX)
            kernels = raw / tf.reduce_sum(raw, axis=-1, keepdims=True)

        offset_features = run_chain(self.offset_trunk, x)
        offsets_x = run_chain(self.offset_x_head, offset_features)
        offsets_y = run_chain(self.offset_y_head, offset_features)
        return kernels, offsets_x, offsets_y

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.scale
        out = (n, None if h is None else h // s, None if w is None else w // s,
               self.kernel_size**2)
        return out, out, out

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "stem_features": self.stem_features,
            "features": self.features,
            "blocks": self.blocks,
            "trunk_features": self.trunk_features,
            "trunk_depth": self.trunk_depth,
            "head_kernel_size": self.head_kernel_size,
            "kernel_normalization": self.kernel_normalization,
        }
