"""Timing the training step alone, on random crops (tools/benchmark_train.py)."""

import time

import numpy as np
import tensorflow as tf

from car_tf.memory import peak_memory
from car_tf.train.strategy import create_strategy
from car_tf.train.trainer import Trainer


def benchmark(config, steps=20, warmup_steps=3, dataset=None, strategy=None):
    """Times `steps` train steps after `warmup_steps` (tracing, allocation).

    Runs on random crops unless a dataset is given, so it measures the model and the
    step, not the input pipeline. Returns a JSON-ready dict.
    """
    strategy = strategy or create_strategy()
    trainer = Trainer(config, strategy)
    if dataset is None:
        crops = tf.random.stateless_uniform(
            [config.batch_size, config.crop_size, config.crop_size, 3], seed=[config.seed, 0],
            maxval=256, dtype=tf.int32,
        )
        dataset = tf.data.Dataset.from_tensors(tf.cast(crops, tf.uint8)).repeat()
    batches = trainer.distribute(dataset)
    started = time.perf_counter()
    for _ in range(warmup_steps):
        float(trainer.train_step(next(batches))["total"])
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        float(trainer.train_step(next(batches))["total"])
    seconds = time.perf_counter() - started
    return {
        "mode": config.mode,
        "model": config.model,
        "batch_size": config.batch_size,
        "crop_size": config.crop_size,
        "replicas": strategy.num_replicas_in_sync,
        "trainable_parameters": int(sum(np.prod(v.shape) for v in trainer.variables)),
        "warmup_steps": warmup_steps,
        "warmup_seconds": warmup_seconds,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "steps_per_sec": steps / seconds,
        "examples_per_sec": steps * config.batch_size / seconds,
        **peak_memory(),
    }
