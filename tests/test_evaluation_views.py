"""car_tf.evaluation.views: the pictures an HTML report shows, and evaluate's views_dir."""

import os

import numpy as np
from PIL import Image

from car_tf import evaluation
from car_tf.evaluation import figures, views
from car_tf.protocol import bicubic_downscale_uint8
from evaluation_fixtures import (  # noqa: F401 (fixtures)
    SCALE,
    bicubic_model,
    data_dir,
    smooth_image,
)


def _read(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_every_picture_is_the_exact_image_as_png(tmp_path):
    hr = smooth_image(32, 48, 3)
    lr = bicubic_downscale_uint8(hr, 2)
    sr = np.clip(hr.astype(int) + 3, 0, 255).astype(np.uint8)
    score = evaluation.ImageScore("Set", 2, "standard", "bicubic", "bicubic", 30.0, 0.9, 29.0,
                                  12.5, image="sub/x.png")
    result = views.save_views(str(tmp_path), "Set", 2, os.path.join("sub", "x.png"), hr,
                              {"bicubic": lr}, [sr], [score])
    assert (result.dataset, result.scale, result.image) == ("Set", 2, os.path.join("sub", "x.png"))
    hr_view, lr_view, sr_view = result.pictures
    assert [p.kind for p in result.pictures] == ["hr", "lr", "sr"]
    assert os.path.dirname(hr_view.path) == str(tmp_path / "Set_x2")
    assert [os.path.basename(p.path) for p in result.pictures] == [
        "sub_x_hr.png", "sub_x_lr_bicubic.png", "sub_x_sr_bicubic_bicubic.png"]
    for picture, exact in ((hr_view, hr), (lr_view, lr), (sr_view, sr)):
        np.testing.assert_array_equal(_read(picture.path), exact)
        assert (picture.height, picture.width) == exact.shape[:2]
    assert lr_view.lr_bpp == 12.5 and lr_view.psnr_y is None
    assert (sr_view.label, sr_view.psnr_y, sr_view.ssim_y) == ("bicubic + bicubic", 30.0, 0.9)
    top, left, size = figures.crop_box(hr, 2)
    assert result.centre == (left + size // 2, top + size // 2)


def test_evaluate_writes_views_only_when_asked(bicubic_model, data_dir, tmp_path):
    plain = evaluation.evaluate_folder(bicubic_model, data_dir, progress_stream=False)
    assert plain.views == []
    report = evaluation.evaluate(bicubic_model, [data_dir], progress_stream=False,
                                 views_dir=str(tmp_path))
    assert [v.image for v in report.views] == ["a.png", "b.png"]
    for view in report.views:
        scores = [s for s in report.per_image if s.image == view.image]
        sr = [p for p in view.pictures if p.kind == "sr"]
        assert [(p.downscaler, p.upscaler, p.psnr_y) for p in sr] == [
            (s.downscaler, s.upscaler, s.psnr_y) for s in scores]
        assert all(os.path.isfile(p.path) for p in view.pictures)
        lr = {p.downscaler: p for p in view.pictures if p.kind == "lr"}
        assert sorted(lr) == ["bicubic", "car"]
        assert all(p.width * SCALE == view.pictures[0].width for p in lr.values())
    # The scores are those of the exact images, whatever the copies.
    assert [s.psnr_y for s in report.per_image] == [s.psnr_y for s in plain.per_image]
