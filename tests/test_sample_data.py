"""car_tf.sample_data: the bundled images and the benchmarks' synthetic photo."""

import numpy as np
from PIL import Image

from car_tf import sample_data


def test_sample_images_are_the_five_bundled_pngs():
    paths = sample_data.sample_images()
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]


def test_synthetic_photo_has_the_size_asked_for_is_repeatable_and_noisy():
    photo = sample_data.synthetic_photo(30, 41)
    assert photo.shape == (30, 41, 3) and photo.dtype == np.uint8
    np.testing.assert_array_equal(photo, sample_data.synthetic_photo(30, 41))
    with Image.open(sample_data.sample_images()[2]) as image:
        smooth = np.asarray(image.convert("RGB").resize((41, 30), Image.BICUBIC)).astype(float)
    difference = photo.astype(float) - smooth
    # The noise is there (sigma 3 levels), and it is noise, not a different picture (its mean
    # is off 0 only where the clip to 0..255 cuts it).
    assert 2.0 < difference.std() < 4.0 and abs(difference.mean()) < 1.0
