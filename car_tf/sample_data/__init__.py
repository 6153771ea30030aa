"""The bundled sample images (Set5 HR; see PROVENANCE.md)."""

import os

SAMPLE_DIR = os.path.dirname(os.path.abspath(__file__))


def sample_images():
    """Sorted absolute paths of the bundled sample PNGs."""
    return sorted(
        os.path.join(SAMPLE_DIR, name) for name in os.listdir(SAMPLE_DIR) if name.endswith(".png")
    )
