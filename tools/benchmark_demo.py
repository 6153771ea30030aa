"""What the HTML page costs `make demo`: tools/demo.py with and without --html, in turns.

  python tools/benchmark_demo.py --repeats=3

Each round runs the demo twice, as `make demo` does (a fresh Python each time), once with
the page (the default) and once with --nohtml, in alternating order, and prints the median
wall seconds of each, the ratio and the size of what the page adds. Figures: docs/BENCHMARKS.md.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer("repeats", 3, "Rounds; each runs the demo with and without the page.")
flags.DEFINE_string("work_dir", None, "Where the demo outputs go (default: a temp folder).")
FLAGS = flags.FLAGS

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.py")


def _run_demo(out_dir, html):
    """Wall seconds of one demo run into out_dir (a fresh folder)."""
    args = [sys.executable, DEMO, f"--out_dir={out_dir}", "--html" if html else "--nohtml"]
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


def main(argv):
    del argv
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="car_demo_bench_")
    walls = {"html": [], "nohtml": []}
    sizes = {}
    for round_index in range(FLAGS.repeats):
        # Alternate which goes first, so that a drift in load is shared.
        order = ("html", "nohtml") if round_index % 2 == 0 else ("nohtml", "html")
        for variant in order:
            out_dir = os.path.join(work_dir, f"{variant}_{round_index}")
            walls[variant].append(_run_demo(out_dir, variant == "html"))
            sizes[variant] = _folder_bytes(out_dir)
    medians = {variant: statistics.median(values) for variant, values in walls.items()}
    print(json.dumps({
        "repeats": FLAGS.repeats,
        "cpus": os.cpu_count(),
        "wall_s": {variant: [round(v, 1) for v in values] for variant, values in walls.items()},
        "median_wall_s": {variant: round(v, 1) for variant, v in medians.items()},
        "html_over_nohtml": round(medians["html"] / medians["nohtml"], 3),
        "output_mb": {variant: round(size / 1e6, 1) for variant, size in sizes.items()},
    }, indent=2))


if __name__ == "__main__":
    app.run(main)
