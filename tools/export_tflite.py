"""Exports a CAR model's downscaler and upscaler as .tflite files (built-in ops only).

TFLite wants static shapes: the downscaler takes uint8 [1, --height, --width, 3] and
the upscaler the LR size that comes out, [1, ceil(H/s), ceil(W/s), 3]. Any size works
(it is padded inside, as in the SavedModel); export again for another size. See
docs/EXPORT.md.

Usage:
  python tools/export_tflite.py --model=car-x4-bicubic --out_dir=tflite \
      --height=512 --width=512 --quantization=float32 --quantization=float16
"""

from absl import app, flags

from car_tf import pretrained, renamed_flags
from car_tf.export import tflite

flags.DEFINE_string("model", None, "CAR model: a bundled name, a .keras file or a training model_dir.")
flags.DEFINE_string("out_dir", None, "Folder for the .tflite files.")
renamed_flags.define_old_name("output_dir")
flags.DEFINE_integer("height", 512, "HR input height of the downscaler.", lower_bound=1)
flags.DEFINE_integer("width", 512, "HR input width of the downscaler.", lower_bound=1)
flags.DEFINE_multi_enum("quantization", ["float32"], tflite.QUANTIZATIONS,
                        "float32; float16 weights; or dynamic_range (int8 weights, float "
                        "activations). Repeatable.")
flags.mark_flags_as_required(["model", "out_dir"])

FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        model = pretrained.load_model(FLAGS.model, "composite")
        for quantization in dict.fromkeys(FLAGS.quantization):
            paths = tflite.export_tflite(model, FLAGS.out_dir, FLAGS.height, FLAGS.width,
                                         quantization)
            print(paths["downscaler"])
            print(paths["upscaler"])
    except (ValueError, OSError) as error:
        raise SystemExit(f"export_tflite: {error}") from None


if __name__ == "__main__":
    app.run(main)
