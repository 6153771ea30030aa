"""The car_tf package itself: `import car_tf` registers the op without importing TensorFlow."""

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
import car_tf
imported = "tensorflow" in sys.modules
import tensorflow
from tensorflow.python.framework import op_def_registry
print(json.dumps([imported, op_def_registry.get("AdaptiveResample") is not None,
                  callable(car_tf.ops.adaptive_resample)]))
"""


@pytest.mark.parametrize("first", ["", "import tensorflow\n", "import keras\n"])
def test_import_car_tf_registers_the_op_whenever_tensorflow_loads(first):
    from car_tf.ops import custom_op_available

    if not custom_op_available():
        pytest.skip("the op library is not built")
    result = subprocess.run([sys.executable, "-c", first + SCRIPT], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    imported, registered, has_ops = json.loads(result.stdout.splitlines()[-1])
    assert imported == bool(first) and registered and has_ops
