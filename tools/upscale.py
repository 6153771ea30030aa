"""Upscales LR images with a CAR model's upscaler: `car upscale` (see docs/CLI.md).

Usage:
  python tools/upscale.py LR_OR_DIR... -o OUT_DIR --scale 4 [--model NAME_OR_PATH]

The flags are car_tf.cli's (argparse, like the `car` command), not absl's.
"""

import sys

from car_tf import cli

if __name__ == "__main__":
    sys.exit(cli.main(["upscale", *sys.argv[1:]]))
