"""Offline stand-in for @rules_java//java:defs.bzl: the native rules, re-exported.

Loaded by Bazel 4's @bazel_tools; nothing in car_tf is Java. See
third_party/rules_cc/cc/defs.bzl for why it is local.
"""

def java_binary(**attrs):
    native.java_binary(**attrs)


def java_import(**attrs):
    native.java_import(**attrs)


def java_library(**attrs):
    native.java_library(**attrs)


def java_lite_proto_library(**attrs):
    native.java_lite_proto_library(**attrs)


def java_package_configuration(**attrs):
    native.java_package_configuration(**attrs)


def java_plugin(**attrs):
    native.java_plugin(**attrs)


def java_proto_library(**attrs):
    native.java_proto_library(**attrs)


def java_runtime(**attrs):
    native.java_runtime(**attrs)


def java_test(**attrs):
    native.java_test(**attrs)


def java_toolchain(**attrs):
    native.java_toolchain(**attrs)
