"""The benchmark and profile tools (tools/benchmark_*.py, tools/profile_downscale.py) still run
and report what their docs quote: each on a tiny input, as a subprocess. Their figures are for
docs/BENCHMARKS.md, not asserted here; what is asserted is what the figures rest on."""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_tool(name, *args):
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_profile_downscale_times_every_part_of_the_network_and_both_resamplers():
    out = _run_tool("profile_downscale.py", "--model=car-x4-bicubic", "--size=64", "--repeats=1")
    seconds = dict(re.findall(r"^  +(\S.*?) +(\d+\.\d+)$", out, re.MULTILINE))
    for part in ("stem and space-to-depth (H to H/4)", "residual blocks", "bottleneck (H/8)",
                 "kernel_head_out (float32)", "offset_y_head_out (bfloat16)", "whole network",
                 "resampler: composite local path", "of which: weight_windows",
                 "of which: apply_windows"):
        assert part in seconds, out
    assert float(seconds["whole network"]) > 0


@pytest.mark.slow
def test_benchmark_cli_model_only_measures_each_model_and_pillow():
    out = _run_tool("benchmark_cli.py", "--model_only", "--megapixels=0.05", "--commands=downscale",
                    "--models=car-x4-fixed,car-x4-bicubic", "--json")
    report = json.loads(out[out.index("{"):])
    for name in ("car-x4-fixed", "car-x4-bicubic", "pillow"):
        assert report["model_only"][name]["mp_per_s"] > 0


@pytest.mark.slow
def test_benchmark_savedmodel_child_runs_without_car_tf_and_matches_the_cli():
    out = _run_tool("benchmark_savedmodel.py", "--height=64", "--width=80", "--json")
    report = json.loads(out[out.index("{"):])
    assert report["saved_model"]["car_tf_modules"] == []  # the export alone, as TF Serving
    assert report["max_level_difference"] <= 1
    assert report["saved_model"]["peak_rss_mib"] > 0 and report["cli"]["wall_s"] > 0
