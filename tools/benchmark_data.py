"""Times the training input pipeline (car_tf.data.train_dataset) for each cache kind.

  python tools/benchmark_data.py --data_dir=data/train --scale=4 --batch_size=16

Prints one JSON object: per cache kind, `build_s` (decode + cache; the call returns after it) and
`batches_per_s` over --batches batches after the first, plus the peak RSS of the process.
"""

import json
import shutil
import tempfile
import time

from absl import app, flags

import car_tf.data
from car_tf.memory import peak_memory

flags.DEFINE_multi_string("data_dir", None, "Folder(s) of HR training images.", required=True)
flags.DEFINE_integer("scale", 4, "Scale factor (sets the default crop).")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("batches", 200, "Batches timed after the first.")


def time_pipeline(cache, data_dirs, scale, batch_size, batches):
    start = time.perf_counter()
    dataset = car_tf.data.train_dataset(data_dirs, scale=scale, batch_size=batch_size, seed=0,
                                        cache=cache)
    build = time.perf_counter() - start
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return {"build_s": round(build, 2),
            "batches_per_s": round(batches / (time.perf_counter() - start), 1)}


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    cache_dir = tempfile.mkdtemp(prefix="car_cache_bench_")
    results = {}
    try:
        for label, cache in [("memory", "memory"), ("folder, first run", cache_dir),
                             ("folder, reused", cache_dir), ("none", "none")]:
            results[label] = time_pipeline(cache, FLAGS.data_dir, FLAGS.scale, FLAGS.batch_size,
                                           FLAGS.batches)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    results.update(peak_memory())
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
