"""Synthetic test photos shared by the CLI and inference tests."""

import numpy as np


def photo(height, width, seed=0):
    """uint8 [height, width, 3]: smooth waves plus noise, so networks see edges and flat areas."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 6, 3)
    image = 0.5 + 0.35 * np.sin(xx[..., None] / 5.0 + phase) * np.cos(yy[..., None] / 4.0)
    image = image + 0.08 * rng.standard_normal(image.shape)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
