"""Decides whether and how the op library is built with its CUDA kernels.

Used by setup.py and by tests/test_cuda_build.py, so the CI check compiles
the .cu.cc exactly as a real build does. No TensorFlow import here: callers
pass in what they learnt from tf.sysconfig.

Environment:
  CAR_CUDA         "1" build the GPU kernels or fail; "0" CPU only; unset or
                   "auto": GPU when nvcc is found, TensorFlow is a CUDA build
                   and both use the same CUDA major version.
  CAR_CUDA_ARCHS   compute capabilities to build, e.g. "80,90" (default
                   70,75,80,86,89,90; PTX of the highest is always added so
                   newer GPUs can JIT it).
  CUDA_HOME / CUDA_PATH   toolkit root whose bin/nvcc is used before PATH's.
"""

import os
import re
import shutil
import subprocess

# Volta to Hopper; the issue asks for sm_70..sm_90 plus PTX.
DEFAULT_ARCHS = (70, 75, 80, 86, 89, 90)

GPU_SOURCE = "custom_ops/cc/kernels/adaptive_resample_op_gpu.cu.cc"


class CudaBuildError(RuntimeError):
    """CAR_CUDA=1 asked for something this machine cannot build."""


def find_nvcc(environ=os.environ):
    """Path of nvcc: $CUDA_HOME/bin, then $CUDA_PATH/bin, then PATH; or None."""
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        root = environ.get(variable)
        if root:
            candidate = os.path.join(root, "bin", "nvcc")
            if os.access(candidate, os.X_OK):
                return candidate
    return shutil.which("nvcc")


def nvcc_version(nvcc):
    """(major, minor) of the toolkit, from `nvcc --version`."""
    text = subprocess.run(
        [nvcc, "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"release (\d+)\.(\d+)", text)
    if not match:
        raise CudaBuildError(f"cannot read the CUDA version from `{nvcc} --version`")
    return int(match.group(1)), int(match.group(2))


def supported_archs(nvcc):
    """Compute capabilities this nvcc can emit SASS for, e.g. {75, 80, 90}."""
    text = subprocess.run(
        [nvcc, "--list-gpu-code"], capture_output=True, text=True, check=True
    ).stdout
    return {int(m) for m in re.findall(r"\bsm_(\d+)\b", text)}


def requested_archs(environ=os.environ):
    """CAR_CUDA_ARCHS as sorted ints, or DEFAULT_ARCHS."""
    value = environ.get("CAR_CUDA_ARCHS", "").strip()
    if not value:
        return list(DEFAULT_ARCHS)
    try:
        return sorted({int(a) for a in re.split(r"[,;\s]+", value.replace("sm_", "")) if a})
    except ValueError:
        raise CudaBuildError(
            f"CAR_CUDA_ARCHS={value!r} is not a list of compute capabilities; use e.g. 80,90"
        ) from None


def gencode_flags(archs, supported):
    """-gencode flags for `archs` that this nvcc supports, plus PTX of the highest.

    Returns (flags, dropped): the archs this toolkit can't build (CUDA 13 dropped
    sm_70) are left out and listed in `dropped`.
    """
    kept = [a for a in archs if a in supported]
    dropped = [a for a in archs if a not in supported]
    if not kept:
        raise CudaBuildError(
            f"nvcc supports none of the requested compute capabilities {archs}; "
            "set CAR_CUDA_ARCHS to some of " + ",".join(str(a) for a in sorted(supported))
        )
    flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in kept]
    flags.append(f"-gencode=arch=compute_{kept[-1]},code=compute_{kept[-1]}")
    return flags, dropped


def decide(environ, nvcc, tf_is_cuda_build, tf_cuda_version):
    """Whether to build the GPU kernels, and a one-line reason to print.

    tf_cuda_version: TensorFlow's CUDA version string, e.g. "12.5.1", or None.
    Raises CudaBuildError when CAR_CUDA=1 cannot be honoured.
    """
    mode = environ.get("CAR_CUDA", "auto").strip().lower() or "auto"
    if mode not in ("0", "1", "auto"):
        raise CudaBuildError(f"CAR_CUDA must be 0, 1 or auto, got {mode!r}")
    if mode == "0":
        return False, "CAR_CUDA=0: building the CPU kernels only"
    if nvcc is None:
        if mode == "1":
            raise CudaBuildError(
                "CAR_CUDA=1 but no nvcc found; put it on PATH or set CUDA_HOME"
            )
        return False, "no nvcc on PATH or in CUDA_HOME: building the CPU kernels only"
    if not tf_is_cuda_build:
        if mode == "1":
            raise CudaBuildError(
                "CAR_CUDA=1 but this TensorFlow is not a CUDA build; install a CUDA build"
            )
        return False, "TensorFlow is not a CUDA build: building the CPU kernels only"
    major, minor = nvcc_version(nvcc)
    tf_major = int(str(tf_cuda_version).split(".")[0]) if tf_cuda_version else None
    if tf_major is not None and major != tf_major:
        # The fatbinary of a newer major toolkit needs a driver of that major
        # version, which TF itself does not; and the CUDA structs the two see
        # differ (cudaDeviceProp shrank in 13). Compiles, but is unverified.
        note = (
            f"nvcc {major}.{minor} differs from TensorFlow's CUDA {tf_cuda_version} "
            f"(the library would need a CUDA {major} driver and is untested)"
        )
        if mode == "1":
            return True, f"CAR_CUDA=1: building the GPU kernels although {note}"
        return False, f"{note}: building the CPU kernels only; CAR_CUDA=1 forces a GPU build"
    return True, f"building the GPU kernels with nvcc {major}.{minor} ({nvcc})"


def _nvcc_passthrough(flags):
    """TF's compile flags in nvcc's spelling. TF's include dirs become -isystem
    so that its headers' warnings don't bury ours; -D and -std pass as they
    are; anything else goes to the host compiler."""
    out = []
    for flag in flags:
        if flag.startswith("-I"):
            out += ["-isystem", flag[2:]]
        elif flag.startswith(("-D", "-std", "--std")):
            out.append(flag)
        else:
            out.append(f"-Xcompiler={flag}")
    return out


def nvcc_command(nvcc, source, output, tf_compile_flags, include_dirs, gencode, threads=None):
    """The nvcc command that compiles `source` (a .cu.cc using TF headers) to an
    object for a shared library."""
    command = [nvcc, "-c", "-x", "cu", source, "-o", output, "-DGOOGLE_CUDA=1"]
    command += _nvcc_passthrough(tf_compile_flags)
    command += [f"-I{d}" for d in include_dirs]
    # Eigen's constexpr helpers are called from device code.
    command += ["--expt-relaxed-constexpr", "-O3", "-Xcompiler=-fPIC,-Wall"]
    command += gencode
    if threads:
        command.append(f"--threads={threads}")
    return command


def host_gpu_flags(tf_include_dir):
    """Extra flags for the host-compiled .cc files of a GPU build.

    The .cc files register DEVICE_GPU kernels under GOOGLE_CUDA and name
    Eigen::GpuDevice, which needs EIGEN_USE_GPU and cuda_runtime.h; the CUDA
    headers TF ships in its include dir are the version TF was built with.
    """
    return [
        "-DGOOGLE_CUDA=1",
        "-DEIGEN_USE_GPU",
        "-I" + os.path.join(tf_include_dir, "third_party", "gpus", "cuda", "include"),
    ]
