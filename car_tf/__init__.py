"""car_tf: learned image downscaling with a content adaptive resampler (CAR), in TensorFlow."""

__version__ = "0.1.0"
