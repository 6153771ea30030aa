"""Times .tflite files with the LiteRT interpreter on random uint8 input of their input shape.

Prints a Markdown table (file, size, input, output, median and min latency) or, with
--json, one JSON list. Needs the `export` extra (ai-edge-litert).

Usage:
  python tools/benchmark_tflite.py --tflite=tflite/downscaler_512x512_float32.tflite \
      --tflite=tflite/upscaler_128x128_float32.tflite --runs=20 --num_threads=2
"""

import json
import os

from absl import app, flags

flags.DEFINE_multi_string("tflite", None, "A .tflite file (repeat for several).")
flags.DEFINE_integer("runs", 20, "Timed invocations.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed invocations first.", lower_bound=0)
flags.DEFINE_integer("num_threads", None, "Interpreter threads (default: LiteRT's).")
flags.DEFINE_bool("json", False, "Print a JSON list instead of a table.")
flags.mark_flags_as_required(["tflite"])

FLAGS = flags.FLAGS


def main(argv):
    del argv
    from car_tf.export import litert

    results = []
    for path in FLAGS.tflite:
        try:
            results.append(
                litert.benchmark_tflite(path, FLAGS.runs, FLAGS.warmup, FLAGS.num_threads)
            )
        except (ValueError, OSError, ImportError) as error:
            raise SystemExit(f"benchmark_tflite: {path}: {error}") from None
    if FLAGS.json:
        print(json.dumps(results, indent=2))
        return
    print("| file | size (MB) | input | output | median (ms) | min (ms) |")
    print("|---|---:|---|---|---:|---:|")
    for result in results:
        print(
            f"| {os.path.basename(result['path'])} | {result['size_bytes'] / 1e6:.2f} "
            f"| {'x'.join(map(str, result['input_shape']))} "
            f"| {'x'.join(map(str, result['output_shape']))} "
            f"| {result['median_ms']:.1f} | {result['min_ms']:.1f} |"
        )


if __name__ == "__main__":
    app.run(main)
