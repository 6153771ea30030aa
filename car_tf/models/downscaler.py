"""The downscaling module: applies ResamplerNet's kernels to the HR image (paper section 3.2)."""

import math

import keras

from car_tf.models.resampler_net import kernel_size_for
from car_tf.ops import IMPLEMENTATIONS, adaptive_resample


@keras.saving.register_keras_serializable(package="car_tf")
class AdaptiveDownscale(keras.layers.Layer):
    """(hr, kernels, offsets_x, offsets_y) -> lr_float [N, H/s, W/s, 3].

    hr is [N, H, W, 3]; kernels and offsets are [N, H/s, W/s, k*k] as made by
    ResamplerNet. offset_unit = scale: an offset of 1 moves a tap by one LR
    pixel, i.e. `scale` HR pixels (section 4.1.2).

    Args:
      scale: downscaling factor.
      impl: "auto", "custom" (compiled op) or "composite" (built-in TF ops,
        exportable); see car_tf.ops.adaptive_resample.
    """

    def __init__(self, scale, impl="auto", **kwargs):
        super().__init__(**kwargs)
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"resampler impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
        self.scale = int(scale)
        self.impl = impl
        # XLA can't compile the custom op; Keras would try when a GPU is visible.
        self.supports_jit = impl == "composite"
        # The composite resampler's gather-free path (car_tf.ops.composite). Set by the
        # SavedModel export (car_tf.export.graph.with_resampler_impl), not saved in the
        # config: its gradients are tested, but training has never been timed with it.
        self.local_fast_path = False

    def build(self, hr_shape, kernels_shape, offsets_x_shape, offsets_y_shape):
        # No weights. Naming every input's shape lets Keras record all four
        # (summary() and compute_output_shape use them).
        pass

    def call(self, hr, kernels, offsets_x, offsets_y):
        return adaptive_resample(
            hr, kernels, offsets_x, offsets_y, offset_unit=float(self.scale), impl=self.impl,
            local_fast_path=self.local_fast_path,
        )

    def reach(self):
        """HR pixels beyond an LR pixel's footprint that its taps read: the kernel radius
        k // 2, plus the largest offset (|offset| < 1, times offset_unit = scale HR pixels),
        plus one for the bilinear neighbour."""
        return kernel_size_for(self.scale) // 2 + math.ceil(self.scale) + 1

    def compute_output_shape(self, hr_shape, kernels_shape, offsets_x_shape, offsets_y_shape):
        return (*tuple(kernels_shape)[:3], hr_shape[-1])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "impl": self.impl}
