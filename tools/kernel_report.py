"""What a trained CAR model's content adaptivity is worth on a folder of images
(car_tf.kernel_analysis): PSNR-Y through the bicubic upscaler with the model's kernels and
offsets, without the offsets, and with one mean kernel; offset and kernel statistics.

  python tools/kernel_report.py --model=car-x2-bicubic --data_dir=DATA/val/Set5
"""

import sys

import numpy as np
from absl import app, flags

from car_tf import pretrained
from car_tf.analysis import kernel_analysis
from car_tf.data.folders import display_name, folder_source

flags.DEFINE_string("model", "car-x4-bicubic",
                    "Bundled model name, .keras file, training model_dir or model_dir/ckpt-N.")
flags.DEFINE_multi_string("data_dir", [], "Folder(s) of HR images, each reported apart.")


def main(argv):
    del argv
    options = flags.FLAGS
    if not options.data_dir:
        sys.exit("kernel_report.py: error: give --data_dir")
    try:
        model = pretrained.load_model(options.model)
    except (ValueError, OSError) as error:
        sys.exit(f"kernel_report.py: error: {error}")
    np.set_printoptions(precision=3, suppress=True, linewidth=200)
    for folder in options.data_dir:
        images = [rgb for _, rgb in folder_source(folder, "validation").images()]
        report = kernel_analysis.analyse(model, images)
        print(f"## {display_name(folder, folder)}")
        for line in report.lines():
            print(line)
        print("mean kernel:")
        print(report.mean_kernel)


if __name__ == "__main__":
    app.run(main)
