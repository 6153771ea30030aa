"""car_tf.train.strategy: TF_CONFIG and the single-process default.

Distribution itself runs in tests/test_train_distributed.py.
"""

import json

import pytest

from car_tf.train import strategy as strategy_lib


@pytest.mark.parametrize(
    "tf_config, expected",
    [
        ("", 1),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}), 1),
        (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}), 2),
        (json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
                     "task": {"type": "chief", "index": 0}}), 3),
    ],
)
def test_cluster_worker_count_reads_tf_config(tf_config, expected):
    assert strategy_lib.cluster_worker_count(tf_config) == expected


def test_single_process_strategy_is_the_default_one(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = strategy_lib.create_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert strategy_lib.is_chief(strategy)
