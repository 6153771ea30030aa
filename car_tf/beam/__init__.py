"""Batch downscaling, upscaling and round-tripping of stored images on Apache Beam.

An optional part of car_tf (`pip install "car_tf[beam]"`); the rest of car_tf never
imports it. docs/BEAM.md has the commands for the DirectRunner, Dataflow, Flink and Spark.

  files.py     what an input names, where outputs go, reading and writing through
               Beam's FileSystems
  engine.py    the model on a worker: loaded once per process, run in the CLI's tiles,
               equal-sized tiles batched
  handler.py   CarModelHandler, the RunInference ModelHandler
  pipeline.py  the pipeline: match, plan, skip, decode, RunInference, write; counters,
               dead letters
  launch.py    the command line (tools/beam_downscale.py)
  model_check.py  what the launcher's check of the model learnt, memoised, so that a
               model checked before is checked without TensorFlow
"""

import logging

# Two notices Beam logs on the root logger that say nothing about a car_tf job: its
# BigQuery client's, at import, when apitools (a GCP extra) is missing, and
# RunInference's, at each model load, when torch is missing (Beam imports its resource
# module together with a torch-only one). They would stand before every one-line error.
_BEAM_NOISE = ("apitools not found", "Resource module is not available")


class _DropBeamNoise(logging.Filter):
    def filter(self, record):
        return not record.getMessage().startswith(_BEAM_NOISE)


logging.getLogger().addFilter(_DropBeamNoise())

try:
    import apache_beam  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"car_tf.beam needs Apache Beam, which is not installed ({error}); "
        "install the extra: pip install 'car_tf[beam]'"
    ) from error
