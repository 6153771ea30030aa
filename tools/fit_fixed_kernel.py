"""Fits the best single fixed downscaling kernel for the bicubic upscaler and scores it.

A yardstick for CAR's kernel design (car_tf.analysis.fixed_kernel, docs/RESULTS.md):

  python tools/fit_fixed_kernel.py --scale=2 --parameterisation=signed \
      --train_dirs=DATA/train --data_dir=DATA/val/Set5 --data_dir=DATA/val/Set14
"""

import sys

import numpy as np
from absl import app, flags

from car_tf import renamed_flags
from car_tf.analysis import fixed_kernel
from car_tf.data.folders import display_name, folder_source

flags.DEFINE_integer("scale", 2, "Downscaling factor.")
flags.DEFINE_enum("parameterisation", "signed", list(fixed_kernel.PARAMETERISATIONS),
                  "signed: any weights summing to 1; positive: softmax weights.")
flags.DEFINE_multi_string("train_dirs", [], "Folder of HR training images; repeatable.")
renamed_flags.define_old_name("train_dir")
flags.DEFINE_multi_string("data_dir", [], "Folder(s) of HR test images, each scored apart.")
flags.DEFINE_integer("steps", 400, "Adam steps.")
flags.DEFINE_integer("crop_size", 96, "Training crop side.")
flags.DEFINE_integer("batch_size", 16, "Crops per step.")
flags.DEFINE_float("learning_rate", 0.01, "Adam learning rate on the raw kernel.")
flags.DEFINE_integer("seed", 0, "Crop sampling seed.")


def _read(folders, split):
    return [rgb for _, rgb in folder_source(folders, split).images()]


def main(argv):
    del argv
    options = flags.FLAGS
    if not options.train_dirs or not options.data_dir:
        sys.exit("fit_fixed_kernel.py: error: give --train_dirs and --data_dir")
    kernel = fixed_kernel.fixed_kernel_model(options.scale, options.parameterisation)
    losses = fixed_kernel.fit(kernel, _read(options.train_dirs, "train"), options.steps,
                              options.crop_size, options.batch_size, options.learning_rate, options.seed)
    print(f"x{options.scale} {options.parameterisation}: mean L1 {np.mean(losses[:50]):.5f} over "
          f"the first 50 steps, {np.mean(losses[-50:]):.5f} over the last 50")
    for folder in options.data_dir:
        fixed, bicubic = fixed_kernel.score(kernel, _read([folder], "validation"))
        name = display_name(folder, folder)
        print(f"{name}: fixed kernel {fixed:.2f} dB, bicubic/bicubic {bicubic:.2f} dB, "
              f"gain {fixed - bicubic:+.2f}")
    np.set_printoptions(precision=3, suppress=True, linewidth=160)
    print(kernel.kernel().numpy().reshape(kernel.kernel_size, kernel.kernel_size))


if __name__ == "__main__":
    app.run(main)
