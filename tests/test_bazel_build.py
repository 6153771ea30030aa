"""The Bazel build (BUILD, WORKSPACE, third_party/): builds the loadable op
library against the pip TensorFlow and checks that it computes what the
setup.py build computes. Runs where `bazel` is on PATH (Debian:
`apt-get install bazel-bootstrap`), offline.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs the op from `library` (a path, or "setup.py" for the package's own
# build) on fixed inputs and saves the output and all four gradients.
_RUN_OP = textwrap.dedent(
    """\
    import sys
    import numpy as np
    import tensorflow as tf

    path, target = sys.argv[1], sys.argv[2]
    if path == "setup.py":
        from car_tf.ops.adaptive_resample import load_op_library
        library = load_op_library()
        assert library is not None, "the setup.py build of the op library did not load"
    else:
        library = tf.load_op_library(path)
    rng = np.random.default_rng(7)
    image = rng.random((2, 16, 24, 3))
    kernels = rng.random((2, 4, 6, 169))
    offsets_x = rng.normal(0, 2, kernels.shape)
    offsets_y = rng.normal(0, 2, kernels.shape)
    grad = rng.normal(size=(2, 4, 6, 3))
    output = library.adaptive_resample(image, kernels, offsets_x, offsets_y, offset_unit=4.0)
    grads = library.adaptive_resample_grad(image, kernels, offsets_x, offsets_y, grad, offset_unit=4.0)
    names = ("grad_image", "grad_kernels", "grad_offsets_x", "grad_offsets_y")
    np.savez(target, image=image, kernels=kernels, offsets_x=offsets_x, offsets_y=offsets_y,
             output=output.numpy(), **{n: g.numpy() for n, g in zip(names, grads)})
    """
)


def _bazel_env():
    """Environment for `bazel`. Debian's /usr/bin/bazel wrapper looks for
    bazel-<.bazelversion> beside itself, but bazel-bootstrap installs 4.2.3
    as bazel-4."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    bazel_dir = os.path.dirname(os.path.realpath(shutil.which("bazel")))
    with open(os.path.join(ROOT, ".bazelversion")) as f:
        pinned = f.read().strip()
    if not os.path.exists(os.path.join(bazel_dir, f"bazel-{pinned}")) and os.path.exists(
        os.path.join(bazel_dir, "bazel-" + pinned.split(".")[0])
    ):
        env["USE_BAZEL_VERSION"] = pinned.split(".")[0]
    return env


def _run_op(library, target):
    result = subprocess.run(
        [sys.executable, "-c", _RUN_OP, library, str(target)],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return np.load(target)


@pytest.mark.slow
def test_bazel_builds_the_op_library_and_it_matches_the_setup_py_build(tmp_path):
    if shutil.which("bazel") is None:
        pytest.skip("bazel is not on PATH (Debian: apt-get install bazel-bootstrap)")
    # --batch leaves no Bazel server running; --symlink_prefix=/ leaves no
    # bazel-* links in the checkout; the output base lives in tmp_path.
    build = subprocess.run(
        [
            "bazel",
            "--batch",
            f"--output_base={tmp_path / 'bazel'}",
            "build",
            "--symlink_prefix=/",
            f"--repo_env=PYTHON_BIN_PATH={sys.executable}",
            "//:_adaptive_resample_ops.so",
        ],
        cwd=ROOT,
        env=_bazel_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr[-6000:]
    (library,) = (tmp_path / "bazel" / "execroot").glob("*/bazel-out/*/bin/_adaptive_resample_ops.so")

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from resample_reference import adaptive_resample_numpy

    bazel = _run_op(str(library), tmp_path / "bazel.npz")
    expected = adaptive_resample_numpy(
        bazel["image"], bazel["kernels"], bazel["offsets_x"], bazel["offsets_y"], 4.0
    )
    np.testing.assert_allclose(bazel["output"], expected, atol=1e-12)

    setup_py = _run_op("setup.py", tmp_path / "setup_py.npz")
    for name in ("output", "grad_image", "grad_kernels", "grad_offsets_x", "grad_offsets_y"):
        np.testing.assert_allclose(bazel[name], setup_py[name], rtol=1e-12, atol=1e-12, err_msg=name)
