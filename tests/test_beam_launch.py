"""car_tf.beam.launch (tools/beam_downscale.py): flags, usage errors before the pipeline,
the model check's memo (car_tf.beam.model_check), a 12 MP image in tiles with bounded
memory, and car_tf without Apache Beam."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from beam_fixtures import model_check_memo  # noqa: F401 (fixture)
from car_tf.beam import launch, model_check, pipeline
from car_tf.image_io import write_image
from synthetic_images import photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "car-x4-bicubic"


@pytest.fixture
def no_pipeline(monkeypatch):
    """Fails the test if the pipeline starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline started")
    monkeypatch.setattr(pipeline, "run", refuse)


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(str(folder / "a.png"), photo(16, 16))
    return folder


@pytest.mark.parametrize("model, message", [
    ("no-such-model", "no-such-model' is neither a bundled name"),
    ("missing/car.keras", "is neither a bundled name"),
])
def test_a_missing_model_is_one_line_before_the_pipeline(model, message, image_dir, tmp_path,
                                                          capsys, no_pipeline):
    status = launch.main(["downscale", str(image_dir), "-o", str(tmp_path / "out"),
                          "--model", model])
    assert status == launch.EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("beam_downscale: error: ")
    assert message in lines[0]


@pytest.mark.parametrize("pattern, message", [
    ("{dir}/*.jpg", "no files match {dir}/*.jpg"),
    ("{dir}/empty", "no files match {dir}/empty"),
    ("{dir}/gone.png", "{dir}/gone.png: no such file or folder"),
])
def test_an_empty_pattern_is_one_line_before_the_pipeline(pattern, message, image_dir,
                                                           tmp_path, capsys, no_pipeline):
    (image_dir / "empty").mkdir()
    status = launch.main(["downscale", pattern.format(dir=image_dir), "-o",
                          str(tmp_path / "out"), "--model", MODEL])
    assert status == launch.EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"beam_downscale: error: {message.format(dir=image_dir)}"]


def test_other_usage_errors(image_dir, tmp_path, capsys, no_pipeline):
    base = ["downscale", str(image_dir), "-o", str(tmp_path / "out"), "--model", MODEL]
    for extra, message in [(["--format", "gif"], "--format 'gif' is not one of"),
                           (["--scale", "2"], "--scale 2 but model"),
                           (["--upscaler", "edsr"], "--upscaler edsr but model"),
                           (["--tile", "8"], "--tile 8 is smaller than this model's halo"),
                           (["--batch_size", "0"], "--batch_size must be >= 1")]:
        assert launch.main(base + extra) == launch.EXIT_USAGE
        assert message in capsys.readouterr().err
    assert launch.main(["downscale", str(image_dir), "-o", str(image_dir.parent),
                        "--model", MODEL]) == launch.EXIT_USAGE
    assert "a rerun would read the outputs" in capsys.readouterr().err


def test_beam_options_and_inputs_mix_in_any_order(tmp_path):
    argv = ["downscale", "--runner", "DirectRunner", "a.png", "--direct_num_workers", "2",
            "b/", "-o", str(tmp_path), "--direct_running_mode=multi_processing", "--tile", "64"]
    args = launch.parse(argv)
    assert args.inputs == ["a.png", "b/"] and args.tile == 64
    assert launch.beam_arguments(argv) == ["--runner", "DirectRunner", "--direct_num_workers",
                                           "2", "--direct_running_mode=multi_processing"]
    options = launch.PipelineOptions(launch.beam_arguments(argv)).get_all_options()
    assert (options["runner"], options["direct_num_workers"]) == ("DirectRunner", 2)


_CHECK = textwrap.dedent("""
    import json, sys
    from car_tf.beam import launch
    try:
        launch.prepare(launch.parse(sys.argv[1:]))
        error = None
    except launch.UsageError as usage:
        error = str(usage)
    print(json.dumps({"error": error, "tensorflow": "tensorflow" in sys.modules}))
""")


def _check_in_a_fresh_process(argv):
    result = subprocess.run([sys.executable, "-c", _CHECK, *argv], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_model_checked_once_is_checked_again_without_tensorflow(image_dir, tmp_path,
                                                                  model_check_memo):
    base = ["downscale", str(image_dir), "-o", str(tmp_path / "out"), "--model", MODEL]
    assert _check_in_a_fresh_process(base) == {"error": None, "tensorflow": True}
    assert len(os.listdir(model_check_memo / model_check.MEMO_FOLDER)) == 1
    assert _check_in_a_fresh_process(base) == {"error": None, "tensorflow": False}
    for extra, message in [(["--tile", "8"], "--tile 8 is smaller than this model's halo"),
                           (["--scale", "2"], "--scale 2 but model"),
                           (["--upscaler", "edsr"], "--upscaler edsr but model")]:
        report = _check_in_a_fresh_process(base + extra)
        assert message in report["error"] and not report["tensorflow"], extra


def test_a_changed_model_is_loaded_again(image_dir, tmp_path, monkeypatch):
    import shutil

    from car_tf import pretrained

    model_dir = tmp_path / "model"
    shutil.copytree(os.path.join(pretrained.PRETRAINED_DIR, MODEL), model_dir)
    (model_dir / pretrained.MANIFEST).unlink()  # a training model_dir: nothing to verify
    # Memos are keyed by the files' contents, not their path: another test's check of the
    # bundled model would answer for this copy.
    monkeypatch.setenv(model_check.CACHE_ENV, str(tmp_path / "memo"))
    loads = []
    real = launch._load_checked
    monkeypatch.setattr(launch, "_load_checked",
                        lambda *args: loads.append(args) or real(*args))
    argv = ["downscale", str(image_dir), "-o", str(tmp_path / "out"), "--model",
            str(model_dir)]
    for _ in range(2):
        settings, _ = launch.prepare(launch.parse(argv))
        assert settings.scale == 4
    assert len(loads) == 1  # the second check read the memo
    launch.prepare(launch.parse(argv + ["--resampler_impl", "custom"]))
    assert len(loads) == 2  # whether the op library loads is no file's to vouch for
    weights = model_dir / pretrained.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(launch.UsageError, match=f"model {model_dir}: "):
        launch.prepare(launch.parse(argv))
    assert len(loads) == 3


def test_an_unusable_memo_is_no_error(tmp_path, monkeypatch):
    facts = model_check.ModelFacts(4, "bicubic", 42, 2)
    monkeypatch.setenv(model_check.CACHE_ENV, str(tmp_path / "memo"))
    model_check.write_memo("key", facts)
    assert model_check.read_memo("key") == facts
    (tmp_path / "memo" / model_check.MEMO_FOLDER / "key.json").write_text("{not json")
    assert model_check.read_memo("key") is None
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv(model_check.CACHE_ENV, str(tmp_path / "file"))
    model_check.write_memo("key", facts)
    assert model_check.read_memo("key") is None


_PEAK = textwrap.dedent("""
    import json, sys
    from car_tf.beam import engine, launch
    from car_tf.memory import peak_memory
    status = launch.main(sys.argv[1:])
    (worker,) = engine._engines.values()
    print(json.dumps({"status": status, "network_calls": worker.network_calls,
                      "tiles": len(worker.runner.downscale_tiles(3000, 4000)),
                      **peak_memory()}))
""")


@pytest.mark.slow
def test_a_12_mp_image_goes_through_in_tiles_with_bounded_memory(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    small = photo(750, 1000)
    big = np.kron(small, np.ones((4, 4, 1), np.uint8))  # 3000 x 4000, 12 MP
    big = np.clip(big + rng.integers(0, 4, big.shape, dtype=np.uint8), 0, 255).astype(np.uint8)
    source = tmp_path / "in" / "big.png"
    source.parent.mkdir()
    write_image(str(source), big, png_compress_level=1)
    del big
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, "downscale", str(source.parent), "-o", str(out),
         "--model", MODEL, "--quiet", "--runner", "DirectRunner"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == launch.EXIT_OK
    assert report["tiles"] == 12 and report["network_calls"] == 12  # 4 x 3 tiles of 1024
    # `car downscale` peaks at about 1.1 GB on this image (docs/BENCHMARKS.md); untiled, the
    # network's activations alone would take several GB.
    assert report["peak_rss_mib"] < 2048, report
    from car_tf.image_io import read_image

    assert read_image(str(out / "big.png")).rgb.shape == (750, 1000, 3)


_WITHOUT_BEAM = textwrap.dedent("""
    import sys

    class NoBeam:
        def find_spec(self, name, path=None, target=None):
            if name == "apache_beam" or name.startswith("apache_beam."):
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoBeam())
    import car_tf
    from car_tf import cli
    status = cli.main(["downscale", sys.argv[1], "-o", sys.argv[2], "--model", "%s",
                       "--quiet"])
    assert status == 0, status
    try:
        import car_tf.beam
    except ImportError as error:
        print("ImportError:", error)
    assert not any(name.startswith("apache_beam") for name in sys.modules)
""" % MODEL)


def test_car_tf_imports_and_works_without_apache_beam(image_dir, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", _WITHOUT_BEAM, str(image_dir), str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "a.png").is_file()
    assert "ImportError: car_tf.beam needs Apache Beam" in result.stdout
    assert "pip install 'car_tf[beam]'" in result.stdout
