"""Generated: tf_copts() as real TensorFlow's tensorflow.bzl names it, here the
non-include flags of tf.sysconfig.get_compile_flags() (C++ standard, ABI flag,
Eigen alignment), so none of them is written by hand."""

def tf_copts(**kwargs):
    return %{COPTS}
