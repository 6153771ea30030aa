"""The GPU build: custom_ops/cuda_build.py's decisions, and (where nvcc exists)
a real compile and link of the CUDA kernels, so the GPU code can't rot on
machines without a GPU.

The slow tests build for one compute capability only (sm_75 plus its PTX):
the code is the same for every architecture, sm_75 is the lowest that both
CUDA 12.x and 13.x build, and one target compiles in about a third of the
time of the six a release build has.
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "custom_ops"))
import cuda_build  # noqa: E402

CI_ARCH = 75
HARNESS = os.path.join(ROOT, "tests", "cuda", "resample_harness.cu")


def _fake_nvcc(tmp_path, release, codes):
    """An executable that answers --version and --list-gpu-code like nvcc."""
    path = tmp_path / "bin" / "nvcc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            case "$1" in
              --version) echo "Cuda compilation tools, release {release}, V{release}.0";;
              --list-gpu-code) printf '%s\\n' {' '.join(f'sm_{c}' for c in codes)};;
            esac
            """
        )
    )
    path.chmod(0o755)
    return str(path)


# --- decisions (fast, no toolkit needed) -------------------------------------


def test_car_cuda_0_builds_cpu_only_even_with_everything_present(tmp_path):
    nvcc = _fake_nvcc(tmp_path, "12.5", [75, 80])
    use_gpu, reason = cuda_build.decide({"CAR_CUDA": "0"}, nvcc, True, "12.5.1")
    assert not use_gpu
    assert "CAR_CUDA=0" in reason


def test_auto_builds_gpu_when_toolkit_matches_tensorflow(tmp_path):
    nvcc = _fake_nvcc(tmp_path, "12.5", [75, 80])
    use_gpu, reason = cuda_build.decide({}, nvcc, True, "12.5.1")
    assert use_gpu
    assert "12.5" in reason


def test_auto_falls_back_without_nvcc_or_cuda_tensorflow(tmp_path):
    use_gpu, reason = cuda_build.decide({"CAR_CUDA": "auto"}, None, True, "12.5.1")
    assert not use_gpu and "nvcc" in reason
    nvcc = _fake_nvcc(tmp_path, "12.5", [75])
    use_gpu, reason = cuda_build.decide({}, nvcc, False, None)
    assert not use_gpu and "not a CUDA build" in reason


def test_auto_falls_back_when_toolkit_major_differs_but_car_cuda_1_forces(tmp_path):
    nvcc = _fake_nvcc(tmp_path, "13.0", [75, 80, 90])
    use_gpu, reason = cuda_build.decide({}, nvcc, True, "12.5.1")
    assert not use_gpu
    assert "13.0" in reason and "12.5.1" in reason and "CAR_CUDA=1" in reason
    use_gpu, reason = cuda_build.decide({"CAR_CUDA": "1"}, nvcc, True, "12.5.1")
    assert use_gpu and "untested" in reason


def test_car_cuda_1_fails_loudly_when_impossible(tmp_path):
    with pytest.raises(cuda_build.CudaBuildError, match="no nvcc"):
        cuda_build.decide({"CAR_CUDA": "1"}, None, True, "12.5.1")
    nvcc = _fake_nvcc(tmp_path, "12.5", [75])
    with pytest.raises(cuda_build.CudaBuildError, match="not a CUDA build"):
        cuda_build.decide({"CAR_CUDA": "1"}, nvcc, False, None)
    with pytest.raises(cuda_build.CudaBuildError, match="CAR_CUDA must be"):
        cuda_build.decide({"CAR_CUDA": "yes"}, nvcc, True, "12.5.1")


def test_gencode_covers_volta_to_hopper_plus_ptx_and_drops_what_nvcc_lacks():
    flags, dropped = cuda_build.gencode_flags(
        list(cuda_build.DEFAULT_ARCHS), {70, 75, 80, 86, 89, 90, 100}
    )
    assert dropped == []
    assert [f"-gencode=arch=compute_{a},code=sm_{a}" for a in (70, 75, 80, 86, 89, 90)] == flags[:-1]
    assert flags[-1] == "-gencode=arch=compute_90,code=compute_90"
    # CUDA 13 has no sm_70.
    flags, dropped = cuda_build.gencode_flags(list(cuda_build.DEFAULT_ARCHS), {75, 80, 86, 89, 90})
    assert dropped == [70]
    assert not any("sm_70" in f for f in flags)
    with pytest.raises(cuda_build.CudaBuildError, match="CAR_CUDA_ARCHS"):
        cuda_build.gencode_flags([70], {75, 80})


def test_car_cuda_archs_parsing():
    assert cuda_build.requested_archs({}) == list(cuda_build.DEFAULT_ARCHS)
    assert cuda_build.requested_archs({"CAR_CUDA_ARCHS": "sm_90, 80;86"}) == [80, 86, 90]
    with pytest.raises(cuda_build.CudaBuildError, match="CAR_CUDA_ARCHS"):
        cuda_build.requested_archs({"CAR_CUDA_ARCHS": "ampere"})


def test_find_nvcc_prefers_cuda_home(tmp_path):
    nvcc = _fake_nvcc(tmp_path, "12.5", [75])
    assert cuda_build.find_nvcc({"CUDA_HOME": str(tmp_path), "PATH": ""}) == nvcc


def test_nvcc_command_keeps_tensorflow_flags_without_hard_coding_any():
    tf_flags = ["-I/tf/include", "-D_GLIBCXX_USE_CXX11_ABI=1", "--std=c++17", "-fno-foo"]
    command = cuda_build.nvcc_command("nvcc", "a.cu.cc", "a.o", tf_flags, ["/repo"], ["-gencode=x"])
    assert command[command.index("-isystem") + 1] == "/tf/include"
    assert "-D_GLIBCXX_USE_CXX11_ABI=1" in command and "--std=c++17" in command
    assert "-Xcompiler=-fno-foo" in command
    assert "-DGOOGLE_CUDA=1" in command and "-gencode=x" in command
    # The standard and the ABI come from TensorFlow only.
    assert sum(f.startswith(("-std", "--std")) for f in command) == 1


# --- real builds (slow; need nvcc) -------------------------------------------


def _require_nvcc():
    nvcc = cuda_build.find_nvcc()
    if nvcc is None:
        pytest.skip("no nvcc on PATH or in CUDA_HOME: the CUDA kernels can't be compiled here")
    return nvcc


_LOAD_CHECK = textwrap.dedent(
    """\
    import sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import kernels as registry
    sys.path.insert(0, sys.argv[2])
    from resample_reference import adaptive_resample_numpy

    library = tf.load_op_library(sys.argv[1])
    for op in ("AdaptiveResample", "AdaptiveResampleGrad"):
        gpu = sorted(
            tf.dtypes.as_dtype(k.constraint[0].allowed_values.list.type[0]).name
            for k in registry.get_registered_kernels_for_op(op).kernel
            if k.device_type == "GPU"
        )
        assert gpu == ["float16", "float32", "float64"], (op, gpu)

    rng = np.random.default_rng(0)
    image = rng.random((2, 12, 16, 3))
    kernels = rng.random((2, 6, 8, 49))
    offsets_x = rng.normal(0, 3, (2, 6, 8, 49))
    offsets_y = rng.normal(0, 3, (2, 6, 8, 49))
    expected = adaptive_resample_numpy(image, kernels, offsets_x, offsets_y, 2.0)
    with tf.device("/CPU:0"):
        cpu = library.adaptive_resample(image, kernels, offsets_x, offsets_y, offset_unit=2.0)
    np.testing.assert_allclose(cpu.numpy(), expected, atol=1e-10)
    print("cpu ok")
    print(f"gpus {len(tf.config.list_physical_devices('GPU'))}")

    if tf.config.list_physical_devices("GPU") and sys.argv[3] == "1":
        args = [tf.constant(a, tf.float32) for a in (image, kernels, offsets_x, offsets_y)]
        grad = rng.normal(size=expected.shape).astype(np.float32)
        results = {}
        for device in ("/CPU:0", "/GPU:0"):
            with tf.device(device):
                out = library.adaptive_resample(*args, offset_unit=2.0)
                grads = library.adaptive_resample_grad(*args, grad, offset_unit=2.0)
            results[device] = [out.numpy()] + [g.numpy() for g in grads]
        for cpu_value, gpu_value in zip(results["/CPU:0"], results["/GPU:0"]):
            np.testing.assert_allclose(gpu_value, cpu_value, atol=1e-4, rtol=1e-4)
        print("gpu ok")
    """
)


@pytest.mark.slow
def test_setup_py_compiles_and_links_the_cuda_kernels_into_a_loadable_library(tmp_path):
    nvcc = _require_nvcc()
    probe = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; print(tf.test.is_built_with_cuda())"],
        capture_output=True,
        text=True,
        check=True,
    )
    if probe.stdout.strip() != "True":
        pytest.skip("this TensorFlow is not a CUDA build: GPU kernels can't be registered")
    env = dict(os.environ, CAR_CUDA="1", CAR_CUDA_ARCHS=str(CI_ARCH), TF_CPP_MIN_LOG_LEVEL="2")
    build = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "-q",
            "build_ext",
            "--build-lib",
            str(tmp_path / "lib"),
            "--build-temp",
            str(tmp_path / "tmp"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    assert "building the GPU kernels" in build.stderr
    (library,) = (tmp_path / "lib" / "car_tf" / "ops").glob("_adaptive_resample_ops*.so")

    # On a GPU machine the kernels run too, unless the toolkit's major version
    # differs from TF's (a build docs/CUDA.md calls unverified).
    tf_cuda = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; print(tf.sysconfig.get_build_info()['cuda_version'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    matched = cuda_build.nvcc_version(nvcc)[0] == int(tf_cuda.split(".")[0])
    check = subprocess.run(
        [sys.executable, "-c", _LOAD_CHECK, str(library), os.path.join(ROOT, "tests"), "1" if matched else "0"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr[-4000:]
    assert "cpu ok" in check.stdout
    # With a GPU in sight, "cpu ok" is not enough: the GPU kernels must have run and agreed.
    if "gpus 0" not in check.stdout:
        if not matched:
            pytest.skip(f"a GPU is visible but nvcc {cuda_build.nvcc_version(nvcc)} differs from "
                        f"TF's CUDA {tf_cuda}: such a build is unverified (docs/CUDA.md)")
        assert "gpu ok" in check.stdout, check.stdout


@pytest.mark.slow
def test_standalone_harness_compiles_and_its_cpu_self_check_passes(tmp_path):
    nvcc = _require_nvcc()
    gencode, _ = cuda_build.gencode_flags([CI_ARCH], cuda_build.supported_archs(nvcc))
    binary = str(tmp_path / "resample_harness")
    compile_ = subprocess.run(
        [nvcc, "-std=c++17", "-O3", f"-I{ROOT}", *gencode, HARNESS, "-o", binary],
        capture_output=True,
        text=True,
    )
    assert compile_.returncode == 0, compile_.stderr[-4000:]
    assert "warning" not in compile_.stderr

    cpu_only = subprocess.run([binary, "--cpu-only"], capture_output=True, text=True, timeout=120)
    assert cpu_only.returncode == 0, cpu_only.stdout + cpu_only.stderr
    assert "PASSED" in cpu_only.stdout
    assert "grad_offsets_y" in cpu_only.stdout

    full = subprocess.run([binary], capture_output=True, text=True, timeout=300)
    # 0: a GPU ran everything within tolerance; 2: no GPU here, and it says so.
    # 1 (mismatch) and 3 (CUDA error) fail.
    assert full.returncode in (0, 2), full.stdout + full.stderr
    if full.returncode == 2:
        assert "no CUDA device" in full.stdout
    else:
        assert "PASSED" in full.stdout and "timing" in full.stdout
