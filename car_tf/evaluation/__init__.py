"""Evaluation of a CAR model on folders of HR images: the standard SR tables, and pictures.

  scoring.py  the protocol applied to every image of a folder, means per dataset
  report.py   the scores and the report they make
  tables.py   Markdown, CSV and JSON tables of a report
  figures.py  comparison pictures, LR spectra, PNG bits per pixel
  rate_distortion.py  the LR through real codecs (JPEG, WebP): RD points, BD deltas, RD plots

The protocol's helpers (crop, the reference bicubic downscale, SR to 8 bits) are
car_tf.protocol's.
"""

from car_tf.evaluation.report import ImageScore, Report, Row, Scores
from car_tf.evaluation.scoring import NoImagesError, evaluate, evaluate_folder, pipelines
from car_tf.evaluation.tables import CSV_COLUMNS, PER_IMAGE_COLUMNS, markdown, write_tables

__all__ = [
    "CSV_COLUMNS",
    "ImageScore",
    "NoImagesError",
    "PER_IMAGE_COLUMNS",
    "Report",
    "Row",
    "Scores",
    "evaluate",
    "evaluate_folder",
    "markdown",
    "pipelines",
    "write_tables",
]
