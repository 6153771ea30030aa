"""Times the training step of a config and prints one JSON object.

  python tools/benchmark_train.py --flagfile=configs/car_x4_bicubic_lite.cfg --benchmark_steps=20

Takes the flags of tools/train.py (--model_dir and data are not needed: the step runs
on random crops, so this measures the model, not the input pipeline) plus
--benchmark_steps and --warmup_steps (--steps is ignored). Reports steps/sec,
examples/sec and peak memory (process RSS; GPU peak per GPU when there are GPUs).
"""

import json

from absl import app, flags

from car_tf import train
from car_tf.train import benchmark
from car_tf.train import flags as train_flags

flags.DEFINE_integer("benchmark_steps", 20, "Timed steps.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing, allocation).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    strategy = train.create_strategy()
    config = train_flags.train_config_from_flags(for_training=False)
    result = benchmark.benchmark(config, steps=FLAGS.benchmark_steps, warmup_steps=FLAGS.warmup_steps,
                                 strategy=strategy)
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
