"""The errors users see from image files: one line that names the file and what went wrong."""

import os


class ImageReadError(Exception):
    """An image file that can't be read: missing, empty, corrupt, truncated, too large."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageWriteError(Exception):
    """An image file that can't be written: bad extension, folder not writable, disk full."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def error_reason(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
