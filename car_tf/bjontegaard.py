"""Bjontegaard delta rate and delta PSNR between two rate-distortion curves (VCEG-M33).

Each curve is a few (rate, PSNR) points, one per codec quality. Following Bjontegaard's
VCEG-M33 (2001):
  BD-PSNR  fit PSNR as a cubic polynomial of log10(rate) for each curve, integrate both
           over the log-rates the two curves share, and divide the difference of the
           integrals by that interval: the mean PSNR gain at equal rate, in dB.
  BD-rate  fit log10(rate) as a cubic of PSNR, integrate over the PSNRs both curves
           share: the mean log-rate difference d at equal quality, reported as
           (10**d - 1) * 100, the percentage of bits the test curve saves (negative) or
           costs (positive) against the reference.
With four points the cubic passes through all of them, as in the original spreadsheet.
"""

import numpy as np

MIN_POINTS = 4


class NoOverlapError(ValueError):
    """The two curves share no rate (or no PSNR) interval, so no delta is defined."""


def _points(rates, psnrs, name):
    rates = np.asarray(rates, np.float64)
    psnrs = np.asarray(psnrs, np.float64)
    if rates.shape != psnrs.shape or rates.ndim != 1:
        raise ValueError(f"{name}: rates and PSNRs must be 1-D and of one length, got "
                         f"{rates.shape} and {psnrs.shape}")
    if len(rates) < MIN_POINTS:
        raise ValueError(f"{name}: a cubic fit needs at least {MIN_POINTS} points, got {len(rates)}")
    if not np.all(np.isfinite(rates)) or not np.all(rates > 0) or not np.all(np.isfinite(psnrs)):
        raise ValueError(f"{name}: rates must be finite and positive, PSNRs finite")
    order = np.argsort(rates)
    return np.log10(rates[order]), psnrs[order]


def _mean_difference(x_reference, y_reference, x_test, y_test, what):
    """Mean of (cubic fit of test - cubic fit of reference) over the x interval both cover."""
    low = max(x_reference.min(), x_test.min())
    high = min(x_reference.max(), x_test.max())
    if not high > low:
        raise NoOverlapError(f"the two curves share no {what} interval "
                             f"(reference {x_reference.min():.4g}..{x_reference.max():.4g}, "
                             f"test {x_test.min():.4g}..{x_test.max():.4g})")
    integrals = []
    for x, y in ((x_reference, y_reference), (x_test, y_test)):
        antiderivative = np.polyint(np.polyfit(x, y, 3))
        integrals.append(np.polyval(antiderivative, high) - np.polyval(antiderivative, low))
    return (integrals[1] - integrals[0]) / (high - low)


def bd_psnr(reference_rates, reference_psnrs, test_rates, test_psnrs):
    """Mean PSNR difference (test - reference) in dB at equal rate; > 0 means test is better."""
    log_reference, psnr_reference = _points(reference_rates, reference_psnrs, "reference")
    log_test, psnr_test = _points(test_rates, test_psnrs, "test")
    return float(_mean_difference(log_reference, psnr_reference, log_test, psnr_test, "rate"))


def bd_rate(reference_rates, reference_psnrs, test_rates, test_psnrs):
    """Mean rate difference at equal PSNR, in percent of the reference's rate; < 0 means the
    test curve needs fewer bits."""
    log_reference, psnr_reference = _points(reference_rates, reference_psnrs, "reference")
    log_test, psnr_test = _points(test_rates, test_psnrs, "test")
    difference = _mean_difference(psnr_reference, log_reference, psnr_test, log_test, "PSNR")
    return float((10.0 ** difference - 1.0) * 100.0)
