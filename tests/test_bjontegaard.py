"""Bjontegaard deltas (car_tf.bjontegaard) on worked examples with known answers."""

import numpy as np
import pytest

from car_tf import bjontegaard

RATES = np.array([0.2, 0.45, 0.9, 1.8])  # bits per pixel, one per quality
PSNRS = np.array([27.1, 29.4, 31.6, 33.2])


def test_identical_curves_have_zero_deltas():
    assert bjontegaard.bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)
    assert bjontegaard.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_a_curve_reaching_each_psnr_with_20_percent_fewer_bits_has_bd_rate_minus_20():
    # Same PSNRs at 0.8x the rates: log10(rate) moves by log10(0.8) everywhere.
    assert bjontegaard.bd_rate(RATES, PSNRS, 0.8 * RATES, PSNRS) == pytest.approx(-20.0, abs=1e-9)
    assert bjontegaard.bd_rate(RATES, PSNRS, 1.25 * RATES, PSNRS) == pytest.approx(25.0, abs=1e-9)


def test_a_curve_half_a_db_higher_at_every_rate_has_bd_psnr_one_half():
    assert bjontegaard.bd_psnr(RATES, PSNRS, RATES, PSNRS + 0.5) == pytest.approx(0.5, abs=1e-12)


def test_worked_example_against_dense_integration():
    # PSNR linear in log10(rate) with slope 6 dB per decade: a rate factor of 0.8 at equal
    # PSNR is a PSNR gain of -6 * log10(0.8) = 0.5815 dB at equal rate, by hand.
    reference_psnrs = 30.0 + 6.0 * np.log10(RATES)
    test_rates = 0.8 * RATES
    assert bjontegaard.bd_psnr(RATES, reference_psnrs, test_rates, reference_psnrs) == \
        pytest.approx(-6.0 * np.log10(0.8), abs=1e-9)

    # A curved example: the cubic fits are checked against a dense trapezoid integral
    # over the shared interval, computed here independently of the module.
    test_psnrs = PSNRS + np.array([0.9, 0.6, 0.4, 0.1])
    test_rates = RATES * np.array([1.1, 1.0, 0.95, 0.9])

    def dense_mean_difference(x_ref, y_ref, x_test, y_test):
        grid = np.linspace(max(x_ref.min(), x_test.min()), min(x_ref.max(), x_test.max()), 20001)
        gap = np.polyval(np.polyfit(x_test, y_test, 3), grid) - np.polyval(np.polyfit(x_ref, y_ref, 3), grid)
        return np.trapezoid(gap, grid) / (grid[-1] - grid[0])

    expected_psnr = dense_mean_difference(np.log10(RATES), PSNRS, np.log10(test_rates), test_psnrs)
    expected_rate = (10 ** dense_mean_difference(PSNRS, np.log10(RATES), test_psnrs,
                                                 np.log10(test_rates)) - 1) * 100
    assert bjontegaard.bd_psnr(RATES, PSNRS, test_rates, test_psnrs) == pytest.approx(expected_psnr, abs=1e-6)
    assert bjontegaard.bd_rate(RATES, PSNRS, test_rates, test_psnrs) == pytest.approx(expected_rate, abs=1e-4)
    # Better at equal rate means cheaper at equal quality.
    assert expected_psnr > 0 > expected_rate


def test_point_order_does_not_matter():
    order = [2, 0, 3, 1]
    assert bjontegaard.bd_rate(RATES[order], PSNRS[order], 0.9 * RATES, PSNRS + 0.1) == \
        pytest.approx(bjontegaard.bd_rate(RATES, PSNRS, 0.9 * RATES, PSNRS + 0.1))


def test_bad_curves_are_refused():
    with pytest.raises(bjontegaard.NoOverlapError, match="share no rate"):
        bjontegaard.bd_psnr(RATES, PSNRS, RATES * 100, PSNRS)
    with pytest.raises(ValueError, match="at least 4 points"):
        bjontegaard.bd_rate(RATES[:3], PSNRS[:3], RATES, PSNRS)
    with pytest.raises(ValueError, match="positive"):
        bjontegaard.bd_rate(RATES * 0, PSNRS, RATES, PSNRS)
