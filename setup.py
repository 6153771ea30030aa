"""Builds the adaptive resampler op library into car_tf/ops/, and the fixed-kernel
downscaler (plain C++, no TensorFlow; car_tf.fixed_numpy loads it with ctypes) into car_tf/.

Compile and link flags come from tf.sysconfig, so the C++ standard, the ABI
flag and the include paths always match the installed TensorFlow.

The CUDA kernels are added when custom_ops/cuda_build.py decides so (CAR_CUDA
and CAR_CUDA_ARCHS; see docs/CUDA.md): the .cu.cc is compiled with nvcc into
an object that is linked into the same library.
"""

import glob
import hashlib
import os
import subprocess
import sys

import tensorflow as tf
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "custom_ops"))
import cuda_build  # noqa: E402  (a build helper beside the sources, not a package)

CPU_SOURCES = sorted(
    glob.glob("custom_ops/cc/kernels/*.cc") + glob.glob("custom_ops/cc/ops/*.cc")
)
CPU_SOURCES = [s for s in CPU_SOURCES if not s.endswith(".cu.cc")]
KERNEL_HEADERS = glob.glob("custom_ops/cc/kernels/*.h")
OP_LIBRARY = "car_tf.ops._adaptive_resample_ops"


def _say(message):
    # stderr, so that --quiet and pip's progress output leave it visible.
    print(f"car_tf build: {message}", file=sys.stderr)


class BuildTfOp(build_ext):
    """build_ext that builds the TensorFlow op library with TensorFlow's flags (and CUDA),
    and any other extension as declared."""

    def build_extension(self, ext):
        if ext.name != OP_LIBRARY:
            # A plain extension: its flags are in its declaration below.
            super().build_extension(ext)
            return
        compile_flags = tf.sysconfig.get_compile_flags()
        ext.extra_compile_args = compile_flags + [
            "-O3",
            "-fPIC",
            "-fvisibility-inlines-hidden",
        ]
        ext.extra_link_args = tf.sysconfig.get_link_flags()

        nvcc = cuda_build.find_nvcc()
        try:
            use_gpu, reason = cuda_build.decide(
                os.environ,
                nvcc,
                tf.test.is_built_with_cuda(),
                tf.sysconfig.get_build_info().get("cuda_version"),
            )
        except cuda_build.CudaBuildError as error:
            sys.exit(f"car_tf build: {error}")
        _say(reason)
        if use_gpu:
            ext.extra_compile_args += cuda_build.host_gpu_flags(tf.sysconfig.get_include())
            ext.extra_objects = [self._compile_gpu_object(nvcc, compile_flags)]
        super().build_extension(ext)

    def _compile_gpu_object(self, nvcc, compile_flags):
        try:
            gencode, dropped = cuda_build.gencode_flags(
                cuda_build.requested_archs(), cuda_build.supported_archs(nvcc)
            )
        except cuda_build.CudaBuildError as error:
            sys.exit(f"car_tf build: {error}")
        if dropped:
            _say(
                "this nvcc cannot build sm_"
                + ", sm_".join(str(a) for a in dropped)
                + "; left out (CUDA 13 dropped sm_70; use CUDA 12.x for Volta)"
            )
        _say("CUDA targets: " + " ".join(g.split("=", 1)[1] for g in gencode))
        os.makedirs(self.build_temp, exist_ok=True)
        flags = [nvcc, *compile_flags, *gencode]
        # The object's name carries its flags, so changing CAR_CUDA_ARCHS or
        # the toolkit never reuses a stale object.
        tag = hashlib.sha1("\0".join(flags).encode()).hexdigest()[:10]
        output = os.path.join(self.build_temp, f"adaptive_resample_op_gpu.{tag}.o")
        inputs = [cuda_build.GPU_SOURCE] + KERNEL_HEADERS
        if (
            not self.force
            and os.path.exists(output)
            and os.path.getmtime(output) >= max(os.path.getmtime(p) for p in inputs)
        ):
            return output
        command = cuda_build.nvcc_command(
            nvcc,
            cuda_build.GPU_SOURCE,
            output,
            compile_flags,
            include_dirs=[ROOT],
            gencode=gencode,
            threads=os.cpu_count(),
        )
        _say(" ".join(command))
        if not self.dry_run:
            subprocess.run(command, check=True)
        return output


setup(
    ext_modules=[
        Extension(
            OP_LIBRARY,
            sources=CPU_SOURCES,
            include_dirs=[ROOT],
            # Header or CUDA changes must relink; build_ext only compares these.
            depends=KERNEL_HEADERS + [cuda_build.GPU_SOURCE],
            language="c++",
        ),
        # The fixed-kernel downscaler: no TensorFlow, only the standard library and threads.
        Extension(
            "car_tf._fixed_downscale",
            sources=["custom_ops/fixed/fixed_downscale.cc"],
            extra_compile_args=["-O3", "-std=c++17", "-fPIC"],
            extra_link_args=["-pthread"],
            language="c++",
        ),
    ],
    cmdclass={"build_ext": BuildTfOp},
)
