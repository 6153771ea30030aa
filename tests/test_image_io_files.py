"""car_tf.image_io.files: which files count as images, and walking folders for them."""

import os

from car_tf import image_io


def test_list_images(tmp_path):
    for relative in [
        "b.png",
        "a.JPG",
        "notes.txt",
        ".hidden.png",
        "sub/c.webp",
        "sub/deeper/d.tiff",
        ".git/e.png",
    ]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = image_io.list_images(tmp_path)
    assert found == [
        str(tmp_path / "a.JPG"),
        str(tmp_path / "b.png"),
        str(tmp_path / "sub" / "c.webp"),
        str(tmp_path / "sub" / "deeper" / "d.tiff"),
    ]
    assert image_io.list_images([tmp_path], recursive=False) == found[:2]
    # Named files are kept whatever they are, and so are missing paths, so that
    # read_image can name them; duplicates go.
    named = [tmp_path / "notes.txt", tmp_path / "missing.png", tmp_path / "b.png"]
    assert image_io.list_images(named + [tmp_path / "b.png"]) == [str(path) for path in named]
    # What a walk passes over, for the caller's note.
    skipped = []
    assert image_io.list_images(tmp_path, skipped=skipped) == found
    assert sorted(skipped) == sorted(str(tmp_path / name) for name in
                                     ("notes.txt", ".hidden.png", os.path.join(".git", "e.png")))
