"""Builds the adaptive resampler op library into car_tf/ops/.

Compile and link flags come from tf.sysconfig, so the C++ standard, the ABI
flag and the include paths always match the installed TensorFlow.
"""

import glob
import os

import tensorflow as tf
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CPU_SOURCES = sorted(
    glob.glob("custom_ops/cc/kernels/*.cc") + glob.glob("custom_ops/cc/ops/*.cc")
)
CPU_SOURCES = [s for s in CPU_SOURCES if not s.endswith(".cu.cc")]


class BuildTfOp(build_ext):
    """build_ext for a TensorFlow op library rather than a Python module."""

    def build_extension(self, ext):
        ext.extra_compile_args = (
            tf.sysconfig.get_compile_flags() + ["-O3", "-fPIC", "-fvisibility-inlines-hidden"]
        )
        ext.extra_link_args = tf.sysconfig.get_link_flags()
        super().build_extension(ext)


setup(
    ext_modules=[
        Extension(
            "car_tf.ops._adaptive_resample_ops",
            sources=CPU_SOURCES,
            include_dirs=[os.path.dirname(os.path.abspath(__file__))],
            language="c++",
        )
    ],
    cmdclass={"build_ext": BuildTfOp},
)
