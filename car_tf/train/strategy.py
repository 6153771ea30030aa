"""Which tf.distribute strategy a run uses, and which process of a cluster is the chief."""

import json
import os

import tensorflow as tf


def cluster_worker_count(tf_config=None):
    """Number of chief + worker tasks named by TF_CONFIG (JSON string or None = from env)."""
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG", "")
    if not tf_config:
        return 1
    cluster = json.loads(tf_config).get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def create_strategy():
    """MultiWorkerMirrored when TF_CONFIG names several workers, Mirrored over several
    GPUs, otherwise the default (single-device) strategy.

    Must run before any other TensorFlow op when TF_CONFIG is set: the collective
    runtime has to start before the context is initialised.
    """
    if cluster_worker_count() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def task(strategy):
    """(task_type, task_id) of this process; (None, None) without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy):
    """True for the one process that writes summaries, config files and the final model."""
    task_type, task_id = task(strategy)
    if task_type is None or task_type == "chief":
        return True
    # Without a "chief" task, worker 0 plays the chief (tf.distribute's convention).
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster
