"""car_tf: learned image downscaling with a content adaptive resampler (CAR), in TensorFlow."""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


def _register_op():
    from car_tf.ops import load_op_library

    load_op_library()


class _RegisterOpAfterTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `tensorflow` as usual, then registers the op once TensorFlow has loaded.

    `import car_tf` must let `tf.saved_model.load` find AdaptiveResample (a custom-op
    export), yet not import TensorFlow itself: `car --help` and argument errors answer
    in well under a second only if nothing loads TensorFlow before a command runs.
    """

    def __init__(self):
        self._loader = None

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader
        self._loader.exec_module(module)
        _register_op()


# Registers the AdaptiveResample op with TensorFlow (a quick dlopen, or a recorded
# failure), so that `import car_tf; tf.saved_model.load(path)` works for SavedModels
# exported with --resampler_impl=custom: now if TensorFlow is loaded, else right after
# it loads.
if "tensorflow" in sys.modules:
    _register_op()
else:
    sys.meta_path.insert(0, _RegisterOpAfterTensorFlow())


def __getattr__(name):
    # `import car_tf; car_tf.ops.adaptive_resample(...)` keeps working without
    # importing TensorFlow at `import car_tf`.
    if name == "ops":
        return importlib.import_module("car_tf.ops")
    raise AttributeError(f"module 'car_tf' has no attribute {name!r}")


def load_saved_model(path):
    """Loads a car_tf SavedModel export; see car_tf.export.savedmodel.load_saved_model."""
    from car_tf.export.savedmodel import load_saved_model as load

    return load(path)
