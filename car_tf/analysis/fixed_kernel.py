"""The best single, fixed downscaling kernel for the bicubic upscaler: a yardstick for CAR.

CAR predicts a kernel per LR pixel. Before asking how much content adaptivity
is worth, this module asks what one kernel shared by every pixel and image can
do: it fits a k x k kernel (k = 3s + 1, CAR's tap grid, no offsets) through the
8-bit quantiser and the bicubic upscaler on random training crops, by L1, and
scores it like the evaluation does (PSNR-Y, shave = scale).

The kernel is car_tf.models.fixed's FixedKernelModel. Two parameterisations:
  "signed"   any weights summing to 1 (as ResamplerNet kernel_normalization="signed");
  "positive" a softmax, so every weight is positive (the constraint that the authors'
             clamp and our "softmax" option impose).
The gap between them is the gap between those kernel designs before any
adaptivity: docs/RESULTS.md ("Why signed kernels").
"""

import numpy as np
import tensorflow as tf

from car_tf.models.fixed import FixedKernelModel
from car_tf.models.resampler_net import size_multiple
from car_tf.protocol import bicubic_downscale_uint8, crop_to_multiple, psnr_y_of_float_sr

# parameterisation -> the FixedKernelModel's kernel normalisation.
PARAMETERISATIONS = {"signed": "signed", "positive": "softmax"}


def fixed_kernel_model(scale, parameterisation="signed"):
    """A FixedKernelModel (car_tf.models.fixed) starting from the area average, its
    quantiser straight-through (alpha 0) as this yardstick has always fitted it."""
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {tuple(PARAMETERISATIONS)}, "
                         f"got {parameterisation!r}")
    return FixedKernelModel(scale, resampler_kernel_normalization=PARAMETERISATIONS[parameterisation],
                            quantize_alpha=0.0)


def random_crops(images, crop_size, batch_size, rng):
    """A float32 [batch, crop, crop, 3] batch of random crops (random flips) from uint8 images."""
    crops = []
    usable = [image for image in images if min(image.shape[:2]) >= crop_size]
    if not usable:
        raise ValueError(f"no training image is at least {crop_size} pixels on each side")
    for index in rng.integers(0, len(usable), batch_size):
        image = usable[index]
        top = rng.integers(0, image.shape[0] - crop_size + 1)
        left = rng.integers(0, image.shape[1] - crop_size + 1)
        crop = image[top:top + crop_size, left:left + crop_size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        crops.append(crop)
    return np.stack(crops).astype(np.float32) / 255.0


def fit(model, train_images, steps=400, crop_size=96, batch_size=16, learning_rate=0.01,
        seed=0):
    """Fits a FixedKernelModel's kernel by Adam on L1(sr, hr) (HR -> kernel -> 8 bits ->
    bicubic) over random crops; returns the per-step losses."""
    rng = np.random.default_rng(seed)
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(hr)["sr"] - hr))
        gradient = tape.gradient(loss, model.raw_kernel)
        optimizer.apply_gradients([(gradient, model.raw_kernel)])
        return loss

    return [float(step(tf.constant(random_crops(train_images, crop_size, batch_size, rng))))
            for _ in range(steps)]


def score(model, images):
    """Mean PSNR-Y (standard protocol, shave = scale) of a FixedKernelModel and of
    bicubic/bicubic over uint8 HR images: (fixed, bicubic)."""
    scale = model.scale
    fixed_scores, bicubic_scores = [], []
    for image in images:
        hr = crop_to_multiple(image, size_multiple(scale))
        hr_float = tf.constant(hr[None], tf.float32) / 255.0
        fixed_scores.append(psnr_y_of_float_sr(hr, model(hr_float)["sr"], scale))
        lr = tf.constant(bicubic_downscale_uint8(hr, scale)[None], tf.float32) / 255.0
        bicubic_scores.append(psnr_y_of_float_sr(hr, model.upscale(lr), scale))
    return float(np.mean(fixed_scores)), float(np.mean(bicubic_scores))
