"""car_tf.analysis stays out of the serving path: the CLI, tiling, bundled models and the
exports import none of the research yardsticks (nor training or evaluation)."""

import subprocess
import sys

SERVING = ("car_tf.cli", "car_tf.inference", "car_tf.pretrained", "car_tf.export.savedmodel",
           "car_tf.export.tflite", "car_tf.export.litert")
OFF_THE_PATH = ("car_tf.analysis", "car_tf.train", "car_tf.evaluation")


def test_the_serving_path_imports_no_yardstick():
    script = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in SERVING)
        + f"print(sorted(m for m in sys.modules if m.startswith({OFF_THE_PATH!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    # The check can fail: importing a yardstick shows up.
    result = subprocess.run([sys.executable, "-c", script.replace(
        "import car_tf.cli\n", "import car_tf.cli\nimport car_tf.analysis.kernel_analysis\n")],
        capture_output=True, text=True, check=True, timeout=300)
    assert "car_tf.analysis.kernel_analysis" in result.stdout.strip().splitlines()[-1]
