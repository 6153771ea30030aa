"""Downscales (upscales, round-trips) stored images with a CAR model on Apache Beam.

Usage:
  python tools/beam_downscale.py downscale 'photos/**' -o small/ --model car-x4-bicubic \
      --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2

car's flags (docs/CLI.md) plus Beam's pipeline options; docs/BEAM.md has the details and
the Dataflow, Flink and Spark commands. Needs the beam extra: pip install "car_tf[beam]".
"""

import sys

from car_tf.beam import launch

if __name__ == "__main__":
    sys.exit(launch.main())
