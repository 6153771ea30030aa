"""TrainConfig: every setting of a training run, and the two training modes.

Modes:
  car          ResamplerNet, quantiser and upscaler trained end to end on the loss of
               paper eq. 11 (car_tf.losses.car_losses), as in the paper.
  sr_baseline  only the upscaler (EDSR), on HR images downscaled by the protocol's
               bicubic 8-bit downscale (car_tf.protocol.bicubic_downscale): the "bicubic
               down, same SR network up" baseline. The CARModel is still built and saved
               whole, so `model.upscale(lr)` loads like any CAR model; its ResamplerNet
               keeps its initial weights and is not meant to be used.
"""

import dataclasses

from car_tf import data, models
from car_tf.train.lr_codec import check_training_codec

MODES = ("car", "sr_baseline")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run. Field names are the tools/train.py flag names.

    model: the resolved model config (keys of car_tf.models.default_config).
    batch_size: the global batch, split over all replicas of all workers.
    crop_size: side of the square HR training crops, in HR pixels.
    lr_halve_every: the learning rate halves every this many steps (staircase).
    *_every: intervals in steps; 0 turns validation / checkpoints off between the
      final ones, which always happen at the last step and at a clean exit.
    init_resampler_from, init_upscaler_from: a model (bundled name, .keras file,
      training model_dir, or a checkpoint prefix model_dir/ckpt-N) whose ResamplerNet /
      upscaler weights a new run starts from; the architectures must match. Ignored
      when the run resumes from a checkpoint.
    lr_codec: "png" (lossless: the upscaler sees the quantised LR) or "jpeg" (it sees
      the LR after car_tf.codecs.differentiable_jpeg, at a quality drawn per example
      from lr_quality_range, inclusive).
    codec_rounding_alpha: soft-round strength of the JPEG coefficient rounding's
      gradient (0 = straight-through).
    rate_weight, rate_term: how the JPEG rate proxy enters the total (0 = distortion
      only); see car_tf.train.trainer.rate_penalty.
    codec_distortion: "decoded" (the upscaler sees the JPEG's output) or "lossless" (it
      sees the quantised LR; the JPEG gives the rate term only): lr_codec.CODEC_DISTORTIONS.
    """

    model: dict
    model_dir: str
    mode: str = "car"
    train_dirs: list = dataclasses.field(default_factory=list)
    tfds_name: str = ""
    tfds_data_dir: str = ""
    val_dirs: list = dataclasses.field(default_factory=list)
    batch_size: int = 16
    crop_size: int = 192
    steps: int = 600_000
    learning_rate: float = 1e-4
    lr_halve_every: int = 150_000
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    offset_weight: float = 0.001
    tv_weight: float = 0.005
    log_every: int = 100
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    summary_images: int = 2
    cache: str = "memory"
    seed: int = 0
    init_resampler_from: str = ""
    init_upscaler_from: str = ""
    lr_codec: str = "png"
    lr_quality_range: list = dataclasses.field(default_factory=lambda: [30, 95])
    codec_rounding_alpha: float = 0.5
    rate_weight: float = 0.0
    rate_term: str = "bits"
    codec_distortion: str = "decoded"

    def __post_init__(self):
        self.lr_quality_range = list(check_training_codec(
            self.lr_codec, self.lr_quality_range, self.rate_weight, self.codec_rounding_alpha,
            self.rate_term, self.codec_distortion))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if models.architecture_of(self.model) == "fixed" and (
                self.mode != "car" or self.init_resampler_from or self.init_upscaler_from):
            raise ValueError("a fixed kernel trains in --mode=car from the area average; "
                             "drop --init_*_from")
        if self.mode == "sr_baseline" and self.model.get("upscaler") != "edsr":
            raise ValueError("mode sr_baseline trains the upscaler and needs --upscaler=edsr")
        data.check_crop_size(self.crop_size, self.scale)
        if self.mode == "sr_baseline" and self.init_resampler_from:
            raise ValueError("mode sr_baseline trains no ResamplerNet; drop --init_resampler_from")
        if self.init_upscaler_from and self.model.get("upscaler") != "edsr":
            raise ValueError("--init_upscaler_from needs --upscaler=edsr (bicubic has no weights)")
        for name in ("batch_size", "steps", "lr_halve_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def scale(self):
        return int(self.model["scale"])

    def to_json(self):
        return dataclasses.asdict(self)
