"""One `car` command over its files: read, resample, write, score, and report each file.

car_tf.cli parses the command line, collects the jobs and builds the model and its runner;
Batch runs them. A file that can't be read or written (ImageReadError, ImageWriteError,
FileError) or runs out of memory costs that file only: one line names it, and the batch
goes on.
"""

import os
import sys
import time

# Rows per band when scoring a large image, so that SSIM's float64 maps stay
# around 100 MB for a 4000-pixel-wide photo, whatever its height.
SCORE_BAND_ROWS = 256


class FileError(Exception):
    """A problem with one file of the batch: one line naming it; the batch goes on."""


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
