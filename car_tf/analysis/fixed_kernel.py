"""The best single, fixed downscaling kernel for the bicubic upscaler: a yardstick for CAR.

CAR predicts a kernel per LR pixel. Before asking how much content adaptivity
is worth, this module asks what one kernel shared by every pixel and image can
do: it fits a k x k kernel (k = 3s + 1, CAR's tap grid, no offsets) through the
8-bit quantiser and the bicubic upscaler on random training crops, by L1, and
scores it like the evaluation does (PSNR-Y, shave = scale).

Two parameterisations:
  "signed"   any weights summing to 1 (as ResamplerNet kernel_normalization="signed");
  "positive" a softmax, so every weight is positive (the constraint that the authors'
             clamp and our "softmax" option impose).
The gap between them is the gap between those kernel designs before any
adaptivity: docs/RESULTS.md ("Why signed kernels").
"""

import numpy as np
import tensorflow as tf

from car_tf.protocol import bicubic_downscale_uint8, crop_to_multiple, psnr_y_of_float_sr
from car_tf.models.bicubic import BicubicUpscaler
from car_tf.models.resampler_net import area_average_taps, kernel_size_for
from car_tf.ops import adaptive_resample
from car_tf.quantize import quantize_8bit

PARAMETERISATIONS = ("signed", "positive")


class FixedKernel:
    """One k x k kernel for every LR pixel, trainable in one of PARAMETERISATIONS.

    Starts from the area average of the LR pixel's own s x s block, which both
    parameterisations can express (the positive one up to a 1e-6 floor per tap).
    """

    def __init__(self, scale, parameterisation="signed"):
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"parameterisation must be one of {PARAMETERISATIONS}, "
                             f"got {parameterisation!r}")
        self.scale = int(scale)
        self.kernel_size = kernel_size_for(self.scale)
        self.parameterisation = parameterisation
        area = area_average_taps(self.scale)
        if parameterisation == "positive":
            area = tf.math.log(tf.maximum(area, 1e-6))
        self.raw = tf.Variable(area, name="raw_kernel")
        self.upscaler = BicubicUpscaler(self.scale)

    def kernel(self):
        """[k*k] weights summing to 1."""
        if self.parameterisation == "positive":
            return tf.nn.softmax(self.raw)
        taps = float(self.kernel_size**2)
        return self.raw + (1.0 - tf.reduce_sum(self.raw)) / taps

    def downscale(self, hr):
        """HR float [N, H, W, 3] -> LR float [N, H/s, W/s, 3], not quantised."""
        shape = tf.shape(hr)
        lr_shape = [shape[0], shape[1] // self.scale, shape[2] // self.scale, self.kernel_size**2]
        kernels = tf.broadcast_to(self.kernel(), lr_shape)
        zeros = tf.zeros_like(kernels)
        return adaptive_resample(hr, kernels, zeros, zeros, float(self.scale))

    def roundtrip(self, hr):
        """HR float -> quantised LR -> bicubic SR, differentiable (the quantiser's STE)."""
        return self.upscaler(quantize_8bit(self.downscale(hr)))


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


def fit(fixed_kernel, train_images, steps=400, crop_size=96, batch_size=16, learning_rate=0.01,
        seed=0):
    """Fits fixed_kernel by Adam on L1(roundtrip(hr), hr) over random crops; returns the
    per-step losses."""
    rng = np.random.default_rng(seed)
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(fixed_kernel.roundtrip(hr) - hr))
        gradient = tape.gradient(loss, fixed_kernel.raw)
        optimizer.apply_gradients([(gradient, fixed_kernel.raw)])
        return loss

    return [float(step(tf.constant(random_crops(train_images, crop_size, batch_size, rng))))
            for _ in range(steps)]


def score(fixed_kernel, images):
    """Mean PSNR-Y (standard protocol, shave = scale) of the fixed kernel and of
    bicubic/bicubic over uint8 HR images: (fixed, bicubic)."""
    scale = fixed_kernel.scale
    fixed_scores, bicubic_scores = [], []
    for image in images:
        hr = crop_to_multiple(image, max(8, scale))
        hr_float = tf.constant(hr[None], tf.float32) / 255.0
        fixed_scores.append(psnr_y_of_float_sr(hr, fixed_kernel.roundtrip(hr_float), scale))
        lr = tf.constant(bicubic_downscale_uint8(hr, scale)[None], tf.float32) / 255.0
        bicubic_scores.append(psnr_y_of_float_sr(hr, fixed_kernel.upscaler(lr), scale))
    return float(np.mean(fixed_scores)), float(np.mean(bicubic_scores))
