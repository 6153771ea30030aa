"""Fixed-kernel downscaling without TensorFlow: car-x{2,4}-fixed in NumPy or its compiled twin.

A fixed-kernel model (car_tf.models.fixed.FixedKernelModel) is one k x k kernel, and its
12 MP downscale costs about 0.04 s in TensorFlow, while importing TensorFlow costs about
2.6 CPU s. `car downscale` therefore runs such a model folder through this module, which
imports neither TensorFlow nor Keras: it reads the folder's config.json and kernel with
h5py, checks MANIFEST.sha256 as car_tf.pretrained does, pads as car_tf.inference.Runner
does and computes in float32. The result equals FixedKernelModel.downscale_uint8 run
through Runner within one 8-bit level: the same sums, in another order
(tests/test_fixed_numpy.py).

How it computes (polyphase). With P the HR image padded as FixedKernelModel pads it (see
car_tf.models.fixed: reflected s + 1 rows and columns before, s after),
LR[y, x] = sum_{i,j} K[i, j] P[s y + i, s x + j]. Write i = s a + b and j = s q + p, with K
zero-padded to m s taps a side (m = ceil(k / s)), and B[Y, b, X, p] = P[s Y + b, s X + p]
(P cut into s x s blocks). Then
  LR[y, x] = sum_{a,q} G[y + a, x + q, a, q],  G[Y, X, a, q] = sum_{b,p} K[s a + b, s q + p] B[Y, b, X, p]:
G is s matrix products (one per row phase b) that read each HR pixel once, and the sum over
(a, q) is m^2 shifted additions of LR-sized arrays. Rows go in bands of about BAND_BYTES of
G, so that memory beyond the image and its output stays near 50 MB whatever the size.

The compiled twin. NumPy spends most of that time moving G through memory (12 MP at x4:
~0.2 s for ~0.4 G multiply-adds). custom_ops/fixed/fixed_downscale.cc does the same sum
over the same padded input (the reflected indices below are passed to it) one LR row at a
time, in cache and on both cores; setup.py builds it beside the op as
car_tf/_fixed_downscale*.so, plain C++ with no TensorFlow, loaded with ctypes. It is used
when built (`native=None`); this NumPy code is the fallback and the reference it is tested
against (tests/test_fixed_numpy.py).
"""

import ctypes
import functools
import glob
import math
import os

import h5py
import numpy as np

from car_tf import pretrained
from car_tf.padding import lr_size, padded_size, reflect_index_array

# Where Keras 3 saves a FixedKernelModel's raw_kernel in model.weights.h5: the model's own
# variables sit under vars/ (its sublayers, which have none, under layers/).
KERNEL_DATASET = "vars/0"
ARCHITECTURE = "fixed"
# Bytes of float32 G per band of LR rows (the module docstring). Bands this small come
# back from the heap warm; 64 MiB ones took 2-3x the time at 12 MP (fresh pages each band).
BAND_BYTES = 16 << 20


def _signed(raw):
    # FixedKernelModel.kernel: the raw weights shifted to sum to 1.
    return raw + (np.float32(1.0) - np.sum(raw, dtype=np.float32)) / np.float32(raw.size)


def _softmax(raw):
    weights = np.exp(raw - np.max(raw))
    return weights / np.sum(weights, dtype=np.float32)


NORMALIZATIONS = {"signed": _signed, "softmax": _softmax}


class FixedKernel:
    """A fixed-kernel model as NumPy needs it: `kernel` float32 [k, k] summing to 1 (row
    i, column j as FixedKernelModel's tap t = i k + j), `scale`, and `upscaler_name` (always
    "bicubic"), named as on FixedKernelModel for the CLI's checks."""

    upscaler_name = "bicubic"

    def __init__(self, kernel, scale):
        self.kernel = np.asarray(kernel, np.float32)
        self.scale = int(scale)
        # CAR's tap grid (car_tf.models.resampler_net.kernel_size_for): with it, padding
        # s + 1 before and s after gives exactly H / s LR rows.
        if self.kernel.shape != (3 * self.scale + 1,) * 2:
            raise ValueError(f"a scale-{self.scale} fixed kernel must be "
                             f"{3 * self.scale + 1} x {3 * self.scale + 1}, got "
                             f"{self.kernel.shape}")


def is_fixed_model_dir(path):
    """Whether `path` is a model folder (bundled, or a training model_dir) that this module
    can run: config.json says architecture "fixed" and model.weights.h5 is there."""
    if not os.path.isfile(os.path.join(path, pretrained.WEIGHTS)):
        return False
    try:
        return pretrained.read_config(path).get("architecture") == ARCHITECTURE
    except (OSError, ValueError):
        return False


def load_fixed_kernel(model_dir, require_manifest=False):
    """The FixedKernel of a fixed-kernel model folder.

    Checks MANIFEST.sha256 first (pretrained.check_manifest: always when it is there, and
    it must be there when `require_manifest`, as for a bundled model). ValueError, one line
    naming the file, for a bad manifest, config or weights file; OSError for an unreadable one.
    """
    pretrained.check_manifest(model_dir, require_manifest)
    config = pretrained.read_config(model_dir)
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{model_dir}: config.json is not a fixed-kernel model's")
    if config.get("upscaler", "bicubic") != "bicubic":
        raise ValueError(f"{model_dir}: a fixed-kernel model has the bicubic upscaler only")
    normalization = config.get("resampler_kernel_normalization", "signed")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"{model_dir}: resampler_kernel_normalization must be one of "
                         f"{tuple(NORMALIZATIONS)}, got {normalization!r}")
    path = os.path.join(model_dir, pretrained.WEIGHTS)
    with h5py.File(path, "r") as weights:
        if KERNEL_DATASET not in weights:
            raise ValueError(f"{path}: no {KERNEL_DATASET} (the fixed kernel's raw weights)")
        raw = np.asarray(weights[KERNEL_DATASET], np.float32).reshape(-1)
    side = math.isqrt(raw.size)
    if side * side != raw.size:
        raise ValueError(f"{path}: {KERNEL_DATASET} has {raw.size} weights, not a square kernel")
    kernel = NORMALIZATIONS[normalization](raw).reshape(side, side)
    return FixedKernel(kernel, config["scale"])


def _conv_input_indices(size, scale, blocks):
    """int array [blocks * scale]: for an HR axis of `size` pixels, the source pixel of
    each position of the convolution's input, from s + 1 before the axis on: the Runner's
    reflection to padded_size, then FixedKernelModel's reflection of that padded axis."""
    padded = padded_size(size, scale)
    positions = np.arange(blocks * scale) - (scale + 1)
    return reflect_index_array(reflect_index_array(positions, padded), size)


def _phase_weights(kernel, scale, channels):
    """float32 [s, m * m * C, s * C]: per row phase b, the matrix from a block row's
    (p, c) values to G's (a, q, c) (the module docstring), diagonal in the channel."""
    side = kernel.shape[0]
    blocks = -(-side // scale)
    taps = np.zeros((blocks * scale, blocks * scale), np.float32)
    taps[:side, :side] = kernel
    per_phase = taps.reshape(blocks, scale, blocks, scale)  # a, b, q, p
    eye = np.eye(channels, dtype=np.float32)
    weights = np.einsum("abqp,cd->baqcpd", per_phase, eye)
    return weights.reshape(scale, blocks * blocks * channels, scale * channels)


def _band(rgb, rows, cols, scale):
    """float32 [s, Y, X * s * C]: the convolution input's rows `rows` ([Y * s]) and columns
    `cols` ([X * s]), row phase first (band[b, Y] is input row s Y + b)."""
    width = rgb.shape[1]
    phase_rows = rows.reshape(-1, scale).T
    source = rgb[phase_rows]  # whole rows: cheap
    band = np.empty(phase_rows.shape + (cols.size, rgb.shape[2]), np.float32)
    # The columns between the reflected edges are the image's own, in order.
    left = scale + 1
    band[:, :, left:left + width] = source
    band[:, :, :left] = source[:, :, cols[:left]]
    band[:, :, left + width:] = source[:, :, cols[left + width:]]
    return band.reshape(scale, phase_rows.shape[1], -1)


@functools.lru_cache(maxsize=None)
def native_library():
    """The compiled twin (ctypes.CDLL), or None where setup.py has not built it."""
    folder = os.path.dirname(os.path.abspath(__file__))
    paths = glob.glob(os.path.join(folder, "_fixed_downscale*.so"))
    if not paths:
        return None
    library = ctypes.CDLL(paths[0])
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.car_fixed_downscale_u8.argtypes = [
        pointer, size, size, size, pointer, size, size, pointer, size, pointer, size, pointer,
        size, size, size]
    library.car_fixed_downscale_u8.restype = ctypes.c_int
    return library


def _native_downscale(library, rgb, kernel, scale, rows, cols, out_h, out_w):
    if rgb.dtype != np.uint8 or rgb.ndim != 3:
        # The C++ reads raw bytes: any other layout would be read as garbage.
        raise ValueError(f"rgb must be uint8 [H, W, C], got {rgb.dtype} {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    kernel = np.ascontiguousarray(kernel, np.float32)
    rows = np.ascontiguousarray(rows, np.int64)
    cols = np.ascontiguousarray(cols, np.int64)
    output = np.empty((out_h, out_w, rgb.shape[2]), np.uint8)
    # ctypes lets go of the GIL for the call.
    status = library.car_fixed_downscale_u8(
        rgb.ctypes.data, rgb.shape[0], rgb.shape[1], rgb.shape[2], kernel.ctypes.data,
        kernel.shape[0], scale, rows.ctypes.data, rows.size, cols.ctypes.data, cols.size,
        output.ctypes.data, out_h, out_w, os.cpu_count() or 1)
    if status:
        raise RuntimeError(f"car_fixed_downscale_u8 rejected its arguments (code {status})")
    return output


def downscale_uint8(rgb, model, progress=None, band_bytes=BAND_BYTES, native=None):
    """uint8 [H, W, C] of any size -> uint8 [ceil(H/s), ceil(W/s), C] with `model`, a
    FixedKernel: FixedKernelModel.downscale_uint8 as car_tf.inference.Runner applies it
    (within one level). progress: optional callable(done, total) after each band.
    native: True for the compiled twin (RuntimeError where it is not built), False for
    NumPy, None for the compiled twin where it is built; band_bytes is NumPy's."""
    scale = model.scale
    height, width, channels = rgb.shape
    out_h, out_w = lr_size(height, scale), lr_size(width, scale)
    blocks = -(-model.kernel.shape[0] // scale)
    blocks_x = out_w + blocks - 1
    rows = _conv_input_indices(height, scale, out_h + blocks - 1)
    cols = _conv_input_indices(width, scale, blocks_x)
    library = native_library() if native in (None, True) else None
    if native and library is None:
        raise RuntimeError("car_tf/_fixed_downscale*.so is not built: run "
                           "`python setup.py build_ext --inplace` (make build does)")
    if library is not None:
        output = _native_downscale(library, rgb, model.kernel, scale, rows, cols, out_h, out_w)
        if progress is not None:
            progress(1, 1)
        return output
    weights = _phase_weights(model.kernel, scale, channels)
    band = max(1, band_bytes // (blocks_x * weights.shape[1] * 4))
    output = np.empty((out_h, out_w, channels), np.uint8)
    starts = range(0, out_h, band)
    for index, y0 in enumerate(starts):
        y1 = min(y0 + band, out_h)
        blocks_y = y1 - y0 + blocks - 1
        hr = _band(rgb, rows[scale * y0:scale * (y0 + blocks_y)], cols, scale)
        # G transposed, [(a, q, c), (Y, X)]: BLAS reads the block rows transposed in place,
        # and each (a, q, c) plane comes out contiguous for the shifted sums.
        g = weights[0] @ hr[0].reshape(-1, scale * channels).T
        for phase in range(1, scale):
            g += weights[phase] @ hr[phase].reshape(-1, scale * channels).T
        g = g.reshape(blocks, blocks, channels, blocks_y, blocks_x)
        lr = np.zeros((channels, y1 - y0, out_w), np.float32)
        for a in range(blocks):
            for q in range(blocks):
                lr += g[a, q, :, a:a + y1 - y0, q:q + out_w]
        # As the model's to_uint8 (round half to even, like tf.round), in 0..255 units.
        np.rint(np.clip(lr, 0.0, 255.0, out=lr), out=lr)
        output[y0:y1] = lr.transpose(1, 2, 0)
        if progress is not None:
            progress(index + 1, len(starts))
    return output


class Runner:
    """car_tf.inference.Runner's downscale side for a FixedKernel, without TensorFlow.

    Args:
      model: a FixedKernel (load_fixed_kernel).
      tile: the tile side for alpha planes, which go through inference.AlphaResampler
        (TensorFlow, imported then): the RGB result does not depend on it.
    """

    def __init__(self, model, tile):
        self.model = model
        self.scale = model.scale
        self.tile = int(tile)
        self._alpha = None

    def downscale(self, rgb, progress=None):
        """uint8 [H, W, 3] -> uint8 LR [ceil(H/s), ceil(W/s), 3] (downscale_uint8)."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
                or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
            raise ValueError(f"rgb must be a non-empty uint8 [H, W, 3] numpy array, got "
                             f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
        return downscale_uint8(rgb, self.model, progress)

    def downscale_alpha(self, alpha):
        """uint8 [H, W] -> uint8 [ceil(H/s), ceil(W/s)], exactly as inference.Runner's."""
        if self._alpha is None:
            from car_tf.inference import AlphaResampler

            self._alpha = AlphaResampler(self.scale, self.tile)
        return self._alpha.downscale_alpha(alpha)
