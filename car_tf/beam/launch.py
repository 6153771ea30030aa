"""The command line of the Beam pipeline (tools/beam_downscale.py; docs/BEAM.md).

  beam_downscale.py {downscale,upscale,roundtrip} INPUT... -o OUT_DIR [car flags]
                    [Beam pipeline options: --runner, --direct_num_workers, ...]

car's flags keep their names and meanings (docs/CLI.md). The Beam options are parsed by
Beam; they and the inputs may come in any order (one parser knows both sets of flags,
so `--runner DirectRunner` is never mistaken for an input). Usage problems (a bad flag,
a model that is missing or not loadable, an input that does not exist or matches
nothing) are one line on stderr and exit status 2 before the pipeline starts; after it,
the status is 1 when some file failed (see the dead-letter file), else 0.
"""

import os
import sys

from apache_beam.options.pipeline_options import PipelineOptions

from car_tf.beam import files, pipeline
# car's exit statuses, its UsageError (a flag, input or model problem: one line, exit
# status 2) and its checks of --format and --tile mean the same here.
from car_tf.cli import EXIT_FILE_ERRORS, EXIT_OK, EXIT_USAGE, UsageError
from car_tf.cli import _check_tile as check_tile
from car_tf.cli import _output_extension as output_extension

PROG = "beam_downscale"


def add_flags(parser):
    """car's own flags (the CLI's, from cli.add_model_flags) and the pipeline's, added to
    Beam's parser."""
    from car_tf.cli import add_model_flags

    parser.add_argument("command", choices=pipeline.COMMANDS,
                        help="downscale (HR -> LR), upscale (LR -> SR) or roundtrip (both, "
                             "plus scores)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (recursive) and patterns (* within a "
                             "folder, ** across folders), local or on any Beam filesystem")
    parser.add_argument("-o", "--out_dir", required=True,
                        help="output folder; outputs mirror each input's path below its folder")
    add_model_flags(parser, model_kinds="bundled model name, .keras file, training "
                                        "model_dir or SavedModel export")
    parser.add_argument("--quiet", action="store_true",
                        help="no notes and no summary; failures are still reported")
    parser.add_argument("--batch_size", type=int, default=1,
                        help="equal-sized tiles per network call, across images (default 1: "
                             "on CPU larger batches measured slower; try 8 or more on a GPU)")
    parser.add_argument("--dead_letters", default=None,
                        help="JSON-lines file of the files that failed, {path, error} "
                             f"(default OUT_DIR/{pipeline.DEAD_LETTERS_NAME})")
    parser.add_argument("--scores", default=None,
                        help="roundtrip: JSON-lines file of {path, psnr_y, ssim_y} "
                             f"(default OUT_DIR/{pipeline.SCORES_NAME})")


def _beam_parser():
    """Beam's own parser, with every registered options class."""
    parsers = []
    # Beam builds it inside get_all_options; add_extra_args_fn is its hook for reaching it.
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    return parsers[0]


def build_parser():
    """One parser for Beam's pipeline options and car's flags."""
    parser = _beam_parser()
    parser.prog = PROG
    parser.usage = (f"{PROG} {{{','.join(pipeline.COMMANDS)}}} INPUT... -o OUT_DIR [car flags] "
                    "[Beam pipeline options]")
    parser.description = ("car downscale / upscale / roundtrip as an Apache Beam pipeline "
                          "(docs/BEAM.md).")
    add_flags(parser)
    return parser


def parse(argv):
    """The parsed flags of argv (Beam's among them); inputs may stand between flags."""
    return build_parser().parse_intermixed_args(argv)


def beam_arguments(argv):
    """The tokens of argv that are Beam's pipeline options (with their values), in order."""
    _, others = _beam_parser().parse_known_args(argv)
    beam_argv = []
    for token in argv:
        if others and token == others[0]:
            others.pop(0)
        else:
            beam_argv.append(token)
    return beam_argv


def _absolute(path):
    return os.path.abspath(path) if files.is_local(path) else path


def _inputs(arguments, out_dir):
    """files.Input for each argument; UsageError for one that doesn't exist or matches
    nothing, or that the output folder holds."""
    inputs = [files.parse_input(argument) for argument in arguments]
    for source in inputs:
        if not source.in_folder:
            if not files.exists(source.pattern):
                raise UsageError(f"{source.argument}: no such file or folder")
            continue
        try:
            found = files.match(source.pattern, limit=1)
        except Exception as error:  # Each filesystem raises its own errors.
            raise UsageError(f"{source.argument}: {' '.join(str(error).split())}") from None
        if not found:
            raise UsageError(f"no files match {source.argument}")
        base = files.normalize(source.base.rstrip("/") or "/")
        if base == out_dir or files.is_below(base, out_dir):
            raise UsageError(f"the output folder {out_dir} holds the input {source.argument}; "
                             "a rerun would read the outputs: choose another -o folder")
    return inputs


def _memoised_model(args, name):
    """(memo key, ModelFacts or None) of a bundled model or a model_dir with a weights
    file, its manifest checked (model_check); (None, None) for the other kinds, which load
    to be checked."""
    from car_tf import pretrained
    from car_tf.beam import model_check

    if not files.is_local(name):
        return None, None
    try:
        kind, path = pretrained.resolve(name)
    except pretrained.ModelNotFoundError:
        return None, None  # the load reports it, in car's words
    if kind not in ("bundled", "model_dir"):
        return None, None
    try:
        pretrained.check_manifest(path, require_manifest=kind == "bundled")
    except ValueError as error:
        raise UsageError(f"model {name}: {' '.join(str(error).split())}") from None
    key = model_check.memo_key(path, args.resampler_impl)
    return key, None if key is None else model_check.read_memo(key)


def _load_model(args):
    """(model name or absolute path, its scale), the model checked against the flags: a
    bundled model or model_dir checked before, from model_check's memo (no TensorFlow);
    else by loading it once (_load_checked), memoising what the load established."""
    from car_tf import pretrained
    from car_tf.beam import model_check
    from car_tf.cli import DEFAULT_SCALE
    from car_tf.cli import _check_model_flags as check_model_flags

    name = args.model or pretrained.default_model_name(args.scale or DEFAULT_SCALE,
                                                       args.upscaler or "bicubic")
    if files.is_local(name) and os.path.exists(name):
        name = os.path.abspath(name)
    key, facts = _memoised_model(args, name)
    if facts is not None:
        check_model_flags(args, facts, name)
        check_tile(args.tile, facts)
        return name, facts.scale
    from car_tf.beam import engine

    model = _load_checked(args, name)
    check_tile(args.tile, model)
    if key is not None:
        model_check.write_memo(key, model_check.ModelFacts.of(model))
    # The workers of the DirectRunner's in_memory mode are this process: they find it loaded.
    worker = engine.shared_engine(name, args.resampler_impl, args.tile, args.bfloat16,
                                  args.precision, loaded=model)
    return name, worker.scale


def _load_checked(args, name):
    """The model, loaded: local bundled names, .keras files and model_dirs through car's own
    loading and checks, SavedModels and models on other filesystems through
    engine.load_model."""
    from car_tf.beam import engine
    from car_tf.cli import _load_model as load_checked

    if files.is_local(name) and not engine.is_saved_model(name):
        return load_checked(args)
    try:
        model = engine.load_model(name, args.resampler_impl)
    except (ValueError, OSError) as error:
        raise UsageError(f"model {name}: {' '.join(str(error).split())}") from None
    if args.scale is not None and args.scale != model.scale:
        raise UsageError(f"--scale {args.scale} but model {name} is for scale {model.scale}")
    return model


def prepare(args):
    """(Settings, [files.Input]) from parsed flags; UsageError for anything wrong."""
    if args.tile < 0:
        raise UsageError(f"--tile must be >= 0 (0 = no tiling), got {args.tile}")
    if args.max_pixels is not None and args.max_pixels < 0:
        raise UsageError(f"--max_pixels must be >= 0 (0 = no limit), got {args.max_pixels}")
    if args.batch_size < 1:
        raise UsageError(f"--batch_size must be >= 1, got {args.batch_size}")
    extension = output_extension(args.format)
    out_dir = _absolute(args.out_dir)
    inputs = _inputs(args.inputs, files.normalize(out_dir))
    model, scale = _load_model(args)
    settings = pipeline.Settings(
        command=args.command, out_dir=out_dir, model=model, scale=scale,
        resampler_impl=args.resampler_impl, tile=args.tile, extension=extension,
        max_pixels=args.max_pixels, bfloat16=args.bfloat16, precision=args.precision,
        batch_size=args.batch_size,
        dead_letters=args.dead_letters and _absolute(args.dead_letters),
        scores=args.scores and _absolute(args.scores), quiet=args.quiet)
    return settings, inputs


def main(argv=None):
    """Parses argv, runs the pipeline, returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    try:
        settings, inputs = prepare(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    counts = pipeline.run(settings, inputs, PipelineOptions(beam_arguments(argv)))
    total = counts["processed"] + counts["skipped"] + counts["failed"]
    if not settings.quiet:
        print(f"{PROG}: {counts['processed']} processed, {counts['skipped']} skipped (outputs "
              f"already there), {counts['failed']} failed, {counts['ignored']} other files "
              "passed over", file=sys.stderr)
    if counts["failed"]:
        print(f"{PROG}: {counts['failed']} of {total} files failed; paths and errors in "
              f"{settings.dead_letters_path}", file=sys.stderr)
        return EXIT_FILE_ERRORS
    return EXIT_OK
