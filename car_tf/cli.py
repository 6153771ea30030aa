"""The `car` command: downscale, upscale and round-trip image files with a CAR model.

  car downscale IMG_OR_DIR... -o OUT_DIR [--scale {2,4}] [--model NAME_OR_PATH]
  car upscale   LR_OR_DIR...  -o OUT_DIR [--scale {2,4}] [--model NAME_OR_PATH]
  car roundtrip IMG_OR_DIR... -o OUT_DIR [--scale {2,4}] [--model NAME_OR_PATH]

Folders recurse; each output mirrors its input's path below the folder named
on the command line (a file named directly lands in OUT_DIR itself).
roundtrip writes OUT_DIR/lr/... and OUT_DIR/sr/... and prints PSNR/SSIM (Y,
standard protocol, shave = scale) of the SR file against the input.

A bad file (unreadable, corrupt, truncated, empty, too many pixels, or an
output that can't be written) gets one line on stderr naming it; the other
files are still processed, and the exit status is 1. Usage and model errors
exit with 2. Progress goes to stderr; stdout carries only roundtrip's scores.
docs/CLI.md has the details.
"""

import argparse
import dataclasses
import os
import sys

from car_tf.batch import Batch
from car_tf.choices import IMPLEMENTATIONS, PRECISIONS, UPSCALERS
from car_tf.progress import Progress

# TensorFlow and what needs it (models, inference) are imported once a command runs, so
# that --help and usage errors answer at once (tests/test_cli.py checks it); `car
# downscale` with a fixed-kernel model never imports it (car_tf.fixed_numpy).

COMMANDS = ("downscale", "upscale", "roundtrip")
SCALES = (2, 4)
DEFAULT_SCALE = 4
EXIT_OK, EXIT_FILE_ERRORS, EXIT_USAGE = 0, 1, 2
# Tile side in HR pixels. With the lite x4 model the halo then adds ~18% pixels
# and a 12 MP downscale peaks at 1.1 GB RSS; 512 costs more CPU, 1536 and up
# more memory for little gain (docs/BENCHMARKS.md).
DEFAULT_TILE = 1024


class UsageError(Exception):
    """A command-line or model problem: one line, exit status 2."""


def add_model_flags(parser, model_kinds="bundled model name, .keras file or training model_dir"):
    """The flags that choose the model and how it runs and writes, for `car`'s commands and
    tools/beam_downscale.py (car_tf.beam.launch) alike, so that each means the same in both.

    model_kinds: what --model takes, for its help.
    """
    parser.add_argument("--scale", type=int, choices=SCALES, default=None,
                        help=f"scale factor (default: the model's, else {DEFAULT_SCALE})")
    parser.add_argument("--model", default=None,
                        help=f"{model_kinds} (default: the bundled model for --scale and "
                             "--upscaler)")
    parser.add_argument("--upscaler", choices=UPSCALERS, default=None,
                        help="which bundled model is the default (default bicubic); with "
                             "--model, it must be that model's upscaler")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE,
                        help="tile side in HR pixels; tiles overlap by the receptive field, "
                             "so results don't depend on it; 0 = whole image at once "
                             f"(default {DEFAULT_TILE})")
    parser.add_argument("--format", default=None,
                        help="output format by extension: png, jpg, webp, tif, bmp "
                             "(default: keep each input's)")
    parser.add_argument("--max_pixels", type=int, default=None,
                        help="refuse images with more pixels than this (decompression-bomb "
                             "guard; default: Pillow's limit; 0 = no limit)")
    parser.add_argument("--resampler_impl", choices=IMPLEMENTATIONS,
                        default="auto", help="adaptive resampler implementation")
    parser.add_argument("--bfloat16", action="store_true",
                        help="run the networks' convolutions in bfloat16 (oneDNN; fast on CPUs "
                             "with AVX512-BF16/AMX); results may differ by one or two 8-bit "
                             "levels")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="how the ResamplerNet runs: float32, or mixed_bfloat16 (all but "
                             "the kernel head's last convolution in bfloat16: LR within one level of "
                             "float32, about half the CPU time); auto: mixed_bfloat16 on a "
                             "CPU with AVX512-BF16 or AMX and no GPU (default auto)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="car",
        description="Learned image downscaling and upscaling with a CAR model.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "downscale": "HR images -> learned LR images (1/scale per side)",
        "upscale": "LR images -> SR images (scale x per side)",
        "roundtrip": "HR -> LR -> SR; writes both and prints PSNR/SSIM against the input",
    }
    for command in COMMANDS:
        sub = commands.add_parser(command, help=helps[command], description=helps[command])
        sub.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR",
                         help="image files and folders (folders recurse)")
        sub.add_argument("-o", "--out_dir", required=True,
                         help="output folder; created if missing; inputs are never overwritten")
        add_model_flags(sub)
        sub.add_argument("--quiet", action="store_true",
                         help="no progress bar and no notes; errors are still printed")
    return parser


@dataclasses.dataclass
class Job:
    """One input file and where its outputs go, relative to the output folder."""

    source: str
    relative: str  # output path relative to OUT_DIR (or its lr/, sr/ subfolders)


def _output_extension(fmt):
    from car_tf.image_io import IMAGE_EXTENSIONS

    if fmt is None:
        return None
    extension = "." + fmt.lower().lstrip(".")
    if extension not in IMAGE_EXTENSIONS:
        raise UsageError(
            f"--format {fmt!r} is not one of {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}"
        )
    return extension


def collect_jobs(inputs, extension, notes=None):
    """Jobs for the files and folders on the command line, in order, without duplicates.

    A path that does not exist is a UsageError. `notes`, a list, gets one line per image file
    a folder walk skipped that a user would expect processed (a GIF)."""
    from car_tf.image_io import list_images, unread_image_reason

    jobs, seen = [], set()
    for argument in inputs:
        if not os.path.exists(argument):
            raise UsageError(f"{argument}: no such file or folder")
        if os.path.isdir(argument):
            skipped = []
            files = list_images(argument, skipped=skipped)
            for path in skipped:
                if notes is not None and unread_image_reason(path):
                    notes.append(f"car: note: {path}: skipped: {unread_image_reason(path)}")
            pairs = [(path, os.path.relpath(path, argument)) for path in files]
        else:
            pairs = [(argument, os.path.basename(argument))]
        for source, relative in pairs:
            key = os.path.realpath(source)
            if key in seen:
                continue
            seen.add(key)
            if extension:
                relative = os.path.splitext(relative)[0] + extension
            jobs.append(Job(source, relative))
    return jobs


def _model_name(args):
    from car_tf import pretrained

    return args.model or pretrained.default_model_name(args.scale or DEFAULT_SCALE,
                                                       args.upscaler or "bicubic")


def _check_model_flags(args, model, name):
    """--scale and --upscaler, when given, must be the model's."""
    if args.scale is not None and args.scale != model.scale:
        raise UsageError(f"--scale {args.scale} but model {name} is for scale {model.scale}")
    if args.upscaler is not None and args.upscaler != model.upscaler_name:
        raise UsageError(f"--upscaler {args.upscaler} but model {name} has the "
                         f"{model.upscaler_name} upscaler; drop --upscaler or pick another --model")


def _load_model(args):
    from car_tf import pretrained

    name = _model_name(args)
    try:
        model = pretrained.load_model(name, args.resampler_impl)
    except pretrained.ModelNotFoundError as error:
        if args.model is None:
            raise UsageError(
                f"the default model {name!r} is not installed (bundled here: "
                f"{', '.join(pretrained.bundled_models()) or 'none'}); pass --model with a "
                ".keras file or a training model_dir"
            ) from None
        raise UsageError(str(error)) from None
    except (ValueError, OSError) as error:
        raise UsageError(f"model {name}: {' '.join(str(error).split())}") from None
    if not hasattr(model, "downscale_uint8"):
        raise UsageError(f"model {name} is not a CAR model (no downscaler)")
    _check_model_flags(args, model, name)
    return model


def _load_fixed_kernel(args):
    """The FixedKernel (car_tf.fixed_numpy) that `car downscale` runs without TensorFlow
    when --model is a fixed-kernel model folder with its weights file; else None, and the
    TensorFlow path loads (or reports) the model. --precision, --resampler_impl and
    --bfloat16 concern networks and TensorFlow's convolutions, which this path has none of."""
    if args.command != "downscale":
        return None
    from car_tf import fixed_numpy, pretrained

    name = _model_name(args)
    try:
        kind, path = pretrained.resolve(name)
    except pretrained.ModelNotFoundError:
        return None
    if kind not in ("bundled", "model_dir") or not fixed_numpy.is_fixed_model_dir(path):
        return None
    try:
        model = fixed_numpy.load_fixed_kernel(path, require_manifest=kind == "bundled")
    except (ValueError, OSError) as error:
        raise UsageError(f"model {name}: {' '.join(str(error).split())}") from None
    _check_model_flags(args, model, name)
    return model


def _check_tile(tile, model):
    """--tile against a model's halo (_check_tile_halo), for a model run in tiles by
    car_tf.inference.Runner."""
    _check_tile_halo(tile, model.scale,
                     max(model.downscale_reach(), model.upscale_reach() * model.scale))


def _check_tile_halo(tile, scale, halo):
    """A tile core smaller than the halo around it costs up to ~9x the pixels of one big
    tile, and far more below that (--tile 1 ran 150x slower): refused, naming the minimum."""
    from car_tf.padding import round_up, size_multiple

    minimum = round_up(halo, size_multiple(scale))
    if 0 < tile < minimum:
        raise UsageError(f"--tile {tile} is smaller than this model's halo: use --tile 0 "
                         f"(no tiling) or at least {minimum}")


def model_and_runner(args):
    """(model, runner) for the command: car_tf.fixed_numpy's fixed-kernel path when it
    applies (no TensorFlow imported), else a model through car_tf.inference.Runner."""
    fixed = _load_fixed_kernel(args)
    if fixed is not None:
        from car_tf import fixed_numpy

        # FixedKernelModel.downscale_reach: its taps reach s + 1 HR pixels.
        _check_tile_halo(args.tile, fixed.scale, fixed.scale + 1)
        return fixed, fixed_numpy.Runner(fixed, tile=args.tile)

    from car_tf import inference

    if args.bfloat16:
        inference.enable_bfloat16()
    model = _load_model(args)
    _check_tile(args.tile, model)
    return model, inference.Runner(model, tile=args.tile, precision=args.precision)


def run(args):
    """Runs a parsed command; returns the exit status."""
    extension = _output_extension(args.format)
    if args.tile < 0:
        raise UsageError(f"--tile must be >= 0 (0 = no tiling), got {args.tile}")
    if args.max_pixels is not None and args.max_pixels < 0:
        raise UsageError(f"--max_pixels must be >= 0 (0 = no limit), got {args.max_pixels}")
    notes = []
    jobs = collect_jobs(args.inputs, extension, notes)
    if not jobs:
        raise UsageError(f"no image files found in {' '.join(args.inputs)}")

    model, runner = model_and_runner(args)
    progress = Progress(len(jobs), unit=" files", quiet=args.quiet)
    for note in notes:
        progress.note(note)
    batch = Batch(args, model, runner, jobs, progress)
    try:
        batch.run()
    finally:
        progress.close()
    if batch.failures:
        progress.error(f"car: {batch.failures} of {len(jobs)} files failed")
        return EXIT_FILE_ERRORS
    return EXIT_OK


def main(argv=None):
    """Entry point of the `car` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        print(f"car: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("car: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
