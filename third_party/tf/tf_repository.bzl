"""`pip_tensorflow`: the installed TensorFlow wheel as a Bazel repository.

The rule asks Python for tf.sysconfig's include dir, library dir and compile
flags, symlinks the headers and libtensorflow_framework.so.2, and writes BUILD
files that expose them under the labels real TensorFlow uses
(@org_tensorflow//tensorflow/core:framework, tf_copts() in
@org_tensorflow//tensorflow:tensorflow.bzl). car_tf's BUILD therefore builds
unchanged against a pip TensorFlow here and against TensorFlow from source in
TensorFlow Serving's workspace.

Python: $PYTHON_BIN_PATH if set (e.g. `--repo_env=PYTHON_BIN_PATH=...`),
else the workspace's .venv/bin/python, else python3.
"""

_PROBE = """
import tensorflow as tf
print(tf.sysconfig.get_include())
print(tf.sysconfig.get_lib())
print("\\t".join(tf.sysconfig.get_compile_flags()))
"""

def _python(ctx):
    explicit = ctx.os.environ.get("PYTHON_BIN_PATH", "")
    if explicit:
        return explicit
    venv = ctx.path(Label("@//:WORKSPACE")).dirname.get_child(".venv").get_child("bin").get_child("python")
    if venv.exists:
        return str(venv)
    return "python3"

def _pip_tensorflow_impl(ctx):
    python = _python(ctx)
    result = ctx.execute([python, "-c", _PROBE], environment = {"TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = result.stdout.strip().split("\n")
    if result.return_code != 0 or len(lines) < 3:
        fail("pip_tensorflow: `{} -c 'import tensorflow'` failed; set PYTHON_BIN_PATH to a Python with tensorflow==2.21.* installed ({})".format(
            python,
            result.stderr.strip().split("\n")[-1],
        ))
    include_dir, lib_dir, compile_flags = lines[-3], lines[-2], lines[-1].split("\t")
    ctx.symlink(include_dir, "include")
    ctx.symlink(lib_dir + "/libtensorflow_framework.so.2", "libtensorflow_framework.so.2")
    copts = [flag for flag in compile_flags if not flag.startswith("-I")]
    ctx.template("BUILD", Label("//third_party/tf:BUILD.root.tpl"), {"%{PYTHON}": python})
    ctx.template("tensorflow/core/BUILD", Label("//third_party/tf:BUILD.core.tpl"))
    ctx.file("tensorflow/BUILD", "")
    ctx.template("tensorflow/tensorflow.bzl", Label("//third_party/tf:tensorflow.bzl.tpl"), {"%{COPTS}": repr(copts)})

pip_tensorflow = repository_rule(
    implementation = _pip_tensorflow_impl,
    environ = ["PYTHON_BIN_PATH"],
    # Re-run by `bazel sync --configure`, e.g. after reinstalling TensorFlow.
    configure = True,
    local = True,
)
