"""car_tf: learned image downscaling with a content adaptive resampler (CAR), in TensorFlow."""

from car_tf.ops import load_op_library as _load_op_library

__version__ = "0.1.0"

# Registers the AdaptiveResample op with TensorFlow (a quick dlopen, or a recorded
# failure), so that `import car_tf; tf.saved_model.load(path)` works for SavedModels
# exported with --resampler_impl=custom.
_load_op_library()


def load_saved_model(path):
    """Loads a car_tf SavedModel export; see car_tf.export.savedmodel.load_saved_model."""
    from car_tf.export.savedmodel import load_saved_model as load

    return load(path)
