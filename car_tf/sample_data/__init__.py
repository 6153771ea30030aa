"""The bundled sample images (Set5 HR; see PROVENANCE.md)."""

import os

SAMPLE_DIR = os.path.dirname(os.path.abspath(__file__))


def sample_images():
    """Sorted absolute paths of the bundled sample PNGs."""
    return sorted(
        os.path.join(SAMPLE_DIR, name) for name in os.listdir(SAMPLE_DIR) if name.endswith(".png")
    )


def synthetic_photo(height, width, name="butterfly.png"):
    """A [height, width, 3] uint8 stand-in for a photo of any size, for benchmarks: the
    sample image `name` resized by bicubic, plus Gaussian noise of sigma 3 levels (seed 0),
    so that PNG coding costs what it costs on real detail rather than on smooth blur."""
    import numpy as np
    from PIL import Image

    with Image.open(os.path.join(SAMPLE_DIR, name)) as image:
        big = np.asarray(image.convert("RGB").resize((width, height), Image.BICUBIC))
    noise = np.random.default_rng(0).normal(0, 3, big.shape)
    return np.clip(big + noise, 0, 255).astype(np.uint8)
