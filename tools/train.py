"""Trains CAR (or the bicubic-LR SR baseline); an interrupted run resumes from model_dir.

  python tools/train.py --flagfile=configs/car_x4_bicubic_lite.cfg \
      --train_dirs=data/train --val_dirs=data/val/Set5 --model_dir=runs/car_x4_bicubic_lite

Several GPUs are used through MirroredStrategy; several machines through
MultiWorkerMirroredStrategy when TF_CONFIG names several workers (start the same
command on each, with a model_dir on shared storage). docs/TRAINING.md has the details.
"""

import sys

from absl import app

from car_tf import train
from car_tf.train import flags as train_flags


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # First: the collective runtime of a multi-worker run must start before any other op.
    strategy = train.create_strategy()
    try:
        config = train_flags.train_config_from_flags()
        train.train(config, strategy)
    except (ValueError, OSError, train.NonFiniteLossError) as error:
        sys.exit(f"train.py: error: {error}")
    except KeyboardInterrupt:
        sys.exit("train.py: interrupted; run the same command again to resume")


if __name__ == "__main__":
    app.run(main)
