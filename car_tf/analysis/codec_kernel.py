"""The best fixed kernel under a real codec, searched without gradients.

Why no gradients: training through car_tf.codecs.differentiable_jpeg made even one fixed
kernel worse than the lossless optimum (docs/RESULTS.md, "Under compression"). Its
straight-through and soft-round estimates of the rounding's gradient treat a DCT
coefficient that the quantiser zeroes as if it passed, so that sweep could not tell a
bad estimator from a codec that no kernel can exploit. This module asks the codec itself.

A kernel that is separable and mirror-symmetric about the LR pixel's centre has few free
weights: one per tap distance, less one for the sum (2 at x2, 5 at x4). That is few enough
for a direct search (Nelder-Mead) whose objective is the figure we report: the Bjontegaard
delta rate against bicubic LR, under the real codec through Pillow, over a sample of
training images, upscaled by bicubic and scored with the standard protocol
(car_tf.evaluation.rate_distortion.coded_scores, the evaluation's own scoring).

Tap grid: CAR's k = 3s + 1 taps a side, tap j at j - k/2 HR pixels from the LR pixel's
centre (car_tf.ops.composite.unmoved_tap_positions). Tap j's mirror is tap k - j; tap 0
has none inside the grid, so it is 0 here (the lossless kernels hold little there).
"""

import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from car_tf import bjontegaard, codecs, pretrained
from car_tf.evaluation.rate_distortion import coded_scores
from car_tf.fixed_numpy import FixedKernel, downscale_uint8
from car_tf.models.bicubic import BicubicUpscaler
from car_tf.models.fixed import FixedKernelModel, fixed_config, fixed_kernel_downscale
from car_tf.models.resampler_net import kernel_size_for
from car_tf.ops.composite import unmoved_tap_positions
from car_tf.protocol import bicubic_downscale_uint8, crop_for_scale
from car_tf.train.model_dir import write_json


def _distance_index(scale):
    """int [k]: for each tap of a row, the rank of its distance from the centre (0 the
    nearest), or -1 for tap 0, which has no mirror."""
    distances = np.abs(unmoved_tap_positions(kernel_size_for(scale)))
    unique = np.unique(distances[1:])
    index = np.searchsorted(unique, distances)
    index[0] = -1
    return index, len(unique)


def free_weights(scale):
    """How many free weights a symmetric separable kernel of this scale has."""
    return _distance_index(scale)[1] - 1


def symmetric_taps(scale, relative):
    """float64 [k]: the taps of one row, mirror-symmetric, summing to 1.

    relative: the weights of the 2nd, 3rd, ... nearest tap distances, relative to the
    nearest one's (whose weight is 1 before the taps are divided by their sum)."""
    index, distances = _distance_index(scale)
    relative = np.asarray(relative, np.float64).reshape(-1)
    if relative.size != distances - 1:
        raise ValueError(f"a scale-{scale} symmetric kernel has {distances - 1} relative "
                         f"weights, got {relative.size}")
    by_distance = np.concatenate([[1.0], relative])
    taps = np.where(index >= 0, by_distance[np.maximum(index, 0)], 0.0)
    total = taps.sum()
    if not abs(total) > 1e-6:
        raise ValueError("the relative weights sum to 0; no kernel sums to 1 with them")
    return taps / total


def separable_kernel(scale, relative):
    """float32 [k, k]: the outer product of symmetric_taps with itself (sums to 1)."""
    taps = symmetric_taps(scale, relative)
    return np.outer(taps, taps).astype(np.float32)


def relative_weights(kernel, scale):
    """The symmetric separable kernel nearest to a [k, k] kernel, as its relative
    weights: the rank-1 part of the kernel (SVD), its rows and columns averaged, mirrored
    taps averaged, divided by the nearest distance's weight."""
    kernel = np.asarray(kernel, np.float64)
    k = kernel_size_for(scale)
    if kernel.shape != (k, k):
        raise ValueError(f"a scale-{scale} kernel is {k} x {k}, got {kernel.shape}")
    left, singular, right = np.linalg.svd(kernel)
    row = (left[:, 0] + right[0]) * math.sqrt(singular[0]) / 2.0
    row *= np.sign(row.sum()) or 1.0
    index, distances = _distance_index(scale)
    by_distance = np.array([row[index == d].mean() for d in range(distances)])
    if not abs(by_distance[0]) > 1e-9:
        raise ValueError("the kernel's nearest taps are 0; it has no relative weights")
    return by_distance[1:] / by_distance[0]


def fixed_model(kernel, scale):
    """A FixedKernelModel (signed) whose kernel is `kernel` [k, k] (which sums to 1)."""
    model = FixedKernelModel(scale)
    # Signed normalisation adds (1 - sum) / k^2 to each raw weight: zero for a kernel that
    # already sums to 1, so the raw weights are the kernel.
    model.raw_kernel.assign(np.asarray(kernel, np.float32).reshape(-1))
    return model


class CodecObjective:
    """Rate-distortion curves of downscalers over a fixed set of HR images.

    Each LR goes through `codec` at every quality (coded_scores: the real codec, the
    bicubic upscaler, PSNR-Y with shave = scale); a curve is the mean bits per HR pixel
    and the mean PSNR-Y at each quality, as rate_distortion.evaluate_folder averages them.
    The reference is the protocol's bicubic downscale.
    """

    def __init__(self, hr_images, scale, codec, qualities):
        codecs.check_codec(codec, qualities)
        if codec == "png" or not qualities:
            raise codecs.CodecError("a codec search needs a lossy codec (jpeg or webp) and "
                                    "its qualities")
        self.scale = int(scale)
        self.codec = codec
        self.qualities = sorted(int(quality) for quality in qualities)
        if len(self.qualities) < bjontegaard.MIN_POINTS:
            raise ValueError(f"a Bjontegaard delta needs at least {bjontegaard.MIN_POINTS} "
                             f"qualities, got {len(self.qualities)}")
        cropped = [crop_for_scale(image, self.scale) for image in hr_images]
        self.images = [image for image in cropped if image is not None]
        if not self.images:
            raise ValueError(f"no image is large enough for scale {self.scale}")
        self._upscale = BicubicUpscaler(self.scale)
        self.reference = self.curve(lambda hr: bicubic_downscale_uint8(hr, self.scale))

    def curve(self, downscale):
        """(rates [Q], psnrs [Q]): `downscale` (uint8 HR -> uint8 LR) over the images."""
        sums = np.zeros((len(self.qualities), 2))
        for hr in self.images:
            lr = downscale(hr)
            hr01 = hr.astype(np.float64) / 255.0
            for row, quality in enumerate(self.qualities):
                psnr, _, bpp = coded_scores(hr01, lr, self.codec, quality, self._upscale,
                                            self.scale, ssim=False)
                sums[row] += (bpp, psnr)
        means = sums / len(self.images)
        return means[:, 0], means[:, 1]

    def kernel_curve(self, kernel):
        """The curve of a fixed kernel [k, k] (computed in NumPy, as `car downscale` does)."""
        fixed = FixedKernel(kernel, self.scale)
        return self.curve(lambda hr: downscale_uint8(hr, fixed))

    def bd_rate(self, curve):
        """BD-rate (%) of a curve against the bicubic reference; inf when they don't overlap."""
        try:
            return bjontegaard.bd_rate(*self.reference, *curve)
        except bjontegaard.NoOverlapError:
            return math.inf

    def bd_psnr(self, curve):
        try:
            return bjontegaard.bd_psnr(*self.reference, *curve)
        except bjontegaard.NoOverlapError:
            return -math.inf


def delta_line(reference, test):
    """"BD-rate x%, BD-PSNR y dB" of curve `test` against curve `reference` (each a
    (rates, psnrs) pair), or a note that they do not overlap."""
    try:
        return (f"BD-rate {bjontegaard.bd_rate(*reference, *test):+.2f}%, "
                f"BD-PSNR {bjontegaard.bd_psnr(*reference, *test):+.3f} dB")
    except bjontegaard.NoOverlapError:
        return "the curves do not overlap"


@dataclasses.dataclass
class SearchResult:
    """best: the best point found; value: its objective; history: the best value after
    each iteration; evaluations: how many times the objective ran."""

    best: np.ndarray
    value: float
    history: list
    evaluations: int


def nelder_mead(objective, start, step, iterations, report=None):
    """Minimises `objective` (a function of a 1-D array) from `start` by Nelder-Mead.

    The initial simplex is `start` and `start` + step along each axis; the coefficients
    are the standard ones (reflection 1, expansion 2, contraction 1/2, shrink 1/2). The
    codec makes the objective noisy and piecewise constant, where a derivative-based
    method would stall; a simplex only compares values. report: optional
    callable(iteration, best value, best point) after each iteration.
    """
    start = np.asarray(start, np.float64).reshape(-1)
    points = [start] + [start + step * axis for axis in np.eye(start.size)]
    evaluations = [0]

    def evaluate(point):
        evaluations[0] += 1
        return float(objective(point))

    values = [evaluate(point) for point in points]
    history = []
    for iteration in range(int(iterations)):
        order = np.argsort(values, kind="stable")
        points = [points[i] for i in order]
        values = [values[i] for i in order]
        centroid = np.mean(points[:-1], axis=0)
        reflected = centroid + (centroid - points[-1])
        reflected_value = evaluate(reflected)
        if reflected_value < values[0]:
            expanded = centroid + 2.0 * (centroid - points[-1])
            expanded_value = evaluate(expanded)
            points[-1], values[-1] = ((expanded, expanded_value) if expanded_value < reflected_value
                                      else (reflected, reflected_value))
        elif reflected_value < values[-2]:
            points[-1], values[-1] = reflected, reflected_value
        else:
            contracted = centroid + 0.5 * (points[-1] - centroid)
            contracted_value = evaluate(contracted)
            if contracted_value < values[-1]:
                points[-1], values[-1] = contracted, contracted_value
            else:
                for i in range(1, len(points)):
                    points[i] = points[0] + 0.5 * (points[i] - points[0])
                    values[i] = evaluate(points[i])
        best = int(np.argmin(values))
        history.append(values[best])
        if report is not None:
            report(iteration, values[best], points[best])
    best = int(np.argmin(values))
    return SearchResult(points[best], values[best], history, evaluations[0])


def search(objective, start_kernel, iterations, step=0.05, report=None):
    """The symmetric separable kernel with the lowest BD-rate under `objective` (a
    CodecObjective), starting from the one nearest `start_kernel` [k, k]:
    (kernel [k, k], SearchResult over its relative weights)."""
    scale = objective.scale

    def bd_rate_of(relative):
        try:
            kernel = separable_kernel(scale, relative)
        except ValueError:
            return math.inf
        return objective.bd_rate(objective.kernel_curve(kernel))

    result = nelder_mead(bd_rate_of, relative_weights(start_kernel, scale), step, iterations,
                         report)
    return separable_kernel(scale, result.best), result


def write_model_dir(kernel, scale, model_dir, settings):
    """Writes `kernel` as a fixed-kernel model folder that every model flag takes and
    tools/package_model.py bundles: config.json, model.weights.h5, and train_config.json
    with mode "car" and `settings` (how the kernel was found) under "search"."""
    os.makedirs(model_dir, exist_ok=True)
    fixed_model(kernel, scale).save_weights(os.path.join(model_dir, pretrained.WEIGHTS))
    write_json(os.path.join(model_dir, pretrained.CONFIG), fixed_config(scale))
    write_json(os.path.join(model_dir, pretrained.TRAIN_CONFIG),
               {"mode": "car", "search": settings})
    return model_dir


# The content adaptive yardstick. A per-pixel blend of two linear downscalers is a
# per-pixel kernel (CAR with zero offsets), and it has two parameters: few enough to
# search on the real codec, as the fixed kernel is, so that adaptivity is judged
# without any gradient through the rounding.
BLEND_WINDOW = 5  # LR pixels a side of the window that measures local detail.
BLEND_MAX = 2.0  # w runs from 0 (bicubic) to 2 (the kernel's detail doubled).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def blend_lr(bicubic, detail, weights):
    """uint8 LR B + w (K - B): `bicubic` B and `detail` K - B float [h, w, 3] in 0..1 (as
    BlendDownscaler.parts gives them), `weights` w a scalar or [h, w, 1]."""
    return np.rint(np.clip((bicubic + weights * detail) * 255.0, 0.0, 255.0)).astype(np.uint8)


class BlendDownscaler:
    """LR = B + w (K - B), per LR pixel: B the protocol's antialiased bicubic LR and K
    a fixed kernel's (both in float, before the 8-bit rounding), with
      w = BLEND_MAX * sigmoid(offset + slope * z),
    z the log10 of the local energy of (K - B) in Y over a BLEND_WINDOW square,
    standardised by `z_mean` and `z_std`. slope = 0 is one fixed blend of the two
    downscalers; slope > 0 keeps more of the kernel's detail where there is more of it.
    Call it with a uint8 HR [H, W, 3] (a multiple of the scale); it returns uint8 LR."""

    def __init__(self, kernel, scale, offset, slope, z_mean=0.0, z_std=1.0):
        self.kernel = np.asarray(kernel, np.float32)
        self.scale = int(scale)
        self.offset, self.slope = float(offset), float(slope)
        self.z_mean, self.z_std = float(z_mean), float(z_std)

    def parts(self, hr_uint8):
        """(B [h, w, 3] float64 in 0..1, D = K - B, z [h, w] unstandardised)."""
        hr = tf.constant(hr_uint8[np.newaxis], tf.float32) / 255.0
        height, width = hr_uint8.shape[0] // self.scale, hr_uint8.shape[1] // self.scale
        bicubic = tf.image.resize(hr, [height, width], method="bicubic", antialias=True)
        kernel = fixed_kernel_downscale(hr, tf.constant(self.kernel.reshape(-1)), self.scale)
        bicubic = bicubic.numpy()[0].astype(np.float64)
        detail = kernel.numpy()[0].astype(np.float64) - bicubic
        energy = tf.nn.avg_pool2d((detail @ _Y_WEIGHTS)[np.newaxis, :, :, np.newaxis] ** 2,
                                  BLEND_WINDOW, 1, "SAME").numpy()[0, :, :, 0]
        return bicubic, detail, np.log10(energy + 1e-7)

    def weights(self, z):
        return BLEND_MAX / (1.0 + np.exp(-(self.offset + self.slope * (z - self.z_mean)
                                           / self.z_std)))

    def __call__(self, hr_uint8):
        bicubic, detail, z = self.parts(hr_uint8)
        return blend_lr(bicubic, detail, self.weights(z)[..., np.newaxis])


def blend_search(objective, kernel, iterations, adaptive, step=0.5, report=None):
    """The BlendDownscaler of `kernel` with the lowest BD-rate under `objective`: with
    `adaptive` over (offset, slope) from the fixed kernel itself (w = 1, slope 0),
    otherwise over the offset alone (slope 0, one fixed blend). z is standardised over
    the objective's images. Returns (BlendDownscaler, SearchResult)."""
    scale = objective.scale
    probe = BlendDownscaler(kernel, scale, 0.0, 0.0)
    # The two downscales and z do not depend on the blend: computed once per image, keyed by
    # the image object, which objective.curve hands back for each candidate.
    parts = {id(hr): probe.parts(hr) for hr in objective.images}
    z = np.concatenate([part[2].ravel() for part in parts.values()])
    z_mean, z_std = float(z.mean()), float(z.std()) or 1.0

    def downscaler(point):
        offset, slope = (point[0], point[1]) if adaptive else (point[0], 0.0)
        return BlendDownscaler(kernel, scale, offset, slope, z_mean, z_std)

    def from_parts(blend):
        def downscale(hr):
            bicubic, detail, z = parts[id(hr)]
            return blend_lr(bicubic, detail, blend.weights(z)[..., np.newaxis])
        return downscale

    unit = math.log(1.0 / (BLEND_MAX - 1.0))  # the offset at which w = 1 with slope 0
    start = [unit, 0.0] if adaptive else [unit]
    result = nelder_mead(lambda point: objective.bd_rate(objective.curve(
        from_parts(downscaler(point)))), start, step, iterations, report)
    return downscaler(result.best), result
