"""The whole CAR model: ResamplerNet -> adaptive downscaling -> 8-bit quantiser -> upscaler.

Configuration. A CAR model is described by a flat dict of plain JSON values
whose keys are also the training flags' names (`default_config` gives a
complete one, `build_car_model` builds from one):

  scale                     downscaling/upscaling factor: 2 or 4 (8 also builds)
  upscaler                  "bicubic" (weight-free) or "edsr"
  resampler_impl            adaptive resampler implementation: "auto", "custom", "composite"
  quantize_alpha            soft-round gradient strength of the quantiser, in [0, 1]
  resampler_stem_features   ResamplerNet 5x5 stem width (paper 64)
  resampler_features        ResamplerNet width at H/2 and H/4 (paper 128)
  resampler_blocks          ResamplerNet residual blocks (paper 5)
  resampler_trunk_features  ResamplerNet trunk and head width (paper 256)
  resampler_trunk_depth     ResamplerNet 3x3 conv layers per trunk before upsampling (paper 3)
  resampler_head_kernel_size  side of the ResamplerNet heads' last convs, 1 or 3 (paper 3;
                            configs saved before this key existed mean 3)
  resampler_kernel_normalization  "clamp" (authors: clip to [1e-6, 1], / sum), "softmax"
                            (every tap keeps a gradient) or "signed" (taps of either sign
                            summing to 1, as the paper's text asks; starts from the area
                            average). The default, and what a config without the key
                            means, is "clamp" (DEFAULT_KERNEL_NORMALIZATION): the paper
                            variants reproduce the authors' code with it, and older
                            saved models load unchanged. Every bundled model, and every
                            lite config in configs/, sets "signed", the choice for new
                            models (docs/RESULTS.md, "Why signed kernels").
  edsr_blocks               EDSR residual blocks (paper 32)
  edsr_features             EDSR width (paper 256)
  edsr_res_scale            EDSR residual scaling (paper 0.1)

The edsr_* keys are kept (and ignored) when upscaler is "bicubic", so every
config has the same keys. Variants of `default_config`:
  "paper"     the paper's networks (ResamplerNet 10.6M / 9.9M parameters at x2 / x4,
              EDSR 32 x 256, 40.7M / 43.1M);
  "baseline"  the paper's ResamplerNet with EDSR-baseline (16 x 64, residual scale 1;
              1.37M / 1.52M);
  "lite"      narrow networks for CPU training: ResamplerNet 32/64/48 wide, 2 blocks,
              trunk depth 2 (513,155 / 612,587), EDSR 8 x 48 (439,107 / 522,243);
  "tiny"      for tests and smoke runs: ResamplerNet 8/16/16, 1 block, trunk depth 1
              (54,115 / 99,787), EDSR 1 x 16 (17,123 / 26,403).
"""

import keras
import tensorflow as tf

from car_tf.choices import IMPLEMENTATIONS, UPSCALERS
from car_tf.models.bicubic import BicubicUpscaler
from car_tf.models.downscaler import AdaptiveDownscale
from car_tf.models.edsr import EDSR, EDSR_BASELINE, EDSR_PAPER
from car_tf.models.roundtrip import RoundTripMethods, from_uint8, to_uint8
from car_tf.models.resampler_net import ResamplerNet, check_hr_shape, kernel_size_for
from car_tf.quantize import Quantize8Bit

VARIANTS = ("paper", "baseline", "lite", "tiny")
# See the module docstring: the authors' normalisation, kept as the default so that
# configs saved before the key existed mean what they meant.
DEFAULT_KERNEL_NORMALIZATION = "clamp"
# The paper doesn't give the soft-round alpha it used; 0.5 keeps the gradient
# between 0.5 and 1.5 times the straight-through one.
DEFAULT_QUANTIZE_ALPHA = 0.5

_RESAMPLER_PAPER = {
    "resampler_stem_features": 64,
    "resampler_features": 128,
    "resampler_blocks": 5,
    "resampler_trunk_features": 256,
    "resampler_trunk_depth": 3,
    "resampler_head_kernel_size": 3,
    "resampler_kernel_normalization": DEFAULT_KERNEL_NORMALIZATION,
}
_VARIANT_WIDTHS = {
    "paper": {
        **_RESAMPLER_PAPER,
        "edsr_blocks": EDSR_PAPER["blocks"],
        "edsr_features": EDSR_PAPER["features"],
        "edsr_res_scale": EDSR_PAPER["res_scale"],
    },
    "baseline": {
        **_RESAMPLER_PAPER,
        "edsr_blocks": EDSR_BASELINE["blocks"],
        "edsr_features": EDSR_BASELINE["features"],
        "edsr_res_scale": EDSR_BASELINE["res_scale"],
    },
    "lite": {
        "resampler_stem_features": 32,
        "resampler_features": 64,
        "resampler_blocks": 2,
        "resampler_trunk_features": 48,
        "resampler_trunk_depth": 2,
        "resampler_head_kernel_size": 3,
        "resampler_kernel_normalization": DEFAULT_KERNEL_NORMALIZATION,
        "edsr_blocks": 8,
        "edsr_features": 48,
        "edsr_res_scale": 1.0,
    },
    "tiny": {
        "resampler_stem_features": 8,
        "resampler_features": 16,
        "resampler_blocks": 1,
        "resampler_trunk_features": 16,
        "resampler_trunk_depth": 1,
        "resampler_head_kernel_size": 3,
        "resampler_kernel_normalization": DEFAULT_KERNEL_NORMALIZATION,
        "edsr_blocks": 1,
        "edsr_features": 16,
        "edsr_res_scale": 1.0,
    },
}
# Keys added after models were saved, with the value a config without them means.
LATER_KEY_DEFAULTS = {"resampler_head_kernel_size": 3,
                      "resampler_kernel_normalization": DEFAULT_KERNEL_NORMALIZATION}
CONFIG_KEYS = ("scale", "upscaler", "resampler_impl", "quantize_alpha",
               *_VARIANT_WIDTHS["paper"])


def default_config(scale, upscaler="bicubic", variant="paper"):
    """A complete model config (see the module docstring for the keys)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return {
        "scale": int(scale),
        "upscaler": upscaler,
        "resampler_impl": "auto",
        "quantize_alpha": DEFAULT_QUANTIZE_ALPHA,
        **_VARIANT_WIDTHS[variant],
    }


def build_car_model(config):
    """CARModel from a config dict; keys left out take CARModel's (paper) defaults."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown CAR config keys {unknown}; known keys: {list(CONFIG_KEYS)}")
    if "scale" not in config:
        raise ValueError("CAR config needs a 'scale'")
    return CARModel(**config)


@keras.saving.register_keras_serializable(package="car_tf")
class CARModel(RoundTripMethods, keras.Model):
    """HR image -> learned 8-bit LR image -> SR image (Sun & Chen, TIP 2020).

    Images are float32 RGB in [0, 1], NHWC; the *_uint8 methods take and give
    uint8. HR height and width must be multiples of size_multiple(scale)
    (8 for scales 2 and 4) and at least twice that.

    Attributes: scale, kernel_size (3*scale + 1), upscaler_name, config (the
    dict it was built from), resampler (ResamplerNet), downscaler
    (AdaptiveDownscale), quantizer (Quantize8Bit), upscaler (BicubicUpscaler
    or EDSR).
    """

    def __init__(self, scale, upscaler="bicubic", resampler_impl="auto",
                 quantize_alpha=DEFAULT_QUANTIZE_ALPHA, resampler_stem_features=64,
                 resampler_features=128, resampler_blocks=5, resampler_trunk_features=256,
                 resampler_trunk_depth=3, resampler_head_kernel_size=3,
                 resampler_kernel_normalization=DEFAULT_KERNEL_NORMALIZATION, edsr_blocks=32,
                 edsr_features=256, edsr_res_scale=0.1, **kwargs):
        super().__init__(**kwargs)
        if upscaler not in UPSCALERS:
            raise ValueError(f"upscaler must be one of {UPSCALERS}, got {upscaler!r}")
        if resampler_impl not in IMPLEMENTATIONS:
            raise ValueError(
                f"resampler_impl must be one of {IMPLEMENTATIONS}, got {resampler_impl!r}"
            )
        self.scale = int(scale)
        self.kernel_size = kernel_size_for(self.scale)
        self.upscaler_name = upscaler
        self._car_config = {
            "scale": self.scale,
            "upscaler": upscaler,
            "resampler_impl": resampler_impl,
            "quantize_alpha": float(quantize_alpha),
            "resampler_stem_features": int(resampler_stem_features),
            "resampler_features": int(resampler_features),
            "resampler_blocks": int(resampler_blocks),
            "resampler_trunk_features": int(resampler_trunk_features),
            "resampler_trunk_depth": int(resampler_trunk_depth),
            "resampler_head_kernel_size": int(resampler_head_kernel_size),
            "resampler_kernel_normalization": str(resampler_kernel_normalization),
            "edsr_blocks": int(edsr_blocks),
            "edsr_features": int(edsr_features),
            "edsr_res_scale": float(edsr_res_scale),
        }
        self.resampler = ResamplerNet(
            self.scale,
            stem_features=resampler_stem_features,
            features=resampler_features,
            blocks=resampler_blocks,
            trunk_features=resampler_trunk_features,
            trunk_depth=resampler_trunk_depth,
            head_kernel_size=resampler_head_kernel_size,
            kernel_normalization=resampler_kernel_normalization,
            name="resampler",
        )
        self.downscaler = AdaptiveDownscale(self.scale, resampler_impl, name="downscaler")
        self.quantizer = Quantize8Bit(quantize_alpha, name="quantizer")
        if upscaler == "edsr":
            self.upscaler = EDSR(self.scale, edsr_blocks, edsr_features, edsr_res_scale,
                                 name="upscaler")
        else:
            self.upscaler = BicubicUpscaler(self.scale, name="upscaler")
        self.supports_jit = self.downscaler.supports_jit
        # All weights exist from construction on: parameter counts need no
        # forward pass, and `.keras` loading restores weights right away.
        self.build((None, None, None, 3))

    @property
    def config(self):
        return dict(self._car_config)

    def build(self, input_shape):
        if not self.resampler.built:
            self.resampler.build(input_shape)
        if not self.upscaler.built:
            self.upscaler.build((input_shape[0], None, None, 3))

    def downscale_outputs(self, hr):
        """hr [N, H, W, 3] -> dict of "lr" (quantised) and "lr_float" [N, H/s, W/s, 3],
        "kernels", "offsets_x", "offsets_y" [N, H/s, W/s, k*k]: the model up to the
        upscaler (training puts a codec between the two)."""
        check_hr_shape(hr.shape, self.scale, "hr")
        kernels, offsets_x, offsets_y = self.resampler(hr)
        lr_float = self.downscaler(hr, kernels, offsets_x, offsets_y)
        return {
            "lr": self.quantizer(lr_float),
            "lr_float": lr_float,
            "kernels": kernels,
            "offsets_x": offsets_x,
            "offsets_y": offsets_y,
        }

    def downscale_region_uint8(self, hr_uint8, lr_box):
        """downscale_uint8(hr_uint8)[:, top:bottom, left:right] (RoundTripMethods), with the
        resampler run on the box and the HR pixels its taps reach only.

        The ResamplerNet still sees all of hr_uint8 (the box's kernels depend on all of it
        within the network's reach, which a tile's halo is there to give). The composite
        resampler costs as much as the network (docs/BENCHMARKS.md), and an exported
        interior tile's halo is 12% of its LR pixels (280² against 262² at x4). A crop edge inside the image lies at least
        downscaler.reach() HR pixels from the box, where no tap of a box pixel reads, so the
        box is as in the whole run, up to float rounding.
        """
        top, bottom, left, right = lr_box
        hr = from_uint8(tf.convert_to_tensor(hr_uint8), "hr")
        check_hr_shape(hr.shape, self.scale, "hr")
        kernels, offsets_x, offsets_y = self.resampler(hr)
        margin = -(-self.downscaler.reach() // self.scale)  # in LR pixels, rounded up
        height, width = tf.shape(kernels)[1], tf.shape(kernels)[2]
        crop_top, crop_left = tf.maximum(top - margin, 0), tf.maximum(left - margin, 0)
        crop_bottom = tf.minimum(bottom + margin, height)
        crop_right = tf.minimum(right + margin, width)

        def crop(taps):
            return taps[:, crop_top:crop_bottom, crop_left:crop_right]

        s = self.scale
        lr_float = self.downscaler(
            hr[:, s * crop_top:s * crop_bottom, s * crop_left:s * crop_right],
            crop(kernels), crop(offsets_x), crop(offsets_y))
        lr = self.quantizer(lr_float)[:, top - crop_top:bottom - crop_top,
                                      left - crop_left:right - crop_left]
        return to_uint8(lr)

    def downscale_reach(self):
        """HR pixels of context each side that one LR pixel of `downscale` depends on.

        The LR pixel is the kernel-weighted sum of HR samples within the taps' reach, with
        kernels and offsets computed by ResamplerNet at that same LR pixel: the two
        dependencies overlap, so the reach is the larger of the two, not their sum. The
        quantiser is per pixel.
        """
        return max(self.resampler.reach(), self.downscaler.reach())

    def upscale_reach(self):
        """LR pixels of context each side that `upscale`'s output depends on."""
        return self.upscaler.reach()

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._car_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
