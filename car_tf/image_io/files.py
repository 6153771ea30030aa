"""Which files are images, and finding them in folders."""

import os


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

# Images that a folder walk passes over but that a user would expect to be processed, with
# why: a caller names them instead of leaving them out silently.
UNREAD_IMAGE_EXTENSIONS = {".gif": "GIF is not read; convert it to PNG to process it"}


def unread_image_reason(path):
    """Why an image file of an UNREAD_IMAGE_EXTENSIONS kind is skipped, else None."""
    return UNREAD_IMAGE_EXTENSIONS.get(os.path.splitext(path)[1].lower())


def list_images(paths, recursive=True, skipped=None):
    """The image files named by `paths`, in a stable order.

    Args:
      paths: a file or folder path, or a sequence of them.
      recursive: walk sub-folders of each folder.
      skipped: a list that, when given, gets the paths of the files inside folders
        that were passed over (other extensions, hidden files, hidden folders' files).

    Returns:
      A list of paths. Inside folders only files with an IMAGE_EXTENSIONS
      extension (any case) count, and hidden files and folders (".name") are
      skipped. A file named directly is kept whatever its extension, and so is a
      path that does not exist, so that read_image reports it by name instead of
      it vanishing silently. Each folder's files are sorted; duplicates are dropped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            found.append(path)
            continue
        if recursive:
            walk = os.walk(path)
        else:
            walk = [(path, [], next(os.walk(path), (path, [], []))[2])]
        for folder, subfolders, files in walk:
            if skipped is not None:
                # Hidden folders are not walked; their files count as passed over.
                for hidden in sorted(d for d in subfolders if d.startswith(".")):
                    for root, _, names in os.walk(os.path.join(folder, hidden)):
                        skipped.extend(os.path.join(root, name) for name in sorted(names))
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(os.path.join(folder, name))
                elif skipped is not None:
                    skipped.append(os.path.join(folder, name))
    return list(dict.fromkeys(found))
