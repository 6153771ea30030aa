"""The CAR networks: ResamplerNet, the downscaler, the upscalers and the whole model."""

from car_tf.models.bicubic import BicubicUpscaler
from car_tf.models.car import (
    CONFIG_KEYS,
    LATER_KEY_DEFAULTS,
    UPSCALERS,
    VARIANTS,
    CARModel,
    build_car_model,
    default_config,
)
from car_tf.models.downscaler import AdaptiveDownscale
from car_tf.models.edsr import EDSR, EDSR_BASELINE, EDSR_PAPER
from car_tf.models.build import ARCHITECTURES, architecture_of, build_model
from car_tf.models.fixed import FixedKernelModel, fixed_config, fixed_kernel_downscale
from car_tf.models.layers import count_trainable_params
from car_tf.models.resampler_net import (
    ResamplerNet,
    check_hr_shape,
    kernel_size_for,
    min_hr_size,
    size_multiple,
)

__all__ = [
    "ARCHITECTURES",
    "AdaptiveDownscale",
    "BicubicUpscaler",
    "CARModel",
    "CONFIG_KEYS",
    "EDSR",
    "EDSR_BASELINE",
    "EDSR_PAPER",
    "FixedKernelModel",
    "LATER_KEY_DEFAULTS",
    "ResamplerNet",
    "UPSCALERS",
    "VARIANTS",
    "architecture_of",
    "build_car_model",
    "build_model",
    "check_hr_shape",
    "count_trainable_params",
    "default_config",
    "fixed_config",
    "fixed_kernel_downscale",
    "kernel_size_for",
    "min_hr_size",
    "size_multiple",
]
