"""Peak memory of this process, in MiB, for the benchmarks' reports (`peak_rss_mib`)."""

import resource

import tensorflow as tf


def proc_status_kib(field):
    """A 'kB' field of /proc/self/status (VmRSS, VmHWM: Linux), or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib():
    """Peak resident set of this process's program, in MiB.

    VmHWM where Linux has it: getrusage's ru_maxrss is carried across fork and exec, so a
    child started by a larger process (pytest, a benchmark) would read its parent's size at
    the spawn instead of its own. ru_maxrss elsewhere (KiB on Linux, bytes on macOS; this
    assumes KiB).
    """
    peak_kib = proc_status_kib("VmHWM")
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak_kib / 1024.0


def peak_rss_source():
    """Python source defining proc_status_kib and peak_rss_mib, for a child process that must
    not import car_tf (tools/benchmark_savedmodel.py's TensorFlow-only child)."""
    import inspect

    return "\n".join(["import resource", inspect.getsource(proc_status_kib),
                      inspect.getsource(peak_rss_mib)])


def peak_memory():
    """{"peak_rss_mib": peak resident set of this process, "peak_<gpu>_mib": peak GPU memory
    per GPU}, in MiB (2^20 bytes)."""
    result = {"peak_rss_mib": peak_rss_mib()}
    for gpu in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(gpu.name)
        result[f"peak_{gpu.name.split(':', 1)[1].lower().replace(':', '')}_mib"] = info["peak"] / 2**20
    return result
