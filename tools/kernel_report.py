"""What a trained CAR model's content adaptivity is worth on a folder of images
(car_tf.analysis.kernel_analysis): PSNR-Y through the bicubic upscaler with the model's
kernels and offsets, without the offsets, and with one mean kernel; offset and kernel
statistics; with --lr_codec, the same after a real codec, as RD curves and BD deltas.

  python tools/kernel_report.py --model=car-x2-bicubic --data_dir=DATA/val/Set5
  python tools/kernel_report.py --model=car-x4-bicubic-jpeg --data_dir=DATA/val/Set5 \
      --lr_codec=jpeg --lr_quality=30 --lr_quality=50 --lr_quality=70 --lr_quality=90
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
flags.DEFINE_string("lr_codec", "png", "Also score each variant's LR stored with this codec "
                    "(jpeg or webp) at every --lr_quality: RD curves and BD deltas against "
                    "the mean kernel. png: lossless only.")
flags.DEFINE_multi_integer("lr_quality", [], "Codec quality 1..100; repeat (4 or more for BD).")


def main(argv):
    del argv
    options = flags.FLAGS
    if not options.data_dir:
        sys.exit("kernel_report.py: error: give --data_dir")
    from car_tf import codecs

    try:
        codecs.check_codec(options.lr_codec, options.lr_quality)
    except codecs.CodecError as error:
        sys.exit(f"kernel_report.py: error: {error}")
    try:
        model = pretrained.load_model(options.model)
    except (ValueError, OSError) as error:
        sys.exit(f"kernel_report.py: error: {error}")
    np.set_printoptions(precision=3, suppress=True, linewidth=200)
    for folder in options.data_dir:
        images = [rgb for _, rgb in folder_source(folder, "validation").images()]
        report = kernel_analysis.analyse(model, images, options.lr_codec, options.lr_quality)
        print(f"## {display_name(folder, folder)}")
        for line in report.lines():
            print(line)
        print("mean kernel:")
        print(report.mean_kernel)


if __name__ == "__main__":
    app.run(main)
