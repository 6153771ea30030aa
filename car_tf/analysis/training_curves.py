"""Training curves as PNG plots, read from a model_dir's TensorBoard event files.

PIL only (no plotting library): one panel per tag, step on x, value on y, with
the first and last values and the axis ranges written on the panel.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

PANEL_SIZE = (480, 260)
MARGIN = 48


def read_scalars(log_dir, tags=None):
    """{tag: (steps [n], values [n])} from the event files in log_dir, sorted by step.

    A step written twice (a resumed run repeating it) keeps its last value.
    """
    accumulator = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    accumulator.Reload()
    series = {}
    for tag in accumulator.Tags()["tensors"]:
        if tags is not None and tag not in tags:
            continue
        events = accumulator.Tensors(tag)
        values = {}
        for event in events:
            array = tf.make_ndarray(event.tensor_proto)
            if array.size != 1 or array.dtype.kind != "f":
                break  # images and histograms are not curves
            values[event.step] = float(array.reshape(-1)[0])
        else:
            if values:
                steps = np.array(sorted(values))
                series[tag] = (steps, np.array([values[s] for s in steps]))
    return series


def _panel(tag, steps, values):
    width, height = PANEL_SIZE
    image = Image.new("RGB", PANEL_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = MARGIN, 24, width - 12, height - 28
    draw.rectangle([left, top, right, bottom], outline=(160, 160, 160))
    low, high = float(values.min()), float(values.max())
    if high == low:
        high = low + 1e-9
    first, last = int(steps[0]), int(steps[-1])
    span = max(last - first, 1)
    points = [
        (left + (right - left) * (s - first) / span, bottom - (bottom - top) * (v - low) / (high - low))
        for s, v in zip(steps, values)
    ]
    if len(points) > 1:
        draw.line(points, fill=(31, 119, 180), width=2)
    for x, y in points if len(points) <= 40 else []:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(31, 119, 180))
    draw.text((left, 6), f"{tag}  (last {values[-1]:.4g} at step {last})", fill="black", font=font)
    draw.text((4, top), f"{high:.4g}", fill="black", font=font)
    draw.text((4, bottom - 10), f"{low:.4g}", fill="black", font=font)
    draw.text((left, bottom + 6), f"step {first}", fill="black", font=font)
    draw.text((right - 70, bottom + 6), f"step {last}", fill="black", font=font)
    return image


def plot_curves(series, path, columns=2):
    """Writes one PNG with a panel per series entry; returns the path."""
    if not series:
        raise ValueError(f"no scalar curves to plot for {path}")
    tags = sorted(series)
    rows = (len(tags) + columns - 1) // columns
    width, height = PANEL_SIZE
    sheet = Image.new("RGB", (width * columns, height * rows), "white")
    for index, tag in enumerate(tags):
        steps, values = series[tag]
        sheet.paste(_panel(tag, steps, values), ((index % columns) * width, (index // columns) * height))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return path


def plot_model_dir(model_dir, out_dir, name=None):
    """train.png and eval.png curves of a training model_dir; returns the written paths."""
    name = name or os.path.basename(os.path.normpath(model_dir))
    paths = []
    for part in ("train", "eval"):
        log_dir = os.path.join(model_dir, part)
        if os.path.isdir(log_dir):
            series = read_scalars(log_dir)
            if series:
                paths.append(plot_curves(series, os.path.join(out_dir, f"{name}_{part}.png")))
    if not paths:
        raise ValueError(f"{model_dir} has no train/ or eval/ TensorBoard scalars to plot")
    return paths
