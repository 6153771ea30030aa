"""car_tf.memory: the peak resident set, in MiB, as the kernel counts it."""

import numpy as np
import pytest

from car_tf.memory import peak_memory


def vm_hwm_mib():
    """Peak resident set of this process from /proc (Linux), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    pytest.skip("no VmHWM in /proc/self/status")


def test_peak_memory_sees_a_large_allocation():
    before = peak_memory()["peak_rss_mib"]
    block = np.ones(int((before + 256) * 2**20), np.uint8)  # touched, so resident
    after = peak_memory()["peak_rss_mib"]
    assert after >= before + 256 * 0.9
    assert after == pytest.approx(vm_hwm_mib(), rel=0.05)
    del block
