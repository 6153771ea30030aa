"""CarModelHandler: RunInference's ModelHandler for CAR models.

RunInference loads the model through it once per worker process (engine.shared_engine),
batches examples with BatchElements by their pixel count, and hands each batch to
run_inference, which runs every image in the CLI's tiles, with equal-sized windows
stacked `batch_size` at a time.
"""

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

# The engine (TensorFlow) is imported where the model loads, on a worker: the launcher
# builds handlers too, and imports no TensorFlow when model_check's memo knows the model.

DIRECTIONS = ("downscale", "upscale")

# Pixels of decoded input per RunInference batch: bounds the images a worker holds at
# once (3 bytes per pixel, plus their outputs); a larger image is a batch of its own.
BATCH_PIXELS = 8 * 2**20


def example_pixels(work):
    """The pixel count of an example: what BatchElements weighs batches by."""
    height, width = work.image.rgb.shape[:2]
    return height * width


class CarModelHandler(ModelHandler):
    """Examples are pipeline Work items (their `image`, a car_tf.image_io.DecodedImage, is
    what the model runs on); predictions are PredictionResult(work, (rgb, alpha or None)),
    or PredictionResult(work, reason) for an image that failed (a string).

    Args:
      model: bundled model name, `.keras` file, training model_dir or SavedModel export.
      direction: "downscale" or "upscale".
      resampler_impl, tile, bfloat16, precision: as the CLI's flags.
      batch_size: windows of equal size per network call.
      batch_pixels: decoded input pixels per RunInference batch.
    """

    def __init__(self, model, direction, resampler_impl="auto", tile=1024, bfloat16=False,
                 precision="auto", batch_size=1, batch_pixels=BATCH_PIXELS):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        # A fixed target: BatchElements' adaptive sizing would start at one pixel.
        super().__init__(min_batch_size=batch_pixels, max_batch_size=batch_pixels,
                         element_size_fn=example_pixels)
        self._model = model
        self._direction = direction
        self._resampler_impl = resampler_impl
        self._tile = tile
        self._bfloat16 = bfloat16
        self._precision = precision
        self._batch_size = batch_size

    def load_model(self):
        from car_tf.beam import engine

        return engine.shared_engine(self._model, self._resampler_impl, self._tile, self._bfloat16,
                                    self._precision)

    def run_inference(self, batch, model, inference_args=None):
        images = [work.image for work in batch]
        results = model.resample([image.rgb for image in images],
                                 [image.alpha for image in images], self._direction,
                                 self._batch_size)
        return [PredictionResult(work, result) for work, result in zip(batch, results)]

    def get_num_bytes(self, batch):
        # The default pickles the whole batch just to measure it.
        return sum(work.image.rgb.nbytes for work in batch)

    def get_metrics_namespace(self):
        return "car_tf_RunInference"
