"""Peak memory of this process, in MiB, for the benchmarks' reports (`peak_rss_mib`)."""

import resource

import tensorflow as tf


def peak_memory():
    """{"peak_rss_mib": peak resident set of this process, "peak_<gpu>_mib": peak GPU memory
    per GPU}, in MiB (2^20 bytes)."""
    # ru_maxrss is in KiB on Linux.
    result = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    for gpu in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(gpu.name)
        result[f"peak_{gpu.name.split(':', 1)[1].lower().replace(':', '')}_mib"] = info["peak"] / 2**20
    return result
