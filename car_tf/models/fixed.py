"""A fixed-kernel downscaler: one k x k kernel for every LR pixel, no ResamplerNet.

The bundled CAR models act, in effect, as one fixed kernel (docs/RESULTS.md), and for a
linear upscaler without a codec the least-squares best downscaler is linear and
shift-invariant. This model is that kernel on its own, on CAR's tap grid (k = 3s + 1)
and with CAR's edge handling, computed as one strided depthwise convolution: about as
cheap as downscaling gets.

Why the convolution equals the op: with zero offsets, adaptive_resample reads the taps
of LR pixel x at the HR integers s*x - (s + 1) + j, j = 0 .. k-1 (tap positions
(x + 0.5) s - 0.5 + j - k/2, k = 3s + 1), and outside the image reads the HR image
reflected (numpy's "reflect", no edge repeat). Reflect-padding s + 1 pixels before and
s after, then a VALID convolution of stride s, reads the same pixels with the same
weights. tests/test_fixed.py checks the two against each other. car_tf.fixed_numpy
computes the same downscale in NumPy, for `car downscale` without TensorFlow.
"""

import keras
import numpy as np
import tensorflow as tf

from car_tf.models.bicubic import BicubicUpscaler
from car_tf.models.resampler_net import area_average_taps, check_hr_shape, kernel_size_for
from car_tf.models.roundtrip import RoundTripMethods
from car_tf.quantize import Quantize8Bit

# "signed": any weights summing to 1; "softmax": positive weights summing to 1 (the
# constraint of the authors' clamp and of ResamplerNet's softmax option).
KERNEL_NORMALIZATIONS = ("signed", "softmax")
# The quantiser's soft-round strength, as the CAR models'.
DEFAULT_QUANTIZE_ALPHA = 0.5


def fixed_config(scale, kernel_normalization="signed", quantize_alpha=DEFAULT_QUANTIZE_ALPHA):
    """The config of a fixed-kernel model (car_tf.models.build_model's input): its keys
    share the CAR config's names where they mean the same thing."""
    return {"architecture": "fixed", "scale": int(scale), "upscaler": "bicubic",
            "resampler_kernel_normalization": kernel_normalization,
            "quantize_alpha": float(quantize_alpha)}


def fixed_kernel_downscale(hr, kernel, scale):
    """HR float [N, H, W, C] -> LR float [N, H/s, W/s, C] with one kernel [k*k] (tap
    t = i*k + j, i the row), exactly as adaptive_resample with that kernel everywhere
    and zero offsets. H and W must be multiples of s and larger than s + 1."""
    scale = int(scale)
    kernel_size = kernel_size_for(scale)
    channels = hr.shape[-1]
    padded = tf.pad(hr, [[0, 0], [scale + 1, scale], [scale + 1, scale], [0, 0]], "REFLECT")
    filters = tf.tile(tf.reshape(kernel, [kernel_size, kernel_size, 1, 1]), [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(padded, tf.cast(filters, padded.dtype),
                                  [1, scale, scale, 1], "VALID")


@keras.saving.register_keras_serializable(package="car_tf")
class FixedKernelModel(RoundTripMethods, keras.Model):
    """HR -> one fixed kernel -> 8-bit LR -> bicubic SR; the methods of CARModel
    (call, downscale_outputs, downscale, upscale and their uint8 forms).

    resampler_kernel_normalization: "signed" or "softmax" (KERNEL_NORMALIZATIONS); both
    start from the area average of the LR pixel's own s x s block. upscaler: "bicubic",
    the only one a fixed kernel is fitted for.
    """

    def __init__(self, scale, upscaler="bicubic", resampler_kernel_normalization="signed",
                 quantize_alpha=DEFAULT_QUANTIZE_ALPHA, **kwargs):
        super().__init__(**kwargs)
        if resampler_kernel_normalization not in KERNEL_NORMALIZATIONS:
            raise ValueError(f"a fixed kernel's resampler_kernel_normalization must be one of "
                             f"{KERNEL_NORMALIZATIONS}, got {resampler_kernel_normalization!r}")
        if upscaler != "bicubic":
            raise ValueError(f"a fixed-kernel model has the bicubic upscaler only, not {upscaler!r}")
        self.scale = int(scale)
        self.kernel_size = kernel_size_for(self.scale)
        self.kernel_normalization = resampler_kernel_normalization
        self.upscaler_name = "bicubic"
        self._fixed_config = fixed_config(self.scale, resampler_kernel_normalization,
                                          quantize_alpha)
        area = area_average_taps(self.scale).numpy()
        if resampler_kernel_normalization == "softmax":
            area = np.log(np.maximum(area, 1e-6))
        self.raw_kernel = self.add_weight(
            name="raw_kernel", shape=(self.kernel_size**2,),
            initializer=keras.initializers.Constant(area), trainable=True)
        self.quantizer = Quantize8Bit(quantize_alpha, name="quantizer")
        self.upscaler = BicubicUpscaler(self.scale, name="upscaler")
        self.upscaler.build((None, None, None, 3))
        # The kernel is its only weight and exists already: nothing waits for a first call.
        self.built = True

    @property
    def config(self):
        return dict(self._fixed_config)

    def kernel(self):
        """[k*k] float32 weights summing to 1."""
        if self.kernel_normalization == "softmax":
            return tf.nn.softmax(self.raw_kernel)
        taps = float(self.kernel_size**2)
        return self.raw_kernel + (1.0 - tf.reduce_sum(self.raw_kernel)) / taps

    def downscale_outputs(self, hr):
        """hr [N, H, W, 3] -> {"lr" (quantised), "lr_float"} [N, H/s, W/s, 3]."""
        check_hr_shape(hr.shape, self.scale, "hr")
        lr_float = fixed_kernel_downscale(hr, self.kernel(), self.scale)
        return {"lr": self.quantizer(lr_float), "lr_float": lr_float}

    def downscale_reach(self):
        """HR pixels beyond an LR pixel's s x s footprint that its taps read: s + 1 before
        it and s after (the module docstring), so s + 1."""
        return self.scale + 1

    def upscale_reach(self):
        """LR pixels beyond an SR tile's footprint that the bicubic upscaler reads."""
        return self.upscaler.reach()

    def get_config(self):
        config = {key: value for key, value in self._fixed_config.items() if key != "architecture"}
        return {"name": self.name, "trainable": self.trainable, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
