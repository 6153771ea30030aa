"""car_tf.memory: the peak resident set, in MiB, as the kernel counts it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from car_tf.memory import peak_memory, proc_status_kib


def vm_hwm_mib():
    """Peak resident set of this process from /proc (Linux), in MiB."""
    peak_kib = proc_status_kib("VmHWM")
    if peak_kib is None:
        pytest.skip("no VmHWM in /proc/self/status")
    return peak_kib / 1024.0


def test_peak_memory_sees_a_large_allocation():
    before = peak_memory()["peak_rss_mib"]
    block = np.ones(int((before + 256) * 2**20), np.uint8)  # touched, so resident
    after = peak_memory()["peak_rss_mib"]
    assert after >= before + 256 * 0.9
    assert after == pytest.approx(vm_hwm_mib(), rel=0.05)
    del block


def test_a_child_of_a_large_process_reads_its_own_peak():
    # getrusage's ru_maxrss would start the child at this process's size (with 1 GiB held
    # here, >= 1 GiB), and every probe's "extra memory" would then read near zero.
    vm_hwm_mib()
    held = np.ones(2**30, np.uint8)
    child = subprocess.run(
        [sys.executable, "-c", "import json, resource\n"
         "from car_tf.memory import peak_memory\n"
         "print(json.dumps([peak_memory()['peak_rss_mib'],"
         " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))"],
        capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    ours, inherited = json.loads(child.stdout.strip().splitlines()[-1])
    assert inherited >= 1024  # what the child would have read before
    assert ours < 900  # TensorFlow imported, nothing held
    del held
