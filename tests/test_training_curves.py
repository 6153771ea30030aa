"""car_tf.analysis.training_curves: scalars read back from event files and drawn as PNG."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from car_tf.analysis import training_curves


def _write_run(model_dir):
    writer = tf.summary.create_file_writer(os.path.join(model_dir, "eval"))
    with writer.as_default():
        for step, value in [(0, 1.0), (10, 2.0), (20, 1.5), (10, 2.5)]:  # step 10 written twice
            tf.summary.scalar("psnr_y/Set5", value, step=step)
        tf.summary.image("baby/hr", np.zeros((1, 4, 4, 3), np.float32), step=0)
        tf.summary.histogram("offsets_x", np.arange(5.0), step=0)
    writer.close()


def test_read_scalars_keeps_curves_only_and_the_last_value_of_a_step(tmp_path):
    _write_run(str(tmp_path))
    series = training_curves.read_scalars(str(tmp_path / "eval"))
    assert list(series) == ["psnr_y/Set5"]
    steps, values = series["psnr_y/Set5"]
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(values, [1.0, 2.5, 1.5])


def test_plot_model_dir_writes_one_panel_per_curve(tmp_path):
    _write_run(str(tmp_path / "run"))
    paths = training_curves.plot_model_dir(str(tmp_path / "run"), str(tmp_path / "out"))
    assert [os.path.basename(p) for p in paths] == ["run_eval.png"]
    with Image.open(paths[0]) as image:
        assert image.size == (2 * training_curves.PANEL_SIZE[0], training_curves.PANEL_SIZE[1])


def test_a_model_dir_without_curves_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        training_curves.plot_model_dir(str(tmp_path), str(tmp_path / "out"))
