"""`make demo`: round-trip the bundled sample images with the bundled models.

For every bundled CAR model it downscales the sample images with CAR and with
bicubic, upscales them again, and prints the PSNR/SSIM table (Y channel,
shave = scale) and writes comparison pictures. When the package holds no
trained model yet, it falls back to resampling with fixed bicubic-like
kernels through the adaptive resampler op, which shows the op at work.
"""

import os

import numpy as np
import tensorflow as tf

from car_tf import evaluation, image_io, metrics, pretrained
from car_tf.protocol import bicubic_downscale_uint8, crop_to_multiple, sr_to_uint8
from car_tf.models import BicubicUpscaler, kernel_size_for, size_multiple
from car_tf.ops import adaptive_resample, unmoved_tap_positions
from car_tf.sample_data import SAMPLE_DIR, sample_images

# The order the demo shows the bundled models in.
DEMO_MODELS = ("car-x4-bicubic", "car-x2-bicubic", "car-x4-edsr-lite", "car-x2-edsr-lite")


def sr_baseline_name(car_name):
    """The bundled EDSR trained on bicubic LR that pairs with a CAR/EDSR model, if any."""
    scale = pretrained.read_config(os.path.join(pretrained.PRETRAINED_DIR, car_name))["scale"]
    return f"edsr-x{scale}-lite-bicubic-lr"


def bicubic_like_kernels(scale, out_height, out_width):
    """Fixed [1, h, w, k*k] kernels: a Keys cubic (a = -0.5) stretched by `scale`,
    truncated to the k x k taps and renormalised. With zero offsets the op then
    behaves like an antialiased bicubic downscale, truncated to the kernel."""
    k = kernel_size_for(scale)
    distance = unmoved_tap_positions(k) / scale
    a = -0.5
    d = np.abs(distance)
    cubic = np.where(
        d <= 1,
        (a + 2) * d**3 - (a + 3) * d**2 + 1,
        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0),
    )
    kernel = np.outer(cubic, cubic).reshape(-1)
    kernel /= kernel.sum()
    return np.broadcast_to(kernel, (1, out_height, out_width, k * k)).astype(np.float32)


def fixed_kernel_demo(out_dir, scale=4):
    """Downscales the samples with fixed kernels through the op; prints PSNR after bicubic up."""
    multiple = size_multiple(scale)
    print(f"No trained model is bundled yet: resampling with fixed bicubic-like kernels, x{scale}.")
    print("| image | PSNR-Y bicubic down (dB) | PSNR-Y fixed-kernel op down (dB) |")
    print("|---|---:|---:|")
    upscale = BicubicUpscaler(scale)
    for path in sample_images():
        hr = crop_to_multiple(image_io.read_image(path).rgb, multiple)
        height, width = hr.shape[0] // scale, hr.shape[1] // scale
        kernels = bicubic_like_kernels(scale, height, width)
        zeros = np.zeros_like(kernels)
        hr_float = tf.constant(hr[np.newaxis], tf.float32) / 255.0
        lr = adaptive_resample(hr_float, kernels, zeros, zeros, offset_unit=scale)
        lr_uint8 = np.asarray(tf.cast(tf.round(tf.clip_by_value(lr, 0, 1) * 255), tf.uint8))[0]
        bicubic_lr = bicubic_downscale_uint8(hr, scale)
        scores = []
        for low in (bicubic_lr, lr_uint8):
            sr = upscale(tf.constant(low[np.newaxis], tf.float32) / 255.0)
            sr = sr_to_uint8(sr, "standard")[0] / 255.0
            scores.append(metrics.psnr_y(sr, hr / 255.0, shave=scale))
        name = os.path.splitext(os.path.basename(path))[0]
        image_io.write_image(os.path.join(out_dir, f"{name}_x{scale}_fixed_kernel_lr.png"), lr_uint8)
        print(f"| {name} | {scores[0]:.2f} | {scores[1]:.2f} |")
    print(f"\nLR images written to {out_dir}/")


def run_demo(out_dir, model_names=None, figures=5):
    """Evaluates each bundled (or named) model on the sample images; prints the tables."""
    os.makedirs(out_dir, exist_ok=True)
    bundled = pretrained.bundled_models()
    names = list(model_names or [name for name in DEMO_MODELS if name in bundled])
    if not names:
        fixed_kernel_demo(out_dir)
        return
    for name in names:
        model = pretrained.load_model(name)
        baseline = None
        if model.upscaler_name == "edsr" and sr_baseline_name(name) in bundled:
            baseline = pretrained.load_model(sr_baseline_name(name))
        report = evaluation.evaluate_folder(
            model, SAMPLE_DIR, baseline=baseline, dataset="samples", figures_count=figures,
            figures_dir=out_dir, progress_stream=False,
        )
        print(f"## {name}\n")
        print(evaluation.markdown(report))
        evaluation.write_tables(report, os.path.join(out_dir, name))
    print(f"Tables and comparison pictures are in {out_dir}/")
