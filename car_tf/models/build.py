"""One entry point from a config dict to a model, whatever its architecture.

A config's "architecture" key says which: "car" (the default; configs saved before the
key existed are CAR configs) builds a CARModel, "fixed" a FixedKernelModel. Training,
the bundled models and the exports all build through here.
"""

from car_tf.models.car import build_car_model
from car_tf.models.fixed import FixedKernelModel, fixed_config

ARCHITECTURES = ("car", "fixed")


def architecture_of(config):
    """"car" or "fixed" for a model config."""
    return config.get("architecture", "car")


def build_model(config, resampler_impl=None):
    """A CARModel or FixedKernelModel from its config.

    resampler_impl, when given, replaces the config's resampler implementation (CAR
    models; a fixed kernel has no resampler op to choose).
    """
    architecture = architecture_of(config)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    config = {key: value for key, value in config.items() if key != "architecture"}
    if architecture == "fixed":
        unknown = sorted(set(config) - set(fixed_config(2)))
        if unknown:
            raise ValueError(f"unknown fixed-kernel config keys {unknown}; known keys: "
                             f"{sorted(fixed_config(2))}")
        return FixedKernelModel(**config)
    if resampler_impl is not None:
        config["resampler_impl"] = resampler_impl
    return build_car_model(config)
