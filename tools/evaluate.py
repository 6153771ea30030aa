"""Scores a CAR model on folders of HR images: PSNR/SSIM tables, and optional pictures.

The protocol (crop, downscalers, upscalers, metrics) is in docs/EVALUATION.md and
car_tf/evaluation/. Prints one Markdown table per dataset; with --json, stdout is exactly
one JSON object {"protocol": ..., "results": [{"dataset", "scale", "downscaler",
"upscaler", "psnr_y", "ssim_y", "psnr_rgb", "images", "lr_bpp"}, ...]} and the progress
bar, notes and logs go to stderr.

With a lossy --lr_codec, every LR image is stored with that codec at each --lr_quality
before upscaling (car_tf.evaluation.rate_distortion): tables per quality of PSNR-Y,
SSIM-Y and bits per HR pixel, Bjontegaard deltas, RD plots (with --out_dir); --json then
prints {"codec", "qualities", "points": [...], "bd": [...], "notes"}.

--html also writes <out_dir>/report.html (car_tf.evaluation.html_report): the tables with the
best values marked and every image's HR, LR and SR pictures to compare in a browser, or,
with a lossy --lr_codec, the RD plots and BD tables.

Usage:
  python tools/evaluate.py --model=car-x4-bicubic --data_dir=Set5 --data_dir=Set14 --scale=4 \
      --out_dir=eval_out --figures=2 --spectra --html
  python tools/evaluate.py --model=car-x4-bicubic-jpeg --data_dir=Set5 --lr_codec=jpeg \
      --lr_quality=30 --lr_quality=50 --lr_quality=70 --lr_quality=90 \
      --compare_model=car-x4-bicubic --compare_model=fixed=car-x4-bicubic-jpeg-fixed
"""

import contextlib
import json
import os
import sys

from absl import app, flags, logging

from car_tf.metrics import PROTOCOLS
from car_tf.ops import IMPLEMENTATIONS

flags.DEFINE_string(
    "model", None, "CAR model: a bundled name, a .keras file or a training model_dir."
)
flags.DEFINE_multi_string("data_dir", None, "Folder of HR images (repeat for several datasets).")
flags.DEFINE_integer("scale", None, "Scale factor; must match the model's (default: the model's).")
flags.DEFINE_bool("json", False, "Print one JSON object on stdout instead of Markdown tables.")
flags.DEFINE_string("out_dir", None, "Write <dataset>_x<scale>.{md,csv,json} (and pictures) here.")
flags.DEFINE_bool("per_image", False, "Also report each image's scores.")
flags.DEFINE_bool(
    "html", False,
    "Also write <out_dir>/report.html: the tables and every image's HR, LR and SR pictures "
    "to compare in a browser (with a lossy --lr_codec: the RD plots and BD tables).",
)
flags.DEFINE_enum(
    "protocol",
    "standard",
    PROTOCOLS,
    "standard: Y PSNR/SSIM as EDSR/RCAN tables; car_compat: as the CAR authors' script.",
)
flags.DEFINE_integer(
    "figures", 0, "Comparison pictures for the first N images of each dataset (needs --out_dir)."
)
flags.DEFINE_bool(
    "spectra", False, "With --figures: also the LR log-magnitude spectra (paper Fig. 6)."
)
flags.DEFINE_string(
    "baseline_model",
    None,
    "An SR model trained on bicubic LR (same forms as --model) for the bicubic + edsr row.",
)
flags.DEFINE_enum(
    "resampler_impl",
    "auto",
    IMPLEMENTATIONS,
    "Adaptive resampler implementation of the CAR model.",
)
flags.DEFINE_string(
    "lr_codec", "png",
    "How each LR image is stored before upscaling: png (lossless, the standard tables), "
    "jpeg (Pillow, 4:2:0, standard tables) or webp (lossy); jpeg and webp need --lr_quality.",
)
flags.DEFINE_multi_integer("lr_quality", [], "Codec quality 1..100; repeat for an RD curve.")
flags.DEFINE_multi_string(
    "compare_model", [],
    "With a lossy --lr_codec: another downscaler to compare, MODEL or NAME=MODEL (same forms "
    "as --model; default name: the model's); repeatable.",
)
flags.mark_flags_as_required(["model", "data_dir"])

FLAGS = flags.FLAGS


def main(argv):
    del argv
    # Imported once flags are parsed: the model and evaluation modules are heavy.
    from car_tf import codecs, evaluation, image_io, pretrained
    from car_tf.evaluation import html_report, views

    try:
        codecs.check_codec(FLAGS.lr_codec, FLAGS.lr_quality)
    except codecs.CodecError as error:
        raise SystemExit(f"evaluate: {error}") from None
    if FLAGS.compare_model and FLAGS.lr_codec == "png":
        raise app.UsageError("--compare_model needs a lossy --lr_codec (jpeg or webp)")
    if FLAGS.html and not FLAGS.out_dir:
        raise app.UsageError("--html needs --out_dir to write report.html and its pictures to")
    if FLAGS.lr_codec != "png":
        _evaluate_under_codec()
        return
    if FLAGS.figures and not FLAGS.out_dir:
        raise app.UsageError("--figures needs --out_dir to write the pictures to")
    if FLAGS.spectra and not FLAGS.figures:
        raise app.UsageError(
            "--spectra draws spectra of the --figures images; pass --figures=N too"
        )
    # Keep stdout for the result alone: anything a library prints goes to stderr. User errors
    # end the run with one line on stderr (SystemExit), not the usage text.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            model = pretrained.load_model(FLAGS.model, FLAGS.resampler_impl)
            baseline = (
                pretrained.load_model(FLAGS.baseline_model, FLAGS.resampler_impl)
                if FLAGS.baseline_model
                else None
            )
        except (ValueError, OSError) as error:
            raise SystemExit(f"evaluate: cannot load a model: {error}") from None
        if FLAGS.scale is not None and FLAGS.scale != model.scale:
            raise SystemExit(
                f"evaluate: --scale={FLAGS.scale} but model {FLAGS.model} is for scale "
                f"{model.scale}; drop --scale or pass a model of that scale"
            )
        try:
            report = evaluation.evaluate(
                model,
                FLAGS.data_dir,
                protocol=FLAGS.protocol,
                baseline=baseline,
                figures_count=FLAGS.figures,
                spectra=FLAGS.spectra,
                figures_dir=FLAGS.out_dir,
                views_dir=os.path.join(FLAGS.out_dir, views.VIEWS_FOLDER) if FLAGS.html else None,
            )
        except (evaluation.NoImagesError, image_io.ImageWriteError) as error:
            raise SystemExit(f"evaluate: {error}") from None
        for note in report.notes:
            logging.warning("%s", note)
        if FLAGS.out_dir:
            try:
                tables = evaluation.write_tables(report, FLAGS.out_dir, FLAGS.per_image)
            except OSError as error:
                raise SystemExit(
                    f"evaluate: cannot write the tables to --out_dir: {error}"
                ) from None
            for path in tables + report.figure_paths:
                logging.info("wrote %s", path)
        if FLAGS.html:
            section = html_report.report_section(report, FLAGS.out_dir, FLAGS.model)
            _write_html(section, report.notes)
    if FLAGS.json:
        print(json.dumps(report.as_json(FLAGS.per_image), allow_nan=False))
    else:
        print(evaluation.markdown(report), end="")


def _write_html(section, notes):
    """Writes <out_dir>/report.html with one section."""
    from car_tf.evaluation import html_report

    path = os.path.join(FLAGS.out_dir, "report.html")
    try:
        html_report.write_page(path, f"car_tf evaluation: {FLAGS.model}", [section], notes)
    except OSError as error:
        raise SystemExit(f"evaluate: cannot write {path}: {error}") from None
    logging.info("wrote %s", path)


def _compared_models():
    """[(name, model)] from --compare_model."""
    from car_tf import pretrained

    compared = []
    for value in FLAGS.compare_model:
        name, _, source = value.rpartition("=")
        name = name or source.rstrip("/").split("/")[-1]
        compared.append((name, pretrained.load_model(source, FLAGS.resampler_impl)))
    return compared


def _evaluate_under_codec():
    """The --lr_codec=jpeg|webp evaluation: RD tables, BD deltas and plots."""
    from car_tf import evaluation, image_io, pretrained
    from car_tf.evaluation import html_report, rate_distortion

    for unused in ("figures", "spectra", "per_image", "baseline_model"):
        if FLAGS[unused].present:
            raise app.UsageError(f"--{unused} is for the lossless tables; drop it with "
                                 f"--lr_codec={FLAGS.lr_codec}")
    with contextlib.redirect_stdout(sys.stderr):
        try:
            model = pretrained.load_model(FLAGS.model, FLAGS.resampler_impl)
            compared = _compared_models()
        except (ValueError, OSError) as error:
            raise SystemExit(f"evaluate: cannot load a model: {error}") from None
        if FLAGS.scale is not None and FLAGS.scale != model.scale:
            raise SystemExit(f"evaluate: --scale={FLAGS.scale} but model {FLAGS.model} is for "
                             f"scale {model.scale}; drop --scale or pass a model of that scale")
        try:
            report = rate_distortion.evaluate(model, FLAGS.data_dir, FLAGS.lr_codec,
                                              FLAGS.lr_quality, compared)
        except (evaluation.NoImagesError, ValueError) as error:
            raise SystemExit(f"evaluate: {error}") from None
        for note in report.notes:
            logging.warning("%s", note)
        if FLAGS.out_dir:
            try:
                paths = rate_distortion.write(report, FLAGS.out_dir)
            except (OSError, image_io.ImageWriteError) as error:
                raise SystemExit(f"evaluate: cannot write to --out_dir: {error}") from None
            for path in paths:
                logging.info("wrote %s", path)
        if FLAGS.html:
            title = f"{FLAGS.model}, LR through {FLAGS.lr_codec}"
            _write_html(html_report.rd_section(report, FLAGS.out_dir, title), report.notes)
    if FLAGS.json:
        print(json.dumps(report.as_json(), allow_nan=False))
    else:
        print(rate_distortion.markdown(report), end="")


if __name__ == "__main__":
    app.run(main)
