"""What the launcher learns about the model before the pipeline starts, importing
TensorFlow only the first time it sees that model.

The launcher must refuse a bad --model, --scale, --upscaler or --tile in one line before
any worker starts, and for that it needs the model's scale, its upscaler and its reaches
(the halo --tile is checked against), which only a built model states. Building it means
importing TensorFlow in the launcher, ~2 CPU s that every worker process spends again
(docs/BENCHMARKS.md, "Beam": 2.3 s of a 12 s, 20-image DirectRunner run on 2 cores).

So for a model folder with its weights file (a bundled name, or a training model_dir
with model.weights.h5) the facts a successful load established are memoised on disk
(`CACHE_ENV`, default $XDG_CACHE_HOME/car_tf or ~/.cache/car_tf, folder `model_checks`),
one JSON file per key: the sha256 of the folder's config.json and weights, of
car_tf.models' source (which defines the reaches), --resampler_impl, and the installed
TensorFlow and Keras versions. A later check of the same files by the same code
verifies the manifest and hashes the files, then reads the memo: no TensorFlow. Failed
loads are not memoised, so a broken model is reported from a real load every time.
"""

import dataclasses
import glob
import hashlib
import json
import os
import tempfile
from importlib import metadata

from car_tf import pretrained

CACHE_ENV = "CAR_TF_CACHE_DIR"
MEMO_FOLDER = "model_checks"
# "custom" depends on the op library loading in this process, which a memo can't vouch for.
MEMO_IMPLEMENTATIONS = ("auto", "composite")
_MODELS_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "models")


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What the launcher's checks read from a CAR model (cli._check_model_flags and
    cli._check_tile take it in place of the model): scale, upscaler name, reaches."""

    scale: int
    upscaler_name: str
    downscale_reach_pixels: int
    upscale_reach_pixels: int

    @classmethod
    def of(cls, model):
        return cls(int(model.scale), str(model.upscaler_name), int(model.downscale_reach()),
                   int(model.upscale_reach()))

    def downscale_reach(self):
        return self.downscale_reach_pixels

    def upscale_reach(self):
        return self.upscale_reach_pixels


def cache_dir():
    """Where car_tf keeps its memos: $CAR_TF_CACHE_DIR, else the XDG cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(CACHE_ENV) or os.path.join(base, "car_tf")


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def _hash_file(digest, path):
    digest.update(os.path.basename(path).encode() + b"\0")
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def memo_key(model_dir, resampler_impl):
    """The key of a model folder's memo, or None when it can't have one (no weights file,
    or an implementation whose load a memo can't vouch for)."""
    weights = os.path.join(model_dir, pretrained.WEIGHTS)
    if resampler_impl not in MEMO_IMPLEMENTATIONS or not os.path.isfile(weights):
        return None
    digest = hashlib.sha256()
    digest.update(f"{resampler_impl}\0tensorflow {_version('tensorflow')}\0"
                  f"keras {_version('keras')}\0".encode())
    for path in (os.path.join(model_dir, pretrained.CONFIG), weights,
                 *sorted(glob.glob(os.path.join(_MODELS_SOURCE, "*.py")))):
        _hash_file(digest, path)
    return digest.hexdigest()


def _memo_path(key):
    return os.path.join(cache_dir(), MEMO_FOLDER, f"{key}.json")


def read_memo(key):
    """The ModelFacts memoised under `key`, or None (none yet, or unreadable)."""
    try:
        with open(_memo_path(key)) as handle:
            return ModelFacts(**json.load(handle))
    except (OSError, ValueError, TypeError):
        return None


def write_memo(key, facts):
    """Memoises `facts` under `key`, atomically; a cache folder that can't be written only
    means the next check loads the model again."""
    path = _memo_path(key)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".memo-")
    except OSError:
        return
    try:
        with os.fdopen(handle, "w") as target:
            json.dump(dataclasses.asdict(facts), target)
        os.replace(temporary, path)
    except OSError:
        os.unlink(temporary)
