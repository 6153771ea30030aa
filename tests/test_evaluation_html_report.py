"""car_tf.evaluation.html_report: the page's structure, alt text, best values, image paths,
no network; and tools/evaluate.py --html. tests/test_evaluation_html_report_browser.py opens
the page in a real browser."""

import html.parser
import json
import os
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from car_tf import evaluation, models
from car_tf.evaluation import html_report, rate_distortion
from car_tf.evaluation.rate_distortion import RDPoint, RDReport
from evaluation_fixtures import (  # noqa: F401 (fixtures)
    SCALE,
    data_dir,
    demo_page,
    edsr_model,
    smooth_image,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Element:
    def __init__(self, tag, attrs, parents):
        self.tag, self.attrs, self.parents, self.text = tag, dict(attrs), parents, ""

    def classes(self):
        return set((self.attrs.get("class") or "").split())

    def inside(self, tag, cls=None):
        return any(p.tag == tag and (cls is None or cls in p.classes()) for p in self.parents)


class Parsed(html.parser.HTMLParser):
    """Every element of a page with its attributes, ancestors and own text."""

    VOID = {"img", "input", "meta", "link", "br"}

    def __init__(self, text):
        super().__init__()
        self.elements, self.stack = [], []
        self.feed(text)
        assert not self.stack, [e.tag for e in self.stack]  # every element closed

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, list(self.stack))
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1].tag == tag, (tag, [e.tag for e in self.stack])
        self.stack.pop()

    def handle_data(self, data):
        for element in self.stack:
            element.text += data

    def all(self, tag, cls=None):
        return [e for e in self.elements if e.tag == tag and (cls is None or cls in e.classes())]


@pytest.fixture(scope="module")
def page(demo_page):
    path, report = demo_page
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return path, report, text, Parsed(text)


def test_page_has_a_table_and_a_viewer_per_image(page):
    path, report, text, parsed = page
    assert text.startswith("<!DOCTYPE html>") and os.path.basename(path) == "index.html"
    assert [h.text for h in parsed.all("h1")] == ["car_tf demo: bundled models on the sample images"]
    # The contents link to the one section; the section's table has the four pipelines.
    sections = parsed.all("section")
    assert [s.attrs["id"] for s in sections] == ["tiny-model"]
    assert [a.attrs["href"] for a in parsed.all("a")] == ["#tiny-model"]
    tables = parsed.all("table", "scores")
    assert len(tables) == 1 and "Tiny Set ×2" in tables[0].text
    rows = [tr for tr in parsed.all("tr") if tr.inside("tbody")]
    assert len(rows) == 4 == len(report.rows)
    articles = parsed.all("article", "image")
    assert [a.attrs["id"] for a in articles] == ["tiny-model-tiny-set-2-a-b-png",
                                                 "tiny-model-tiny-set-2-c-png"]
    for view in report.views:
        # HR, the bicubic and CAR LR, four SR: in the strip, in both pickers.
        assert [p.kind for p in view.pictures] == ["hr", "lr", "lr", "sr", "sr", "sr", "sr"]
    strip = [img for img in parsed.all("img") if img.inside("ul", "strip")]
    assert len(strip) == 2 * 7
    for cls in ("pick-before", "pick-after"):
        pickers = parsed.all("select", cls)
        assert len(pickers) == 2
    options = [o for o in parsed.all("option") if o.inside("select", "pick-after")]
    assert len(options) == 2 * 7
    sliders = parsed.all("input", "split")
    assert len(sliders) == 2
    assert all(s.attrs["type"] == "range" and s.attrs.get("aria-label") for s in sliders)
    # Each SR's PSNR/SSIM is shown with it.
    for view in report.views:
        for picture in view.pictures[3:]:
            assert f"{picture.label}: PSNR-Y {picture.psnr_y:.2f} dB, SSIM-Y {picture.ssim_y:.4f}" in text
    # The zoom starts on the most detailed region, in HR pixels.
    viewers = parsed.all("div", "viewer")
    assert [(int(v.attrs["data-zoom-x"]), int(v.attrs["data-zoom-y"])) for v in viewers] == [
        view.centre for view in report.views]


def test_every_image_has_alt_text_and_a_relative_source_that_exists(page):
    path, report, _, parsed = page
    images = parsed.all("img")
    assert len(images) == 2 * (7 + 2)  # the strip, and the two pictures of each viewer
    page_dir = os.path.dirname(path)
    written = {os.path.abspath(p.path) for view in report.views for p in view.pictures}
    for image in images:
        alt, src = image.attrs.get("alt", ""), image.attrs["src"]
        assert alt.strip(), image.attrs
        assert urllib.parse.urlsplit(src).scheme == "" and not src.startswith("/"), src
        target = os.path.abspath(os.path.join(page_dir, urllib.parse.unquote(src)))
        assert os.path.isfile(target) and target in written, src
    # The space in "a b.png" is escaped in the URL; LR pictures are marked for nearest display.
    assert any("a%20b_hr.png" in img.attrs["src"] for img in images)
    for image in images:
        if image.attrs.get("data-kind") == "lr":
            assert "lr" in image.classes() and "LR" in image.attrs["alt"]
    alts = [img.attrs["alt"] for img in images]
    assert "a b.png: HR, 16×24 pixels" in alts
    sr = report.views[1].pictures[-1]
    assert (f"c.png: SR by car downscaling and edsr upscaling, 64×48 pixels, PSNR-Y "
            f"{sr.psnr_y:.2f} dB, SSIM-Y {sr.ssim_y:.4f}") in alts
    canvases = parsed.all("canvas")
    assert len(canvases) == 4 and all(c.attrs.get("role") == "img" and c.attrs.get("aria-label")
                                      for c in canvases)


def test_page_loads_nothing_from_the_network(page):
    _, _, text, parsed = page
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert not [s for s in parsed.all("script") if "src" in s.attrs]
    assert [link.attrs for link in parsed.all("link")] == [{"rel": "icon", "href": "data:,"}]
    assert "@import" not in text and "url(" not in text
    # The script and style are inlined whole.
    with open(os.path.join(html_report.ASSETS_DIR, "report.js"), encoding="utf-8") as handle:
        assert handle.read() in text


def _row(down, up, psnr_y, ssim_y, psnr_rgb, lr_bpp, dataset="Set5"):
    return evaluation.Row(dataset, 4, "standard", down, up, psnr_y, ssim_y, psnr_rgb, lr_bpp, 5)


def _best_cells(body):
    """{(row, column): text} of the cells marked best in a page fragment."""
    parsed = Parsed(body)
    marked = {}
    for r, tr in enumerate(tr for tr in parsed.all("tr") if tr.inside("tbody")):
        cells = [td for td in parsed.all("td") if tr in td.parents]
        for c, td in enumerate(cells):
            if "best" in td.classes():
                marked[(r, c)] = td.text
    return marked


def test_the_best_value_of_each_column_is_marked():
    rows = [
        _row("bicubic", "bicubic", 28.42, 0.8104, 26.69, 17.03),
        _row("car", "bicubic", 29.01, 0.8301, 27.12, 15.08),
        _row("bicubic", "edsr", 30.551, 0.8612, 28.004, 17.03),
        _row("car", "edsr", 30.549, 0.8590, 27.50, 15.081),
        _row("bicubic", "bicubic", 26.0, 0.70, 25.0, 9.0, dataset="Set14"),
    ]
    report = evaluation.Report("standard", rows, [], [], [])
    section = html_report.report_section(report, ".", "a model")
    # Columns: downscaler, upscaler, PSNR-Y, SSIM-Y, PSNR-RGB, bpp. Ties as shown (30.55 twice,
    # 15.08 twice) mark every row; fewer bits is better; a one-row table marks nothing.
    assert _best_cells(section.body) == {
        (2, 2): "30.55", (3, 2): "30.55", (2, 3): "0.8612", (2, 4): "28.00",
        (1, 5): "15.08", (3, 5): "15.08",
    }
    assert section.body.count("<table") == 2


def test_best_values_skip_missing_ones_and_count_infinity():
    column = html_report.Column("x", lambda value: value, "{:.2f}", max)
    assert html_report.best_rows([1.0, float("nan"), None, 2.0], column) == {3}
    assert html_report.best_rows([float("inf"), 40.0], column) == {0}
    assert html_report.best_rows([float("nan"), 3.0], column) == set()
    table = html_report.score_table("t", ("name",), [("a",), ("b",)], [float("inf"), 40.0],
                                    [column])
    assert "∞" in table and "<caption>t</caption>" in table


def _rd_report(tmp_path):
    points = []
    for down, gain in (("bicubic", 0.0), ("lanczos", 0.2), ("car", 0.5)):
        for quality, bpp in ((30, 0.1), (50, 0.15), (70, 0.2), (90, 0.35)):
            points.append(RDPoint("Set5", 4, "jpeg", quality, down, "bicubic",
                                  25 + 10 * bpp + gain, 0.7 + bpp / 10, bpp, 5))
    report = RDReport("jpeg", [30, 50, 70, 90], points, rate_distortion.bd_deltas(points), [])
    rate_distortion.write(report, str(tmp_path))
    return report


def test_rd_section_shows_the_plot_the_bd_deltas_and_a_table_per_quality(tmp_path):
    report = _rd_report(tmp_path)
    section = html_report.rd_section(report, str(tmp_path), "car, LR through jpeg")
    parsed = Parsed(section.body)
    [plot] = parsed.all("img")
    assert plot.attrs["src"] == "Set5_x4_jpeg_bicubic.png"
    assert "Rate-distortion plot" in plot.attrs["alt"] and "car" in plot.attrs["alt"]
    tables = parsed.all("table", "scores")
    assert len(tables) == 1 + 4
    assert "Bjontegaard deltas against bicubic" in tables[0].text
    # BD table rows: lanczos, car against bicubic; car saves the most bits and gains most dB.
    bd = [d for d in report.deltas if d.reference == "bicubic"]
    assert [d.downscaler for d in bd] == ["lanczos", "car"]
    best = _best_cells(section.body)
    assert best[(1, 1)] == f"{bd[1].bd_rate:+.1f}" and best[(1, 2)] == f"{bd[1].bd_psnr:+.3f}"
    page_text = html_report.page("t", [section])
    assert "http://" not in page_text and "https://" not in page_text


def test_rd_section_without_its_plot_is_an_error(tmp_path):
    report = _rd_report(tmp_path)
    report.plot_paths = []
    with pytest.raises(ValueError, match="no RD plot for Set5"):
        html_report.rd_section(report, str(tmp_path), "t")


def test_a_missing_picture_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        html_report.image_url(str(tmp_path / "gone.jpg"), str(tmp_path))


def test_text_is_escaped(tmp_path):
    section = html_report.Section("<b>model</b> & co", "m", "")
    text = html_report.page("a <title>", [section], notes=["x < y"])
    assert "<b>model</b>" not in text and "&lt;b&gt;model&lt;/b&gt; &amp; co" in text
    assert "a &lt;title&gt;" in text and "x &lt; y" in text
    Parsed(text)


def _run_tool(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "evaluate.py"), *flags],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def _check_page(path):
    with open(path, encoding="utf-8") as handle:
        parsed = Parsed(handle.read())
    sources = [img.attrs["src"] for img in parsed.all("img")]
    assert sources and all(
        os.path.isfile(os.path.join(os.path.dirname(path), urllib.parse.unquote(src)))
        for src in sources)
    return parsed


@pytest.mark.slow
def test_tool_writes_report_html_lossless_and_under_a_codec(edsr_model, data_dir, tmp_path):
    model_path = tmp_path / "car.keras"
    edsr_model.save(str(model_path))
    out = tmp_path / "out"
    result = _run_tool(f"--model={model_path}", f"--data_dir={data_dir}", "--html",
                       f"--out_dir={out}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"]  # stdout still holds only the JSON
    parsed = _check_page(out / "report.html")
    assert len(parsed.all("article", "image")) == 2  # a.png and b.png; broken.png is noted
    assert any("broken.png" in p.text for p in parsed.all("p", "note"))

    rd_out = tmp_path / "rd"
    result = _run_tool(f"--model={model_path}", f"--data_dir={data_dir}", "--html",
                       f"--out_dir={rd_out}", "--lr_codec=jpeg", "--lr_quality=40",
                       "--lr_quality=60", "--lr_quality=80", "--lr_quality=95")
    assert result.returncode == 0, result.stderr
    parsed = _check_page(rd_out / "report.html")
    assert len(parsed.all("img")) == 2  # the RD plots of the bicubic and EDSR upscalers
    assert any("Bjontegaard" in t.text for t in parsed.all("table"))


@pytest.mark.slow
def test_tool_html_needs_an_out_dir(data_dir):
    result = _run_tool("--model=car-x2-bicubic", f"--data_dir={data_dir}", "--html")
    assert result.returncode != 0 and "--html needs --out_dir" in result.stderr
