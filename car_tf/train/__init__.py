"""Training CAR (or the bicubic-LR SR baseline): one module per job.

  config.py      TrainConfig (every setting of a run) and the modes
  flags.py       the absl flags of tools/train.py and tools/benchmark_train.py -> TrainConfig
  strategy.py    tf.distribute strategy, chief or worker
  trainer.py     Trainer: model, optimizer, the distributed train step and its losses
  model_dir.py   the files a run keeps, the one-run-per-folder checks, init from a model
  validation.py  scores on the validation folders, the best-validated weights
  summaries.py   console lines and TensorBoard
  loop.py        train(): the loop that ties them together
  benchmark.py   timing the train step

flags.py defines absl flags when imported, and benchmark.py is a tool's, so neither is
imported here.
"""

from car_tf.train.config import MODES, TrainConfig
from car_tf.train.loop import NonFiniteLossError, train
from car_tf.train.model_dir import ModelDirMismatchError
from car_tf.train.strategy import create_strategy
from car_tf.train.trainer import Trainer

__all__ = [
    "MODES",
    "ModelDirMismatchError",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "create_strategy",
    "train",
]
