"""A CAR model on one worker: loaded once per process, run over whole images in tiles.

The tiles and halos are the CLI's (car_tf.inference.Runner plans them, read_window and
write_core cut and place them), so outputs equal `car`'s. What the engine adds is
batching: windows of equal size, from one image or several, go through the network
together, `batch_size` at a time.
"""

import gc
import json
import os
import sys
import tempfile
import threading
from fractions import Fraction

import numpy as np
import tensorflow as tf

from car_tf import inference, pretrained
from car_tf.beam import files
from car_tf.beam.handler import DIRECTIONS
from car_tf.padding import lr_size

OUT_OF_MEMORY = "out of memory; try a smaller --tile"
# What a Beam SDK worker process runs as __main__ (the DirectRunner's multi_processing
# workers, and the SDK harness of Dataflow's, Flink's and Spark's containers).
SDK_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"


class SavedModelCAR:
    """A car_tf SavedModel export (car_tf.export.savedmodel) with the part of CARModel's
    interface the tiled runner uses: scale, downscale_uint8, upscale_uint8 and the reaches.

    The reaches come from the architecture in the export's metadata: a network's reach
    depends on its layers, not on its weights.
    """

    def __init__(self, path):
        from car_tf.export.savedmodel import METADATA_PATH, load_saved_model, saved_model_dir
        from car_tf.models import build_model

        directory = saved_model_dir(path)
        metadata_path = os.path.join(directory, METADATA_PATH)
        if not os.path.isfile(metadata_path):
            raise ValueError(f"{directory}: no {METADATA_PATH}; not a car_tf SavedModel export")
        with open(metadata_path) as handle:
            metadata = json.load(handle)
        self._loaded = load_saved_model(directory)
        self.scale = int(metadata["scale"])
        architecture = build_model(metadata["model_config"], resampler_impl="composite")
        self._downscale_reach = architecture.downscale_reach()
        self._upscale_reach = architecture.upscale_reach()

    def downscale_uint8(self, hr_uint8):
        """uint8 [N, H, W, 3] -> uint8 [N, ceil(H/s), ceil(W/s), 3], the export's `downscale`."""
        return self._loaded.downscale(hr_uint8)["lr"]

    def upscale_uint8(self, lr_uint8):
        """uint8 [N, h, w, 3] -> uint8 [N, h*s, w*s, 3], the export's `upscale`."""
        return self._loaded.upscale(lr_uint8)["sr"]

    def downscale_reach(self):
        return self._downscale_reach

    def upscale_reach(self):
        return self._upscale_reach


def is_saved_model(path):
    """Whether a local folder holds a SavedModel (itself or in a numbered version folder)."""
    from car_tf.export.savedmodel import saved_model_dir

    if not os.path.isdir(path):
        return False
    try:
        saved_model_dir(path)
    except FileNotFoundError:
        return False
    return True


def load_model(name_or_path, resampler_impl="auto"):
    """A CAR model by bundled name, `.keras` file, training model_dir or SavedModel export.

    Paths on other filesystems (gs://, ...) are copied to a local temporary folder first.

    Raises:
      pretrained.ModelNotFoundError: nothing loadable by that name.
      ValueError, OSError: found but not loadable, or not a CAR model.
    """
    if not files.is_local(name_or_path):
        # The copy must outlive this call: Keras and SavedModels read lazily.
        name_or_path = files.localize(name_or_path, tempfile.mkdtemp(prefix="car_tf_model_"))
    if is_saved_model(name_or_path):
        return SavedModelCAR(name_or_path)
    model = pretrained.load_model(name_or_path, resampler_impl)
    if not hasattr(model, "downscale_uint8"):
        raise ValueError(f"model {name_or_path} is not a CAR model (no downscaler)")
    return model


class Engine:
    """Downscales or upscales batches of whole uint8 images with one model.

    Args:
      model: a CARModel (or SavedModelCAR).
      tile: tile core side in HR pixels, as the CLI's --tile (0: whole images).
      precision: of car_tf.choices.PRECISIONS, as the CLI's --precision (the Runner sets
        it on a CARModel; a SavedModel runs as it was exported).
    """

    def __init__(self, model, tile, precision="float32"):
        self.model = model
        # Built before the tf.functions below: the Runner sets the model's dtype policy.
        self.runner = inference.Runner(model, tile, precision)
        self.scale = self.runner.scale
        spec = tf.TensorSpec([None, None, None, 3], tf.uint8)
        self._networks = {
            "downscale": tf.function(model.downscale_uint8, input_signature=[spec]),
            "upscale": tf.function(model.upscale_uint8, input_signature=[spec]),
        }
        self.network_calls = 0  # for tests and logs: how many batches went through

    def _plan(self, image, direction):
        """(tiles, output shape, output pixels per input pixel) of one uint8 [H, W, 3] image."""
        height, width = image.shape[:2]
        if direction == "downscale":
            shape = (lr_size(height, self.scale), lr_size(width, self.scale), 3)
            return self.runner.downscale_tiles(height, width), shape, Fraction(1, self.scale)
        shape = (height * self.scale, width * self.scale, 3)
        return self.runner.upscale_tiles(height, width), shape, Fraction(self.scale)

    def resample(self, rgbs, alphas, direction, batch_size=1):
        """Runs the model's downscale or upscale over whole images, in the CLI's tiles.

        Args:
          rgbs: uint8 [H, W, 3] arrays, any sizes.
          alphas: for each, uint8 [H, W] or None (resized by the runner's bicubic).
          direction: "downscale" or "upscale".
          batch_size: windows of equal size per network call, across images.

        Returns:
          One entry per image: (rgb, alpha or None), or the reason it failed (a string).
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if direction == "downscale" and self.runner.fixed_kernel is not None:
            return [self._downscale_fixed(rgb, alpha) for rgb, alpha in zip(rgbs, alphas)]
        network = self._networks[direction]
        outputs, factors, groups = [], [], {}
        for index, rgb in enumerate(rgbs):
            tiles, shape, factor = self._plan(rgb, direction)
            outputs.append(np.empty(shape, np.uint8))
            factors.append(factor)
            for tile in tiles:
                wy0, wy1, wx0, wx1 = tile.window
                groups.setdefault((wy1 - wy0, wx1 - wx0), []).append((index, tile))
        failed = {}
        for work in groups.values():
            for start in range(0, len(work), batch_size):
                chunk = [(index, tile) for index, tile in work[start:start + batch_size]
                         if index not in failed]
                if not chunk:
                    continue
                windows = np.stack([inference.read_window(rgbs[index], tile)
                                    for index, tile in chunk])
                try:
                    results = network(windows).numpy()
                except tf.errors.ResourceExhaustedError:
                    failed.update((index, OUT_OF_MEMORY) for index, _ in chunk)
                    continue
                except tf.errors.OpError as error:
                    reason = f"the model failed: {' '.join(error.message.split())}"
                    failed.update((index, reason) for index, _ in chunk)
                    continue
                self.network_calls += 1
                for (index, tile), result in zip(chunk, results):
                    inference.write_core(outputs[index], tile, result, factors[index])
        resize_alpha = (self.runner.downscale_alpha if direction == "downscale"
                        else self.runner.upscale_alpha)
        return [
            failed[index] if index in failed
            else (outputs[index], None if alphas[index] is None else resize_alpha(alphas[index]))
            for index in range(len(rgbs))
        ]

    def _downscale_fixed(self, rgb, alpha):
        """One image through the Runner's compiled fixed-kernel twin, as `car downscale` runs
        a fixed model: whole images (in bands), so there is nothing to batch."""
        try:
            lr = self.runner.downscale(rgb)
        except MemoryError:
            return OUT_OF_MEMORY
        return lr, None if alpha is None else self.runner.downscale_alpha(alpha)


_engines = {}
_engines_lock = threading.Lock()


def shared_engine(model, resampler_impl, tile, bfloat16=False, precision="float32",
                  loaded=None):
    """The process's Engine for these settings, loading the model on first use.

    Every RunInference transform of a pipeline (roundtrip has two) and the launcher's
    check of the model share it, so a worker process loads each model once.

    Args:
      model: what load_model takes; with the other settings, the engine's key.
      loaded: the model already loaded from `model` (the launcher's, checked), used
        instead of loading it again.
    """
    key = (model, resampler_impl, int(tile), bool(bfloat16), precision)
    with _engines_lock:
        if key not in _engines:
            if bfloat16:
                inference.enable_bfloat16()
            if loaded is None:
                loaded = load_model(model, resampler_impl)
            _engines[key] = Engine(loaded, tile, precision)
            if in_sdk_worker_process():
                freeze_long_lived_objects()
        return _engines[key]


def in_sdk_worker_process():
    """Whether this process is a Beam SDK worker, whose objects are all the worker's own
    (not, say, the DirectRunner's in_memory mode inside someone's program)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == SDK_WORKER_MAIN


def freeze_long_lived_objects():
    """Collects the garbage there is, then moves every object alive (TensorFlow's and
    Keras's modules, the model: they live as long as the worker) out of the cyclic
    collector's sight, so that later collections, the last ones at the interpreter's exit
    among them, don't walk them again. A worker holding the model then exits in ~0.25 s
    instead of ~0.6 s, which counts twice: the DirectRunner closes its workers one after
    another (docs/BENCHMARKS.md, "Beam")."""
    gc.collect()
    gc.freeze()
