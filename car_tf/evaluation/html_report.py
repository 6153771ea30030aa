"""Evaluation results as one HTML page: tables, RD plots, and every image to compare by eye.

The page opens from file:// and loads nothing from the network: its style and script
(report_assets/) are inlined, and its pictures are files beside it (written by
car_tf.evaluation.views, RD plots by rate_distortion.write), named by relative paths.

  report_section(report, page_dir, title)  a lossless evaluation: a table per dataset with the
                                           best value of each column marked, then a viewer per
                                           image (before/after slider, zoom, PSNR/SSIM)
  rd_section(rd_report, page_dir, title)   a codec evaluation: RD plots, a table per quality,
                                           Bjontegaard deltas against bicubic
  write_page(path, title, sections)        the page
"""

import dataclasses
import html
import math
import os
import re
import urllib.parse

from car_tf.evaluation import rate_distortion

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_assets")
# The viewer shows images narrower than this enlarged by an integer factor (nearest).
MIN_DISPLAY_WIDTH = 320
ZOOM_FACTORS = (2, 4, 8)
DEFAULT_ZOOM = 4
HELP = (
    "Each image: pick the two pictures to compare (or click one below the viewer; "
    "shift-click for the left side). Drag on the image, or focus the slider and use the "
    "arrow keys, to move the divider. The zoom follows the mouse and keeps its place when "
    "you switch pictures; focus a zoom and use the arrow keys to move it. LR pixels are "
    "shown enlarged by nearest neighbour."
)


@dataclasses.dataclass
class Section:
    """A titled part of the page; body is HTML."""

    title: str
    anchor: str
    body: str


@dataclasses.dataclass
class Column:
    """A score column: header, the value of a record, its format, and which value is best
    (max or min)."""

    header: str
    value: object
    fmt: str
    best: object


LOSSLESS_COLUMNS = (
    Column("PSNR-Y (dB) ↑", lambda row: row.psnr_y, "{:.2f}", max),
    Column("SSIM-Y ↑", lambda row: row.ssim_y, "{:.4f}", max),
    Column("PSNR-RGB (dB) ↑", lambda row: row.psnr_rgb, "{:.2f}", max),
    Column("LR PNG bits per pixel ↓", lambda row: row.lr_bpp, "{:.2f}", min),
)
RD_COLUMNS = (
    Column("PSNR-Y (dB) ↑", lambda point: point.psnr_y, "{:.2f}", max),
    Column("SSIM-Y ↑", lambda point: point.ssim_y, "{:.4f}", max),
    Column("bits per HR pixel ↓", lambda point: point.bpp, "{:.4f}", min),
)
BD_COLUMNS = (
    Column("BD-rate (%) ↓", lambda delta: delta.bd_rate, "{:+.1f}", min),
    Column("BD-PSNR (dB) ↑", lambda delta: delta.bd_psnr, "{:+.3f}", max),
)
LEGEND = (
    '<p class="legend">↑ higher is better, ↓ lower is better; the best value of each column '
    "is highlighted and starred (every row that shows it, on ties).</p>"
)


def _escape(text):
    return html.escape(str(text), quote=True)


def slug(*parts):
    """An HTML id from parts of a name: letters, digits and '-' only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(str(part) for part in parts)).strip("-").lower()


def image_url(path, page_dir):
    """The relative URL of a picture from the page's folder.

    Raises:
      FileNotFoundError: the picture is not there (the page would show a broken image).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"report picture {path} does not exist")
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))
    return urllib.parse.quote(relative.replace(os.sep, "/"))


def _shown(value, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return fmt.format(value)


def best_rows(records, column):
    """Indices of the records that show the column's best value. None and NaN never win; a
    column with fewer than two values has no best."""
    values = [column.value(record) for record in records]
    valid = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if len(valid) < 2:
        return set()
    best = _shown(column.best(valid), column.fmt)
    return {index for index, value in enumerate(values)
            if value in valid and _shown(value, column.fmt) == best}


def score_table(caption, label_headers, labels, records, columns):
    """An HTML table: label columns, then score columns with their best values marked.

    Args:
      caption: the table's caption (plain text).
      label_headers: headers of the label columns; labels: per record, their texts.
      records: the scored records; columns: Column per score column.
    """
    best = [best_rows(records, column) for column in columns]
    head = "".join(f'<th scope="col">{_escape(h)}</th>' for h in label_headers)
    head += "".join(f'<th scope="col">{_escape(column.header)}</th>' for column in columns)
    lines = [f'<table class="scores"><caption>{_escape(caption)}</caption>',
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for index, (record, label) in enumerate(zip(records, labels, strict=True)):
        cells = "".join(f"<td>{_escape(text)}</td>" for text in label)
        for column, winners in zip(columns, best):
            text = _escape(_shown(column.value(record), column.fmt))
            if index in winners:
                cells += f'<td class="num best" title="best in column">{text}</td>'
            else:
                cells += f'<td class="num">{text}</td>'
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _datasets(items):
    return list(dict.fromkeys((item.dataset, item.scale) for item in items))


def report_section(report, page_dir, title, anchor=None):
    """A Section for a lossless evaluation (car_tf.evaluation.Report): per dataset its
    table and, for every image in report.views, a viewer."""
    anchor = anchor or slug(title)
    parts = []
    for dataset, scale in _datasets(report.rows):
        rows = [row for row in report.rows if (row.dataset, row.scale) == (dataset, scale)]
        views = [v for v in report.views if (v.dataset, v.scale) == (dataset, scale)]
        parts.append(f'<h3 id="{slug(anchor, dataset, scale)}">{_escape(dataset)} ×{scale}</h3>')
        parts.append(score_table(
            f"{dataset} ×{scale}, protocol {report.protocol}, mean over {rows[0].images} images",
            ("downscaler", "upscaler"), [(row.downscaler, row.upscaler) for row in rows], rows,
            LOSSLESS_COLUMNS))
        parts.append(LEGEND)
        parts += [_viewer(view, page_dir, slug(anchor, dataset, scale, view.image))
                  for view in views]
    return Section(title, anchor, "\n".join(parts))


def _picture_texts(view, picture):
    """(alt text, caption) of one picture."""
    size = f"{picture.width}×{picture.height} pixels"
    if picture.kind == "hr":
        return f"{view.image}: HR, {size}", "HR"
    if picture.kind == "lr":
        bpp = "" if picture.lr_bpp is None else f", {picture.lr_bpp:.2f} bits per pixel as PNG"
        return (f"{view.image}: {picture.downscaler} LR, {size}{bpp}",
                f"{picture.label} (×{view.scale} nearest)")
    scores = f"PSNR-Y {_shown(picture.psnr_y, '{:.2f}')} dB, SSIM-Y {_shown(picture.ssim_y, '{:.4f}')}"
    return (f"{view.image}: SR by {picture.downscaler} downscaling and {picture.upscaler} "
            f"upscaling, {size}, {scores}", f"{picture.label}: {scores}")


def _default_pair(pictures):
    """(before, after) indices: the last SR, against the bicubic LR with the same upscaler
    (or HR when there is none)."""
    after = len(pictures) - 1
    last = pictures[after]
    before = next((index for index, p in enumerate(pictures) if p.kind == "sr"
                   and p.downscaler == "bicubic" and p.upscaler == last.upscaler
                   and index != after), 0)
    return before, after


def _viewer(view, page_dir, anchor):
    """The HTML of one image: the before/after viewer and the strip of its pictures."""
    hr = view.pictures[0]
    enlarge = max(1, MIN_DISPLAY_WIDTH // hr.width)
    before, after = _default_pair(view.pictures)
    urls = [image_url(picture.path, page_dir) for picture in view.pictures]
    texts = [_picture_texts(view, picture) for picture in view.pictures]

    def options(selected):
        return "".join(
            f'<option value="{index}"{" selected" if index == selected else ""}>'
            f"{_escape(caption)}</option>" for index, (_, caption) in enumerate(texts))

    def stage_image(side, index):
        kind = ' lr' if view.pictures[index].kind == "lr" else ""
        return (f'<img class="{side}{kind}" src="{urls[index]}" alt="{_escape(texts[index][0])}" '
                f'width="{hr.width}" height="{hr.height}">')

    strip = "".join(
        f'<li><button type="button" aria-pressed="false" aria-label="Compare {_escape(caption)}">'
        f'<img class="{picture.kind}" src="{url}" alt="{_escape(alt)}" data-kind="{picture.kind}" '
        f'data-label="{_escape(picture.label)}" data-caption="{_escape(caption)}"></button>'
        f"{_escape(caption)}</li>"
        for picture, url, (alt, caption) in zip(view.pictures, urls, texts))
    zoom_options = "".join(f'<option value="{f}"{" selected" if f == DEFAULT_ZOOM else ""}>'
                           f"{f}×</option>" for f in ZOOM_FACTORS)
    title = _escape(view.image)
    return f"""<article class="image" id="{anchor}" aria-labelledby="{anchor}-title">
<h4 id="{anchor}-title">{title} <small>({hr.width}×{hr.height}, ×{view.scale})</small></h4>
<div class="viewer" data-scale="{view.scale}" data-width="{hr.width}" data-height="{hr.height}" data-zoom-x="{view.centre[0]}" data-zoom-y="{view.centre[1]}">
<div class="controls">
<label>Left <select class="pick-before">{options(before)}</select></label>
<label>Right <select class="pick-after">{options(after)}</select></label>
<label>Zoom <select class="zoom-factor">{zoom_options}</select></label>
</div>
<div class="panes">
<div class="compare" style="width: {hr.width * enlarge}px">
<div class="stage{' enlarged' if enlarge > 1 else ''}">
{stage_image("before", before)}
{stage_image("after", after)}
<div class="divider" style="left: 50%"></div><div class="lens"></div>
</div>
<input type="range" class="split" min="0" max="100" step="1" value="50" aria-label="Divider between the left and right pictures of {title} (percent)">
<p class="caption" aria-live="polite"></p>
</div>
<div class="zooms">
<figure><canvas class="zoom-before" width="256" height="256" tabindex="0" role="img" aria-label="Zoom of the left picture"></canvas><figcaption>Left</figcaption></figure>
<figure><canvas class="zoom-after" width="256" height="256" tabindex="0" role="img" aria-label="Zoom of the right picture"></canvas><figcaption>Right</figcaption></figure>
</div>
</div>
</div>
<ul class="strip">{strip}</ul>
</article>"""


def rd_section(rd_report, page_dir, title, anchor=None):
    """A Section for a codec evaluation (rate_distortion.RDReport, after rate_distortion.write
    drew its plots): per dataset and upscaler the RD plot, a table per quality and the
    Bjontegaard deltas against bicubic."""
    anchor = anchor or slug(title)
    plots = {os.path.basename(path): path for path in rd_report.plot_paths}
    parts = []
    for dataset, scale, upscaler in dict.fromkeys(
            (p.dataset, p.scale, p.upscaler) for p in rd_report.points):
        def mine(item):
            return (item.dataset, item.scale, item.upscaler) == (dataset, scale, upscaler)

        points = [p for p in rd_report.points if mine(p)]
        heading = f"{dataset} ×{scale}, {rd_report.codec}, {upscaler} upscaler"
        parts.append(f'<h3 id="{slug(anchor, dataset, scale, upscaler)}">{_escape(heading)}</h3>')
        plot = plots.get(f"{dataset}_x{scale}_{rd_report.codec}_{upscaler}.png")
        if plot is None:
            raise ValueError(f"no RD plot for {heading}; write the report with "
                             "rate_distortion.write before the page")
        names = ", ".join(dict.fromkeys(p.downscaler for p in points))
        parts.append(
            f'<figure class="plot"><img src="{image_url(plot, page_dir)}" alt="Rate-distortion '
            f'plot, {_escape(heading)}: PSNR-Y against bits per HR pixel for {_escape(names)}">'
            f"<figcaption>PSNR-Y against bits per HR pixel (log scale), mean over "
            f"{points[0].images} images.</figcaption></figure>")
        deltas = [d for d in rd_report.deltas
                  if mine(d) and d.reference == rate_distortion.REFERENCE]
        if deltas:
            parts.append(score_table(
                f"Bjontegaard deltas against {rate_distortion.REFERENCE}, {heading}",
                ("downscaler",), [(d.downscaler,) for d in deltas], deltas, BD_COLUMNS))
        for quality in rd_report.qualities:
            at_quality = [p for p in points if p.quality == quality]
            parts.append(score_table(
                f"{heading}, quality {quality}", ("downscaler",),
                [(p.downscaler,) for p in at_quality], at_quality, RD_COLUMNS))
        parts.append(LEGEND)
    return Section(title, anchor, "\n".join(parts))


def _asset(name):
    with open(os.path.join(ASSETS_DIR, name), encoding="utf-8") as handle:
        text = handle.read()
    # Inlined: a closing tag inside would end the element early.
    if re.search(r"</(script|style)", text, re.IGNORECASE):
        raise ValueError(f"report asset {name} holds a closing script/style tag")
    return text


def page(title, sections, notes=()):
    """The HTML text of the page: title, contents, notes (plain text lines), sections."""
    contents = "".join(f'<li><a href="#{section.anchor}">{_escape(section.title)}</a></li>'
                       for section in sections)
    note_lines = "".join(f'<p class="note">{_escape(note)}</p>' for note in notes)
    body = "\n".join(f'<section id="{section.anchor}">\n<h2>{_escape(section.title)}</h2>\n'
                     f"{section.body}\n</section>" for section in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{_escape(title)}</title>
<style>
{_asset("report.css")}</style>
</head>
<body>
<header>
<h1>{_escape(title)}</h1>
<p class="help">{_escape(HELP)}</p>
{note_lines}
<nav aria-label="Contents"><ul>{contents}</ul></nav>
</header>
<main>
{body}
</main>
<script>
{_asset("report.js")}</script>
</body>
</html>
"""


def write_page(path, title, sections, notes=()):
    """Writes the page to `path` (its pictures must already be in place); returns path."""
    text = page(title, sections, notes)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
