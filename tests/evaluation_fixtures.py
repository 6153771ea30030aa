"""A tmp folder of tiny images and tiny models, shared by the tests of car_tf.evaluation."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from car_tf import evaluation
from car_tf.models import build_car_model, default_config


SCALE = 2


def smooth_image(height, width, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 6, 3)
    image = 0.5 + 0.4 * np.sin(xx[..., None] / 2.5 + phase) * np.cos(yy[..., None] / 3.5)
    return np.round(np.clip(image + 0.03 * rng.standard_normal(image.shape), 0, 1) * 255).astype(
        np.uint8
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Two images (a.png 30x21 is cropped to 24x16), a text file and a corrupt PNG."""
    folder = tmp_path_factory.mktemp("Tiny")
    Image.fromarray(smooth_image(30, 21, 0)).save(folder / "a.png")
    Image.fromarray(smooth_image(24, 32, 1)).save(folder / "b.png")
    (folder / "README.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return str(folder)


@pytest.fixture(scope="module")
def bicubic_model():
    tf.keras.utils.set_random_seed(1)
    return build_car_model(default_config(SCALE, "bicubic", variant="tiny"))


@pytest.fixture(scope="module")
def edsr_model():
    tf.keras.utils.set_random_seed(2)
    return build_car_model(default_config(SCALE, "edsr", variant="tiny"))


@pytest.fixture(scope="module")
def bicubic_report(bicubic_model, data_dir):
    return evaluation.evaluate_folder(bicubic_model, data_dir, progress_stream=False)


@pytest.fixture(scope="module")
def demo_page(edsr_model, tmp_path_factory):
    """(path, report): a page as `make demo` writes it (car_tf.demo.write_index), of two tiny
    images (one with a space in its name) and four pipelines: the tiny EDSR model is its own
    bicubic-LR baseline."""
    from car_tf import demo
    from car_tf.evaluation import views

    root = tmp_path_factory.mktemp("demo_output")
    data = root / "Tiny Set"
    data.mkdir()
    Image.fromarray(smooth_image(30, 21, 0)).save(data / "a b.png")
    Image.fromarray(smooth_image(48, 64, 1)).save(data / "c.png")
    report = evaluation.evaluate_folder(
        edsr_model, str(data), baseline=edsr_model, progress_stream=False,
        views_dir=str(root / "tiny model" / views.VIEWS_FOLDER),
    )
    return demo.write_index(str(root), [("tiny model", report)]), report
