"""The Beam pipeline: `car downscale / upscale / roundtrip` over files matched by patterns.

  inputs -> match (FileSystems) -> plan outputs -> group by output (one input per output)
    -> skip what exists -> decode -> RunInference(CarModelHandler) -> encode and write

roundtrip writes the LR image, decodes the LR *file* and runs a second RunInference to
upscale it, as `car roundtrip` does, then scores the SR file against the input (rows
of JSON in `scores`). Grouping by output path also spreads the files over the workers.

A bad file (unreadable, not an image, over the pixel limit, an output that can't be
written) becomes one JSON line {"path": input, "error": reason} in the dead-letter file
and never fails the pipeline. Counters, in the Beam metrics namespace "car_tf":
processed, skipped (all outputs already exist), failed (dead-letter rows) and ignored
(files under a folder or pattern that aren't inputs: other extensions, hidden files,
files below the output folder).
"""

import dataclasses
import json
import logging

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference

from car_tf.beam import files
from car_tf.beam.handler import CarModelHandler
from car_tf.image_io import ImageReadError, ImageWriteError

COMMANDS = ("downscale", "upscale", "roundtrip")
NAMESPACE = "car_tf"
COUNTERS = ("processed", "skipped", "failed", "ignored")
DEAD_LETTERS = "dead_letters"
RESCORE = "rescore"
DEAD_LETTERS_NAME = "dead_letters.jsonl"
SCORES_NAME = "scores.jsonl"

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Settings:
    """One run's settings; the flags of tools/beam_downscale.py, which has their meaning.

    extension: the output format as ".png", ".jpg", ...; None keeps each input's.
    scale: the model's (the launcher loads it once to check it); roundtrip shaves it.
    dead_letters, scores: output files; None puts them in out_dir.
    """

    command: str
    out_dir: str
    model: str
    scale: int
    resampler_impl: str = "auto"
    tile: int = 1024
    extension: str | None = None
    max_pixels: int | None = None
    bfloat16: bool = False
    precision: str = "auto"
    batch_size: int = 1
    dead_letters: str | None = None
    scores: str | None = None
    quiet: bool = False

    def __post_init__(self):
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {COMMANDS}, got {self.command!r}")

    @property
    def dead_letters_path(self):
        return self.dead_letters or beam.io.filesystems.FileSystems.join(
            self.out_dir, DEAD_LETTERS_NAME)

    @property
    def scores_path(self):
        return self.scores or beam.io.filesystems.FileSystems.join(self.out_dir, SCORES_NAME)

    def handler(self, direction):
        return CarModelHandler(self.model, direction, resampler_impl=self.resampler_impl,
                               tile=self.tile, bfloat16=self.bfloat16, precision=self.precision,
                               batch_size=self.batch_size)


@dataclasses.dataclass(frozen=True)
class Job:
    """One input file and its output paths (roundtrip: LR, SR)."""

    source: str
    outputs: tuple


@dataclasses.dataclass
class Work:
    """A job on its way through the model: `image` is what the model runs on next
    (a DecodedImage); roundtrip's second pass keeps the input in `original`."""

    job: Job
    image: object
    original: object = None


def _counter(name):
    return Metrics.counter(NAMESPACE, name)


def _dead(source, reason):
    return beam.pvalue.TaggedOutput(DEAD_LETTERS, (source, reason))


def _reason(error, source):
    """What a dead-letter row says: the reason, naming the file when it isn't the input."""
    return error.reason if error.path == source else str(error)


class _PerFile(beam.DoFn):
    """A DoFn over one file at a time whose failures become dead letters, never task failures."""

    def __init__(self, settings):
        self.settings = settings

    def source(self, element):
        raise NotImplementedError

    def handle(self, element):
        raise NotImplementedError

    def process(self, element):
        try:
            yield from self.handle(element)
        except (ImageReadError, ImageWriteError) as error:
            source = self.source(element)
            yield _dead(source, _reason(error, source))
        except Exception as error:  # A bad file must not fail a million-file job.
            _log.exception("car_tf: %s", self.source(element))
            yield _dead(self.source(element),
                        f"unexpected error: {type(error).__name__}: {' '.join(str(error).split())}")

    def notes(self, path, notes):
        if not self.settings.quiet:
            for note in notes:
                _log.info("car: note: %s: %s", path, note)


# The main output's type, for GroupByKey: Beam's inference would count the dead letters in.
@beam.typehints.with_output_types(beam.typehints.KV[str, Job])
class MatchInput(beam.DoFn):
    """files.Input -> (output key, Job) for each input file it names."""

    def __init__(self, settings):
        self.settings = settings
        self.ignored = _counter("ignored")

    def process(self, source_input):
        out_dir = files.normalize(self.settings.out_dir)
        if not source_input.in_folder:
            paths = [source_input.pattern]
        else:
            paths = files.match(source_input.pattern)
        for path in paths:
            relative = files.relative_path(path, source_input)
            inside_out_dir = files.is_below(files.normalize(path), out_dir)
            if source_input.in_folder and (inside_out_dir or not files.counts_as_image(relative)):
                self.ignored.inc()
                continue
            if inside_out_dir:
                yield _dead(path, "is inside the output folder: refusing to overwrite an input "
                                  "file; choose another -o folder")
                continue
            outputs = files.output_paths(self.settings.out_dir, relative, self.settings.command,
                                         self.settings.extension)
            yield files.normalize(outputs[0]), Job(path, tuple(outputs))


class OneInputPerOutput(beam.DoFn):
    """(output key, [Job]) -> the Job; other inputs aiming at the same output are dead
    letters, as `car` refuses them."""

    def process(self, keyed):
        _, jobs = keyed
        jobs = sorted(set(jobs), key=lambda job: job.source)
        yield jobs[0]
        for job in jobs[1:]:
            yield _dead(job.source, f"{job.outputs[0]}: already written from {jobs[0].source} "
                                    "in this run; rename one")


class SkipExisting(beam.DoFn):
    """Passes on the jobs with an output missing; counts the others as skipped (roundtrip
    sends them to be scored from the files already there)."""

    def __init__(self, settings):
        self.settings = settings
        self.skipped = _counter("skipped")

    def process(self, job):
        if all(files.exists(path) for path in job.outputs):
            self.skipped.inc()
            if self.settings.command == "roundtrip":
                yield beam.pvalue.TaggedOutput(RESCORE, job)
            return
        yield job


class Decode(_PerFile):
    """Job -> Work holding the decoded input."""

    def source(self, job):
        return job.source

    def handle(self, job):
        image = files.read(job.source, self.settings.max_pixels)
        self.notes(job.source, image.notes)
        yield Work(job, image)


class _WriteResult(_PerFile):
    """PredictionResult(Work, (rgb, alpha) | reason) -> written output(s)."""

    def __init__(self, settings):
        super().__init__(settings)
        self.processed = _counter("processed")

    def source(self, prediction):
        return prediction.example.job.source

    def handle(self, prediction):
        work, result = prediction.example, prediction.inference
        if isinstance(result, str):
            yield _dead(work.job.source, result)
            return
        yield from self.write(work, *result)

    def write(self, work, rgb, alpha):
        raise NotImplementedError


class WriteOutput(_WriteResult):
    """downscale and upscale: writes the output; counts the file as processed."""

    def write(self, work, rgb, alpha):
        path = work.job.outputs[0]
        notes, _ = files.write(path, rgb, alpha, work.image)
        self.notes(path, notes)
        self.processed.inc()
        yield path


class WriteLowResolution(_WriteResult):
    """roundtrip, first half: writes the LR image and passes on the LR *file*, decoded."""

    def write(self, work, rgb, alpha):
        path = work.job.outputs[0]
        notes, written = files.write(path, rgb, alpha, work.image, read_back=True)
        self.notes(path, notes)
        yield Work(work.job, written, original=work.image)


def _score_row(source, reference, result, scale):
    from car_tf.batch import scores

    psnr, ssim = scores(reference, result, shave=scale)
    return {"path": source, "psnr_y": psnr, "ssim_y": ssim}


class WriteSuperResolution(_WriteResult):
    """roundtrip, second half: writes the SR image cropped to the input's size and yields
    its scores against the input; counts the file as processed."""

    def write(self, work, rgb, alpha):
        height, width = work.original.height, work.original.width
        alpha = None if alpha is None else alpha[:height, :width]
        path = work.job.outputs[1]
        notes, written = files.write(path, rgb[:height, :width], alpha, work.original,
                                     read_back=True)
        self.notes(path, notes)
        self.processed.inc()
        yield _score_row(work.job.source, work.original.rgb, written.rgb, self.settings.scale)


class ScoreExisting(_PerFile):
    """roundtrip's skipped files: scores the SR file already there against the input,
    so that every run's scores cover every image."""

    def source(self, job):
        return job.source

    def handle(self, job):
        reference = files.read(job.source, self.settings.max_pixels).rgb
        result = files.read(job.outputs[1]).rgb
        yield _score_row(job.source, reference, result, self.settings.scale)


def _failed_batch(failure):
    """A RunInference batch that raised (a bug, not a bad file: the engine reports those)
    -> a dead letter for each image in it, so that the pipeline still finishes."""
    batch, (_, description, _) = failure
    _log.error("car_tf: RunInference failed on %d images: %s", len(batch), description)
    for work in batch:
        yield work.job.source, f"unexpected error: {' '.join(description.split())}"


def _dead_letter_row(letter):
    path, error = letter
    _counter("failed").inc()
    return json.dumps({"path": path, "error": error})


def _write_lines(lines, path, label):
    return lines | f"Write{label}" >> beam.io.WriteToText(path, shard_name_template="",
                                                           num_shards=1)


def build(pipeline, settings, inputs):
    """Adds the whole job to `pipeline`.

    Args:
      pipeline: a beam.Pipeline.
      settings: Settings.
      inputs: files.Input for each file, folder or pattern.
    """
    dead = []

    def split(pcoll, label, fn, *extra):
        results = pcoll | label >> beam.ParDo(fn).with_outputs(DEAD_LETTERS, *extra, main="main")
        dead.append(results[DEAD_LETTERS])
        return results

    def infer(pcoll, direction):
        label = f"Run{direction.title()}"
        results, failures = pcoll | label >> RunInference(
            settings.handler(direction)).with_exception_handling()
        dead.append(failures.failed_inferences
                    | f"{label}Failures" >> beam.FlatMap(_failed_batch))
        return results

    matched = split(pipeline | "Inputs" >> beam.Create(inputs), "Match", MatchInput(settings))
    grouped = matched.main | "GroupByOutput" >> beam.GroupByKey()
    jobs = split(grouped, "OneInputPerOutput", OneInputPerOutput()).main
    todo = jobs | "SkipExisting" >> beam.ParDo(SkipExisting(settings)).with_outputs(
        RESCORE, main="main")
    decoded = split(todo.main, "Decode", Decode(settings)).main
    if settings.command == "roundtrip":
        low = infer(decoded, "downscale")
        written = split(low, "WriteLR", WriteLowResolution(settings)).main
        high = infer(written, "upscale")
        scored = split(high, "WriteSR", WriteSuperResolution(settings)).main
        rescored = split(todo[RESCORE], "ScoreExisting", ScoreExisting(settings)).main
        _write_lines((scored, rescored) | "AllScores" >> beam.Flatten()
                     | "ScoreRows" >> beam.Map(json.dumps), settings.scores_path, "Scores")
    else:
        split(infer(decoded, settings.command), "Write", WriteOutput(settings))
    _write_lines(tuple(dead) | "AllDeadLetters" >> beam.Flatten()
                 | "DeadLetterRows" >> beam.Map(_dead_letter_row),
                 settings.dead_letters_path, "DeadLetters")


def counts(result):
    """{counter: value} of a finished pipeline's car_tf counters (0 where never incremented)."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    values = dict.fromkeys(COUNTERS, 0)
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + value
    return values


def run(settings, inputs, options):
    """Runs the job to completion; returns its counts (see `counts`)."""
    pipeline = beam.Pipeline(options=options)
    build(pipeline, settings, inputs)
    result = pipeline.run()
    result.wait_until_finish()
    return counts(result)
