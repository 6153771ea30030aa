"""Exports a CAR model as a SavedModel for TensorFlow Serving.

Writes <export_base>/<version>/ with the signatures downscale (= serving_default),
upscale, downscale_image_bytes and upscale_image_bytes; see docs/EXPORT.md and
car_tf/export/savedmodel.py. The default --resampler_impl=composite uses built-in TF ops
only; --resampler_impl=custom keeps car_tf's AdaptiveResample op, for a TF Serving
build that links it in.

Usage:
  python tools/export_savedmodel.py --model=car-x4-bicubic --export_base=/models/car_x4
  python tools/export_savedmodel.py --model=runs/x4/model.keras --export_base=out/car --version=2
"""

from absl import app, flags

flags.DEFINE_string("model", None, "CAR model: a bundled name, a .keras file or a training model_dir.")
flags.DEFINE_string("export_base", None, "Model base path; the SavedModel goes to <export_base>/<version>/.")
flags.DEFINE_integer("version", 1, "TF Serving version directory (a positive integer).", lower_bound=1)
flags.DEFINE_enum(
    "resampler_impl",
    "composite",
    ["composite", "custom"],
    "composite: built-in TF ops only (stock TF Serving); custom: needs the car_tf op where it loads.",
)
flags.DEFINE_bool("overwrite", False, "Replace an existing <export_base>/<version>/.")
flags.DEFINE_integer("tile", 1024, "Tile side in HR pixels of the downscale signatures, inside the "
                     "graph (0 = whole image at once; memory then grows with the image).",
                     lower_bound=0)
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"],
                  "How the graph's ResamplerNet runs: float32 (any CPU), or mixed_bfloat16 "
                  "(bfloat16 convolutions: about half the network's time on a CPU with "
                  "AVX512-BF16 or AMX, slower on one without; LR within a level).")
flags.mark_flags_as_required(["model", "export_base"])

FLAGS = flags.FLAGS


def main(argv):
    del argv
    # Imported after flag parsing so that --help is quick.
    from car_tf import pretrained
    from car_tf.export import savedmodel

    try:
        model = pretrained.load_model(FLAGS.model, FLAGS.resampler_impl)
        path = savedmodel.export_saved_model(
            model, FLAGS.export_base, FLAGS.version, FLAGS.resampler_impl, FLAGS.overwrite,
            tile=FLAGS.tile, precision=FLAGS.precision,
        )
    except (ValueError, OSError, RuntimeError) as error:
        raise SystemExit(f"export_savedmodel: {error}") from None
    print(path)


if __name__ == "__main__":
    app.run(main)
