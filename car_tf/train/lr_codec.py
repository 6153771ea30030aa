"""The LR image's codec during training: the quantised LR goes through a differentiable
JPEG (car_tf.codecs) at a quality drawn per example before the upscaler sees it.

Qualities are drawn from (seed, step, replica), so a resumed run draws what the
interrupted one would have drawn, and each replica of a distributed step draws its own.
"""

import tensorflow as tf

from car_tf import codecs

# Codecs training can go through: png is lossless (nothing to do), and WebP has no
# differentiable twin here.
TRAINABLE_CODECS = ("png", "jpeg")


RATE_TERMS = ("bits", "log_bits")
# What the upscaler sees under a lossy training codec. "decoded": the differentiable JPEG's
# output, so the distortion's gradient passes the rounding's straight-through or soft-round
# estimate. "lossless": the quantised LR itself, the codec giving only the rate term; no
# distortion gradient then crosses the rounding, whose estimate made even a fixed kernel
# worse than the lossless one (docs/RESULTS.md, "Under compression").
CODEC_DISTORTIONS = ("decoded", "lossless")


def check_training_codec(lr_codec, lr_quality_range, rate_weight, rounding_alpha,
                         rate_term="bits", codec_distortion="decoded"):
    """Raises ValueError (one line) for settings training can't honour; returns the
    quality range as a (low, high) pair of ints."""
    if lr_codec not in TRAINABLE_CODECS:
        raise ValueError(f"--lr_codec={lr_codec} can't be trained through; choose one of "
                         f"{', '.join(TRAINABLE_CODECS)} (webp has no differentiable model)")
    try:
        low, high = (int(value) for value in lr_quality_range)
    except (TypeError, ValueError):
        raise ValueError(f"--lr_quality_range must be two integers LOW,HIGH, got "
                         f"{lr_quality_range!r}") from None
    if not 1 <= low <= high <= 100:
        raise ValueError(f"--lr_quality_range must satisfy 1 <= LOW <= HIGH <= 100, "
                         f"got {low},{high}")
    if rate_weight < 0:
        raise ValueError(f"--rate_weight must be >= 0, got {rate_weight}")
    if rate_weight and lr_codec == "png":
        raise ValueError("--rate_weight needs a lossy --lr_codec (jpeg) to estimate bits of")
    if rate_term not in RATE_TERMS:
        raise ValueError(f"--rate_term must be one of {', '.join(RATE_TERMS)}, got {rate_term!r}")
    if codec_distortion not in CODEC_DISTORTIONS:
        raise ValueError(f"--codec_distortion must be one of {', '.join(CODEC_DISTORTIONS)}, "
                         f"got {codec_distortion!r}")
    if codec_distortion == "lossless" and not rate_weight:
        raise ValueError("--codec_distortion=lossless takes only the rate from the codec; "
                         "give --rate_weight > 0, or train with --lr_codec=png")
    if not 0.0 <= rounding_alpha <= 1.0:
        raise ValueError(f"--codec_rounding_alpha must be in [0, 1], got {rounding_alpha}")
    return low, high


def draw_qualities(count, quality_range, seed, step):
    """int32 [count] qualities, uniform over the inclusive range, from (seed, step, replica)."""
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group if replica is not None else 0
    stream = tf.cast(step, tf.int64) * 1024 + tf.cast(replica_id, tf.int64)
    low, high = quality_range
    return tf.random.stateless_uniform(
        [count], seed=tf.stack([tf.constant(seed, tf.int64), stream]),
        minval=low, maxval=high + 1, dtype=tf.int32,
    )


def compress_lr(lr, config, step):
    """LR float [n, h, w, 3] on 8-bit levels -> (what the decoder shows, [n, h, w, 3];
    the rate proxy in bits per HR pixel, [n]) under config's codec settings."""
    qualities = draw_qualities(tf.shape(lr)[0], config.lr_quality_range, config.seed, step)
    decoded, bits = codecs.differentiable_jpeg(
        lr, qualities, config.codec_rounding_alpha, return_bits=True)
    hr_pixels = tf.cast(tf.shape(lr)[1] * tf.shape(lr)[2] * config.scale**2, tf.float32)
    return decoded, bits / hr_pixels
