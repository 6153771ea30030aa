# Generated: the one real TensorFlow label car_tf's BUILD uses, so that the
# same BUILD works here (pip TensorFlow) and inside TensorFlow Serving's
# workspace (TensorFlow from source).
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "framework",
    deps = [
        "//:headers",
        "//:libtensorflow_framework",
    ],
)
