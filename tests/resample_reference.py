"""A plain numpy loop of the adaptive resampler: the third, independent
implementation the op tests compare against. Written for clarity, not speed."""

import math

import numpy as np


def _reflect(index, length, pad):
    index = min(max(index, -pad), length - 1 + pad)
    if index < 0:
        return -index
    if index > length - 1:
        return 2 * (length - 1) - index
    return index


def _corner(pos, length, pad):
    if not math.isfinite(pos):
        return 0, math.nan
    base = math.floor(pos)
    base = min(max(base, -pad - 1), length - 1 + pad)
    return base, pos - math.floor(pos)


def adaptive_resample_numpy(image, kernels, offsets_x, offsets_y, offset_unit):
    image = np.asarray(image, np.float64)
    n_batch, in_h, in_w, channels = image.shape
    _, out_h, out_w, taps = kernels.shape
    k = int(round(math.sqrt(taps)))
    pad = k // 2
    out = np.zeros((n_batch, out_h, out_w, channels))
    for n in range(n_batch):
        for y in range(out_h):
            for x in range(out_w):
                for t in range(taps):
                    i, j = divmod(t, k)
                    px = (x + 0.5) * in_w / out_w - 0.5 + (j - pad) + offset_unit * offsets_x[n, y, x, t]
                    py = (y + 0.5) * in_h / out_h - 0.5 + (i - pad) + offset_unit * offsets_y[n, y, x, t]
                    x0, fx = _corner(px, in_w, pad)
                    y0, fy = _corner(py, in_h, pad)
                    l, r = _reflect(x0, in_w, pad), _reflect(x0 + 1, in_w, pad)
                    tp, bt = _reflect(y0, in_h, pad), _reflect(y0 + 1, in_h, pad)
                    value = (
                        (1 - fy) * ((1 - fx) * image[n, tp, l] + fx * image[n, tp, r])
                        + fy * ((1 - fx) * image[n, bt, l] + fx * image[n, bt, r])
                    )
                    out[n, y, x] += kernels[n, y, x, t] * value
    return out
