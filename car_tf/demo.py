"""`make demo`: round-trip the bundled sample images with the bundled models.

For every bundled CAR model it downscales the sample images with CAR and with
bicubic, upscales them again, prints the PSNR/SSIM table (Y channel,
shave = scale) and writes the tables and comparison pictures to
<out_dir>/<model name>/, so each model keeps its own pictures. <out_dir>/index.html
shows every model's tables and images on one page (car_tf.evaluation.html_report).
Last, it prints what the default models (and their codec-aware versions, where bundled)
save under real JPEG: the Bjontegaard delta rate and PSNR of their LR against bicubic LR.
"""

import os

from car_tf import evaluation, pretrained
from car_tf.evaluation import html_report, rate_distortion, views
from car_tf.sample_data import SAMPLE_DIR

# The order the demo shows the bundled models in.
DEMO_MODELS = ("car-x4-bicubic", "car-x2-bicubic", "car-x4-fixed", "car-x2-fixed", "car-x4-edsr-lite",
               "car-x2-edsr-lite")
# The qualities of the JPEG summary: the range docs/RESULTS.md reports BD figures over.
JPEG_QUALITIES = (30, 50, 70, 90)


def sr_baseline_name(car_name):
    """The bundled EDSR trained on bicubic LR that pairs with a CAR/EDSR model, if any."""
    scale = pretrained.read_config(os.path.join(pretrained.PRETRAINED_DIR, car_name))["scale"]
    return f"edsr-x{scale}-lite-bicubic-lr"


def run_demo(out_dir, model_names=None, figures=5, html=True):
    """Evaluates each named model (default: the bundled DEMO_MODELS) on the sample images;
    prints the tables; with `html`, also writes the pictures and <out_dir>/index.html.
    Returns the folders written, one per model."""
    bundled = pretrained.bundled_models()
    names = list(model_names or [name for name in DEMO_MODELS if name in bundled])
    folders, reports = [], []
    for name in names:
        model = pretrained.load_model(name)
        baseline = None
        if model.upscaler_name == "edsr" and sr_baseline_name(name) in bundled:
            baseline = pretrained.load_model(sr_baseline_name(name))
        folder = os.path.join(out_dir, os.path.basename(os.path.normpath(name)))
        report = evaluation.evaluate_folder(
            model, SAMPLE_DIR, baseline=baseline, dataset="samples", figures_count=figures,
            figures_dir=folder, progress_stream=False,
            views_dir=os.path.join(folder, views.VIEWS_FOLDER) if html else None,
        )
        print(f"## {name}\n")
        print(evaluation.markdown(report))
        evaluation.write_tables(report, folder)
        folders.append(folder)
        reports.append((name, report))
    print(f"Tables and comparison pictures are in {out_dir}/<model name>/", end="")
    if html:
        print(f"; open {write_index(out_dir, reports)} in a browser to compare the images", end="")
    print()
    if model_names is None:
        print_jpeg_summary(bundled)
    return folders


def jpeg_summary_lines(scale, bundled):
    """One line per model: the default model of `scale` and its codec-aware version (when
    bundled), BD-rate and BD-PSNR of its LR against bicubic LR under real JPEG at
    JPEG_QUALITIES, bicubic upscaler, on the sample images."""
    default = pretrained.default_model_name(scale)
    codec_aware = f"{default}-jpeg"
    extra = [(codec_aware, pretrained.load_model(codec_aware))] if codec_aware in bundled else []
    report = rate_distortion.evaluate(pretrained.load_model(default), [SAMPLE_DIR], "jpeg",
                                      JPEG_QUALITIES, extra=extra)
    lines = []
    for delta in report.deltas:
        if (delta.reference, delta.upscaler) != (rate_distortion.REFERENCE, "bicubic"):
            continue
        if delta.downscaler in ("car", codec_aware):
            name = default if delta.downscaler == "car" else codec_aware
            lines.append(f"  {name}: BD-rate {delta.bd_rate:+.1f}%, BD-PSNR "
                         f"{delta.bd_psnr:+.2f} dB against bicubic LR")
    return lines


def print_jpeg_summary(bundled):
    """Prints jpeg_summary_lines for x4 and x2."""
    qualities = ", ".join(str(q) for q in JPEG_QUALITIES)
    print(f"\n## Under JPEG (Pillow, 4:2:0, qualities {qualities}; bicubic upscaler; "
          "the sample images)\n")
    for scale in (4, 2):
        for line in jpeg_summary_lines(scale, bundled):
            print(line)
    print("\nNegative BD-rate: fewer bits at the same PSNR-Y (docs/RESULTS.md, "
          "'Under compression', has Set5 and Set14).")


def write_index(out_dir, reports):
    """Writes <out_dir>/index.html from [(model name, Report with views)]; returns its path."""
    sections = [html_report.report_section(report, out_dir, name) for name, report in reports]
    return html_report.write_page(
        os.path.join(out_dir, "index.html"), "car_tf demo: bundled models on the sample images",
        sections)
