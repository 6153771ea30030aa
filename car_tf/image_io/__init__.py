"""Reading and writing image files at the edges of car_tf.

Whatever is on disk (PNG, JPEG, WebP, TIFF or BMP; grayscale, palette, RGBA,
16-bit, rotated by an EXIF tag) comes in as an 8-bit RGB array plus an optional
8-bit alpha plane, with notes saying what was converted. Writing goes back the
other way, atomically, with the format taken from the file extension.

User-facing failures raise ImageReadError / ImageWriteError, whose str() is one
line that names the file: the CLI prints it and moves on to the next file.

  read.py    read_image, DecodedImage
  write.py   write_image
  files.py   IMAGE_EXTENSIONS, list_images (folder walking), unread_image_reason
  errors.py  ImageReadError, ImageWriteError
"""

from car_tf.image_io.errors import ImageReadError, ImageWriteError
from car_tf.image_io.files import IMAGE_EXTENSIONS, list_images, unread_image_reason
from car_tf.image_io.read import DecodedImage, read_image
from car_tf.image_io.write import JPEG_QUALITY, write_image

__all__ = [
    "DecodedImage",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageWriteError",
    "JPEG_QUALITY",
    "list_images",
    "read_image",
    "unread_image_reason",
    "write_image",
]
