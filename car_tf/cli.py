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
import time

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
# Rows per band when scoring a large image, so that SSIM's float64 maps stay
# around 100 MB for a 4000-pixel-wide photo, whatever its height.
SCORE_BAND_ROWS = 256


class UsageError(Exception):
    """A command-line or model problem: one line, exit status 2."""


class FileError(Exception):
    """A problem with one file of the batch: one line naming it; the batch goes on."""


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


def _prepare_output(path, inputs, planned):
    """Refuses to overwrite an input or an earlier output of this run; creates the folder."""
    key = os.path.realpath(path)
    if key in inputs:
        raise FileError(f"{path}: refusing to overwrite an input file; choose another -o folder")
    if key in planned:
        raise FileError(f"{path}: already written from another input in this run; rename one")
    planned.add(key)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        reason = error.strerror or error
        raise FileError(f"{path}: can't create folder {folder}: {reason}") from None


def scores(reference, result, shave, band_rows=SCORE_BAND_ROWS):
    """(PSNR_Y dB, SSIM_Y) of two uint8 [H, W, 3] images, standard protocol, in row bands.

    Equal to car_tf.metrics.psnr_y / ssim_y on the whole images, but memory
    stays bounded by the band: PSNR accumulates squared Y errors per band, and
    SSIM (mean over 'valid' 11x11 windows) gives each band's map the rows its
    windows start on, weighted by their count. None where the image is too
    small to score after shaving.
    """
    import numpy as np

    from car_tf import metrics

    height, width = reference.shape[:2]
    a = reference[shave:height - shave, shave:width - shave]
    b = result[shave:height - shave, shave:width - shave]
    rows, cols = a.shape[:2]
    if rows < 1 or cols < 1:
        return None, None
    squared, pixels = 0.0, rows * cols
    for start in range(0, rows, band_rows):
        diff = (metrics.rgb_to_y(a[start:start + band_rows] / 255.0)
                - metrics.rgb_to_y(b[start:start + band_rows] / 255.0))
        squared += float(np.sum(np.square(diff.numpy())))
    mse = squared / pixels
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(metrics.SSIM_L**2 / mse)

    window = metrics.SSIM_WINDOW
    if min(rows, cols) < window:
        return psnr, None
    positions = rows - window + 1  # window start rows of the 'valid' SSIM map
    total = 0.0
    for start in range(0, positions, band_rows):
        count = min(band_rows, positions - start)
        band = slice(start, start + count + window - 1)
        total += count * float(metrics.ssim_y(a[band], b[band], shave=0))
    return psnr, total / positions


class Batch:
    """Runs one command over its jobs, reporting per file and counting failures."""

    def __init__(self, args, model, runner, jobs, progress):
        self.args = args
        self.model = model
        self.runner = runner
        self.jobs = jobs
        self.progress = progress
        self.inputs = {os.path.realpath(job.source) for job in jobs}
        self.planned = set()
        self.failures = 0
        self.results = []

    def _read(self, path, notes=True):
        from car_tf.image_io import read_image

        image = read_image(path, max_pixels=self.args.max_pixels)
        for note in image.notes if notes else ():
            self.progress.note(f"car: note: {path}: {note}")
        return image

    def _write(self, path, rgb, alpha, like):
        from car_tf.image_io import write_image

        for note in write_image(path, rgb, alpha=alpha, icc_profile=like.icc_profile,
                                grayscale=like.was_grayscale, exif=like.exif):
            self.progress.note(f"car: note: {path}: {note}")

    def _output(self, *parts):
        path = os.path.join(self.args.out_dir, *parts)
        _prepare_output(path, self.inputs, self.planned)
        return path

    def _resample(self, image, down):
        """(rgb, alpha) of a DecodedImage, downscaled (down=True) or upscaled, alpha may be None."""
        if down:
            rgb_fn, alpha_fn = self.runner.downscale, self.runner.downscale_alpha
        else:
            rgb_fn, alpha_fn = self.runner.upscale, self.runner.upscale_alpha
        rgb = rgb_fn(image.rgb, self.progress.parts)
        return rgb, None if image.alpha is None else alpha_fn(image.alpha)

    def _convert(self, job, down):
        out = self._output(job.relative)
        image = self._read(job.source)
        self._write(out, *self._resample(image, down), image)
        return [out]

    def downscale(self, job):
        return self._convert(job, down=True)

    def upscale(self, job):
        return self._convert(job, down=False)

    def roundtrip(self, job):
        lr_path = self._output("lr", job.relative)
        sr_path = self._output("sr", job.relative)
        image = self._read(job.source)
        self._write(lr_path, *self._resample(image, down=True), image)
        # Upscale the LR file as stored, so that a lossy LR format counts, and
        # the SR is exactly what `car upscale` would make of that file.
        sr, sr_alpha = self._resample(self._read(lr_path, notes=False), down=False)
        height, width = image.height, image.width
        sr_alpha = None if sr_alpha is None else sr_alpha[:height, :width]
        self._write(sr_path, sr[:height, :width], sr_alpha, image)
        del sr, sr_alpha
        psnr, ssim = scores(image.rgb, self._read(sr_path, notes=False).rgb, shave=self.model.scale)
        self.results.append((job.source, psnr, ssim))
        print(f"{_number(psnr, '.2f')}\t{_number(ssim, '.4f')}\t{job.source}", flush=True)
        return [lr_path, sr_path]

    def run(self):
        from car_tf.image_io import ImageReadError, ImageWriteError

        step = getattr(self, self.args.command)
        if self.args.command == "roundtrip":
            print("psnr_y\tssim_y\tfile", flush=True)
        for index, job in enumerate(self.jobs):
            self.progress.start(job.source)
            started = time.perf_counter()
            try:
                outputs = step(job)
            except (ImageReadError, ImageWriteError, FileError) as error:
                self.failures += 1
                self.progress.error(f"car: error: {error}")
                self.progress.skip()
                continue
            except _out_of_memory_errors():
                self.failures += 1
                self.progress.error(
                    f"car: error: {job.source}: out of memory; try a smaller --tile"
                )
                self.progress.skip()
                continue
            seconds = time.perf_counter() - started
            self.progress.finish(f"[{index + 1}/{len(self.jobs)}] {job.source} -> "
                                 f"{', '.join(outputs)} ({seconds:.1f} s)")
        if self.args.command == "roundtrip" and len(self.results) > 1:
            psnrs = [p for _, p, _ in self.results if p is not None]
            ssims = [s for _, _, s in self.results if s is not None]
            mean_psnr = sum(psnrs) / len(psnrs) if psnrs else None
            mean_ssim = sum(ssims) / len(ssims) if ssims else None
            print(f"{_number(mean_psnr, '.2f')}\t{_number(mean_ssim, '.4f')}\t"
                  f"mean of {len(self.results)}", flush=True)


def _out_of_memory_errors():
    """TensorFlow's out-of-memory error once TensorFlow is loaded, else nothing to catch
    (the fixed-kernel downscale path never loads it)."""
    tf = sys.modules.get("tensorflow")
    return () if tf is None else (tf.errors.ResourceExhaustedError,)


def _number(value, spec):
    return "n/a" if value is None else format(value, spec)


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
