"""car_tf.train.benchmark: rates and peak memory of the train step."""

import numpy as np
import pytest

from car_tf import models
from car_tf.train import benchmark as benchmark_lib
from test_memory import vm_hwm_mib as _vm_hwm_mib
from train_fixtures import tiny_config as _config


@pytest.mark.slow
def test_benchmark_reports_rates_and_memory(tmp_path):
    result = benchmark_lib.benchmark(_config(tmp_path), steps=2, warmup_steps=1)
    assert result["steps_per_sec"] > 0
    assert result["examples_per_sec"] == pytest.approx(2 * result["steps_per_sec"])
    # The kernel's own account of this process's peak, read after the run: the report is
    # in MiB (not KiB or MB) and is this process's peak, not a guess.
    assert result["peak_rss_mib"] == pytest.approx(_vm_hwm_mib(), rel=0.05)
    assert result["trainable_parameters"] == sum(int(np.prod(v.shape)) for v in
                                                 models.build_car_model(result["model"]).trainable_weights)
