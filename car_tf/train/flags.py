"""absl flags of tools/train.py and tools/benchmark_train.py, and the TrainConfig they make.

The model is `car_tf.models.default_config(scale, upscaler, variant)`; every model flag
left unset keeps the variant's value, and a set one overrides it. Model flag names are
the model config keys. Flags can come from a file: `--flagfile=configs/<name>.cfg`, then
later flags on the command line override the file's.
"""

from absl import flags

from car_tf import data, models
from car_tf.models.resampler_net import KERNEL_NORMALIZATIONS
from car_tf.ops import IMPLEMENTATIONS
from car_tf.train.config import MODES, TrainConfig

flags.DEFINE_enum("mode", "car", MODES,
                  "car: train the CAR model end to end. sr_baseline: train only the upscaler "
                  "(needs --upscaler=edsr) on bicubic-downscaled 8-bit LR.")

# The model.
flags.DEFINE_enum("architecture", "car", models.ARCHITECTURES,
                  "car: ResamplerNet + adaptive resampler + upscaler. fixed: one k x k kernel "
                  "(car_tf.models.FixedKernelModel) with the bicubic upscaler; of the model "
                  "flags below it takes --resampler_kernel_normalization (signed or softmax) "
                  "and --quantize_alpha.")
flags.DEFINE_integer("scale", 4, "Downscaling / upscaling factor (2 or 4).")
flags.DEFINE_enum("upscaler", "bicubic", models.UPSCALERS, "The SR module CAR trains with.")
flags.DEFINE_enum("variant", "paper", models.VARIANTS,
                  "Picks the network widths and depths that the model flags below override.")
flags.DEFINE_enum("resampler_impl", None, IMPLEMENTATIONS,
                  "Adaptive resampler: custom op, pure-TF composite, or auto. Default: auto.")
flags.DEFINE_float("quantize_alpha", None,
                   "alpha of the quantiser's soft-round gradient (paper eq. 7), in [0, 1]; "
                   "0 = straight-through. Default: the model's.")
flags.DEFINE_integer("resampler_stem_features", None, "ResamplerNet 5x5 stem width.")
flags.DEFINE_integer("resampler_features", None, "ResamplerNet width at H/2 and H/4.")
flags.DEFINE_integer("resampler_blocks", None, "ResamplerNet residual blocks.")
flags.DEFINE_integer("resampler_trunk_features", None, "ResamplerNet trunk and head width.")
flags.DEFINE_integer("resampler_trunk_depth", None, "ResamplerNet 3x3 convs per trunk.")
flags.DEFINE_integer("resampler_head_kernel_size", None,
                     "Side of the ResamplerNet heads' last convs, 1 or 3 (paper 3).")
flags.DEFINE_enum("resampler_kernel_normalization", None, KERNEL_NORMALIZATIONS,
                  "How raw kernel outputs become weights summing to 1: clamp (authors' code), "
                  "softmax, or signed (negative taps allowed; starts from the area average).")
flags.DEFINE_integer("edsr_blocks", None, "EDSR residual blocks.")
flags.DEFINE_integer("edsr_features", None, "EDSR width.")
flags.DEFINE_float("edsr_res_scale", None, "EDSR residual scaling.")

flags.DEFINE_string("init_resampler_from", "",
                    "Start a new run's ResamplerNet from this model's (bundled name, .keras, "
                    "model_dir or checkpoint prefix model_dir/ckpt-N); ignored on resume.")
flags.DEFINE_string("init_upscaler_from", "",
                    "Start a new run's EDSR from this model's (e.g. an sr_baseline run); "
                    "ignored on resume.")

# Data.
flags.DEFINE_string("model_dir", None, "Checkpoints, config.json, TensorBoard logs; "
                    "an existing run in it is resumed.")
flags.DEFINE_multi_string("train_dirs", [], "Folder of HR training images (recursive); repeatable.")
flags.DEFINE_string("tfds_name", "", "Train on this TFDS dataset instead (e.g. div2k), "
                    "on its HR images.")
flags.DEFINE_string("tfds_data_dir", "", "TFDS data_dir (default: TFDS's own).")
flags.DEFINE_string("cache", "memory", "Where decoded training images are kept: memory, "
                    "a folder for a memory-mapped cache file, or none (decode every crop).")
flags.DEFINE_multi_string("val_dirs", [], "Folder of HR validation images; repeatable "
                          "(each reported on its own, tagged by the folder name).")

# Optimisation.
flags.DEFINE_integer("batch_size", 16, "Global batch size, split over all replicas.")
flags.DEFINE_integer("crop_size", None, "HR crop side, a multiple of lcm(8, scale). "
                     "Default: the paper's, 96 at x2 and 192 at x4.")
flags.DEFINE_integer("steps", 600_000, "Total optimizer steps (a resumed run stops here too).")
flags.DEFINE_float("learning_rate", 1e-4, "Initial Adam learning rate.")
flags.DEFINE_integer("lr_halve_every", 150_000, "Halve the learning rate every this many steps.")
flags.DEFINE_float("adam_beta1", 0.9, "Adam beta1.")
flags.DEFINE_float("adam_beta2", 0.999, "Adam beta2.")
flags.DEFINE_float("adam_epsilon", 1e-6, "Adam epsilon.")
flags.DEFINE_float("offset_weight", 0.001, "lambda of eq. 11: weight of the offset regulariser.")
flags.DEFINE_float("tv_weight", 0.005, "gamma of eq. 11: weight of the partial TV loss.")
flags.DEFINE_enum("lr_codec", "png", ["png", "jpeg"],
                  "What the LR image goes through before the upscaler: png (lossless) or "
                  "jpeg (car_tf.codecs.differentiable_jpeg, libjpeg's 4:2:0 JPEG).")
flags.DEFINE_list("lr_quality_range", ["30", "95"],
                  "LOW,HIGH: the JPEG quality of each training example is drawn uniformly "
                  "from this inclusive range.")
flags.DEFINE_float("codec_rounding_alpha", 0.5,
                   "Soft-round strength of the JPEG coefficient rounding's gradient, in "
                   "[0, 1]; 0 = straight-through.")
flags.DEFINE_float("rate_weight", 0.0,
                   "Weight of the JPEG rate proxy (bits per HR pixel) in the loss; 0 = off.")
flags.DEFINE_enum("rate_term", "bits", ["bits", "log_bits"],
                  "bits: rate_weight * bits per HR pixel. log_bits: rate_weight * l1 * ln(bits "
                  "per HR pixel), l1 held constant: a price per bit that follows each "
                  "example's distortion and rate (car_tf.train.trainer.rate_penalty).")
flags.DEFINE_enum("codec_distortion", "decoded", ["decoded", "lossless"],
                  "With a lossy --lr_codec, what the upscaler sees: decoded (the differentiable "
                  "JPEG's output) or lossless (the quantised LR; the JPEG gives only the rate "
                  "term, so no distortion gradient crosses its rounding).")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and of the crops.")

# Bookkeeping.
flags.DEFINE_integer("log_every", 100, "Console line and train/ summaries every this many steps.")
flags.DEFINE_integer("val_every", 1000, "Validate every this many steps (0: only at the end).")
flags.DEFINE_integer("checkpoint_every", 1000,
                     "Checkpoint every this many steps (0: only at the end).")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept in model_dir.")
flags.DEFINE_integer("summary_images", 2, "Validation images shown in TensorBoard.")

FLAGS = flags.FLAGS


def model_config_from_flags(flag_values=FLAGS):
    """default_config of --scale/--upscaler/--variant with the set model flags applied
    (fixed_config for --architecture=fixed)."""
    if flag_values.architecture == "fixed":
        if flag_values.upscaler != "bicubic":
            raise ValueError("--architecture=fixed has the bicubic upscaler only; drop --upscaler")
        config = models.fixed_config(flag_values.scale)
        for key in ("resampler_kernel_normalization", "quantize_alpha"):
            if flag_values[key].value is not None:
                config[key] = flag_values[key].value
        return config
    config = models.default_config(flag_values.scale, flag_values.upscaler, flag_values.variant)
    for key in models.CONFIG_KEYS:
        if key in ("scale", "upscaler"):
            continue
        value = flag_values[key].value
        if value is not None:
            config[key] = value
    return config


def train_config_from_flags(flag_values=FLAGS, for_training=True):
    """TrainConfig from parsed flags; ValueError (one line) names a bad flag."""
    if for_training and not flag_values.model_dir:
        raise ValueError("--model_dir is required")
    if for_training and not (flag_values.train_dirs or flag_values.tfds_name):
        raise ValueError("give training images with --train_dirs or --tfds_name")
    config_fields = {field.name for field in TrainConfig.__dataclass_fields__.values()}
    values = {
        name: flag_values[name].value
        for name in config_fields
        if name not in ("model", "crop_size", "model_dir") and name in flag_values
    }
    return TrainConfig(
        model=model_config_from_flags(flag_values),
        model_dir=flag_values.model_dir or "",
        crop_size=flag_values.crop_size or data.default_crop_size(flag_values.scale),
        **values,
    )
