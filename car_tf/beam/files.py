"""Which files an input names, where their outputs go, and reading and writing them
through Beam's FileSystems (local paths, and gs://, s3://, ... wherever the installed
Beam has those filesystems).

An input is a file, a folder, or a pattern (`*` within a folder, `**` across folders,
Beam's FileSystems syntax). Outputs mirror each file's path below the input's *base*:
the folder named, or for a pattern the folder before its first wildcard; a file named
directly lands in the output folder itself, as with `car`. Inside folders and under
patterns only files with an image extension count and hidden files and folders (".name")
are passed over, as car_tf.image_io.list_images does; files below the output folder are
never inputs, so that a rerun doesn't read the outputs of the last one.

Local files are read and written in place (image_io's writes are atomic: a temporary file,
then a rename). Other filesystems go through a local temporary copy: an object store
makes an upload visible only once it is complete, so those writes are atomic too.
"""

import dataclasses
import os
import shutil
import tempfile

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from car_tf.image_io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    read_image,
    write_image,
)

GLOB_CHARACTERS = "*?["
COPY_BUFFER_BYTES = 1 << 20


def is_local(path):
    """Whether `path` is on the local filesystem (no scheme, or file://)."""
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def normalize(path):
    """An absolute, symlink-free form of a local path; other paths unchanged."""
    return os.path.realpath(path) if is_local(path) else path


def _folder_prefix(path):
    """`path` with exactly one trailing separator."""
    return path.rstrip("/") + "/"


@dataclasses.dataclass(frozen=True)
class Input:
    """One command-line input, as Beam's FileSystems matches it.

    Attributes:
      argument: what was given.
      pattern: what FileSystems.match gets (a folder becomes <folder>/**).
      base: outputs mirror the matched paths below this prefix (ends in "/").
      in_folder: matched inside a folder or by a wildcard: only image extensions,
        no hidden files (False for a file named directly, kept whatever its name).
    """

    argument: str
    pattern: str
    base: str
    in_folder: bool


def parse_input(argument):
    """The Input for a file, folder or pattern; local paths are made absolute."""
    path = os.path.abspath(argument) if is_local(argument) else argument
    wildcards = [path.index(char) for char in GLOB_CHARACTERS if char in path]
    if wildcards:
        prefix = path[:min(wildcards)]
        return Input(argument, path, prefix[:prefix.rfind("/") + 1], True)
    if (os.path.isdir(path) if is_local(path) else path.endswith("/")):
        folder = _folder_prefix(path)
        return Input(argument, folder + "**", folder, True)
    return Input(argument, path, path[:path.rfind("/") + 1], False)


def relative_path(path, source_input):
    """`path` relative to its input's base ("/"-separated)."""
    if path.startswith(source_input.base):
        return path[len(source_input.base):]
    return path.rsplit("/", 1)[-1]


def counts_as_image(relative):
    """Whether a file found inside a folder or by a pattern is an input (see the module doc)."""
    parts = relative.split("/")
    if any(part.startswith(".") for part in parts):
        return False
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)


def is_below(path, folder):
    """Whether `path` is inside `folder` (both normalized)."""
    return path.startswith(_folder_prefix(folder))


def match(pattern, limit=None):
    """Paths FileSystems.match finds for one pattern (at most `limit`), sorted."""
    result = FileSystems.match([pattern], limits=None if limit is None else [limit])[0]
    return sorted(metadata.path for metadata in result.metadata_list)


def output_paths(out_dir, relative, command, extension=None):
    """The output paths of one input: [out_dir/relative], or for roundtrip
    [out_dir/lr/relative, out_dir/sr/relative]; `extension` (".png") replaces the input's."""
    if extension:
        relative = os.path.splitext(relative)[0] + extension
    if command == "roundtrip":
        return [FileSystems.join(out_dir, part, relative) for part in ("lr", "sr")]
    return [FileSystems.join(out_dir, relative)]


def exists(path):
    return FileSystems.exists(path)


def _extension(path):
    return os.path.splitext(path)[1]


def read(path, max_pixels=None):
    """read_image for any FileSystems path; ImageReadError names `path`."""
    if is_local(path):
        return read_image(path, max_pixels=max_pixels)
    with tempfile.TemporaryDirectory(prefix="car_tf_read_") as scratch:
        local = os.path.join(scratch, "image" + _extension(path))
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source, \
                    open(local, "wb") as target:
                shutil.copyfileobj(source, target, COPY_BUFFER_BYTES)
        except Exception as error:  # Each filesystem raises its own errors (BeamIOError, ...).
            raise ImageReadError(path, f"can't read: {' '.join(str(error).split())}") from None
        try:
            return read_image(local, max_pixels=max_pixels)
        except ImageReadError as error:
            raise ImageReadError(path, error.reason) from None


def _upload(local, path):
    try:
        with open(local, "rb") as source, \
                FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as target:
            shutil.copyfileobj(source, target, COPY_BUFFER_BYTES)
    except Exception as error:  # Each filesystem raises its own errors (BeamIOError, ...).
        raise ImageWriteError(path, f"can't write: {' '.join(str(error).split())}") from None


def write(path, rgb, alpha, like, read_back=False):
    """Writes an output image atomically, with `like`'s ICC profile, EXIF and grayness.

    Args:
      path: any FileSystems path; its extension sets the format. Local folders are
        created as needed.
      rgb, alpha: uint8 [H, W, 3] and [H, W] or None, as image_io.write_image takes them.
      like: the DecodedImage the output was made from.
      read_back: also decode the file as written (roundtrip upscales the LR *file*, so
        that a lossy format counts).

    Returns:
      (notes, the file decoded or None).

    Raises:
      ImageWriteError naming `path`.
    """
    options = dict(alpha=alpha, icc_profile=like.icc_profile, grayscale=like.was_grayscale,
                   exif=like.exif)
    if is_local(path):
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise ImageWriteError(
                path, f"can't create folder {folder}: {error.strerror or error}") from None
        notes = write_image(path, rgb, **options)
        return notes, read_image(path) if read_back else None
    with tempfile.TemporaryDirectory(prefix="car_tf_write_") as scratch:
        local = os.path.join(scratch, "image" + _extension(path))
        notes = write_image(local, rgb, **options)
        decoded = read_image(local) if read_back else None
        _upload(local, path)
    return notes, decoded


def _copy_to_local(source, local):
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as reader, \
            open(local, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_BUFFER_BYTES)


def localize(path, scratch):
    """A local copy, inside the folder `scratch`, of a model file or folder (a SavedModel,
    a training model_dir: every file below it) on another filesystem; `path` itself if local."""
    if is_local(path):
        return path
    target = os.path.join(scratch, path.rstrip("/").rsplit("/", 1)[-1])
    if match(path) == [path]:
        _copy_to_local(path, target)
        return target
    prefix = _folder_prefix(path)
    files = match(prefix + "**")
    if not files:
        raise FileNotFoundError(f"{path}: no such file or folder")
    for source in files:
        _copy_to_local(source, os.path.join(target, source[len(prefix):]))
    return target
