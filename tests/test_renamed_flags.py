"""car_tf.renamed_flags: an old flag name sets the new flag and warns, once, in one line."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags

from car_tf import renamed_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flag_values():
    flag_values = flags.FlagValues()
    flags.DEFINE_integer("batch_size", 16, "", flag_values=flag_values)
    flags.DEFINE_multi_string("train_dirs", [], "", flag_values=flag_values)
    renamed_flags.define_old_name("batch", flag_values)
    renamed_flags.define_old_name("train_dir", flag_values)
    return flag_values


def test_old_names_set_the_new_flags_and_warn(capsys):
    flag_values = _flag_values()
    flag_values(["tool", "--batch=3", "--train_dir=a", "--train_dir=b"])
    assert flag_values.batch_size == 3 and flag_values.train_dirs == ["a", "b"]
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        "warning: --batch is deprecated and will be removed in the next release; use --batch_size",
        "warning: --train_dir is deprecated and will be removed in the next release; "
        "use --train_dirs",
    ]


def test_new_names_do_not_warn(capsys):
    flag_values = _flag_values()
    flag_values(["tool", "--batch_size=5", "--train_dirs=a"])
    assert flag_values.batch_size == 5 and flag_values.train_dirs == ["a"]
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_benchmark_op_takes_its_old_flag_names():
    command = [sys.executable, "tools/benchmark_op.py", "--scale=2", "--batch=1", "--patch=16",
               "--repeats=1", "--warmup=0", "--json"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--batch is deprecated" in result.stderr and "--patch is deprecated" in result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["batch_size"], report["crop_size"], report["out_size"]) == (1, 16, 8)
    assert report["custom_peak_mib"] > 0 and report["composite_peak_mib"] > 0
