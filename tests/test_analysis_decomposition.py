"""Discrepancy decomposition along mean-field -> GD -> online SGD -> multi-pass SGD."""

import numpy as np
import pytest

from meanfield.analysis import DEFAULT_STAGES, decompose

T = 40
t = np.linspace(0, 4, T)
MF = 0.5 * np.exp(-t) + 0.05  # deterministic mean-field risk
# true per-link offsets in the final risk: width, SGD noise, finite data
GD_SHIFT, SGD_SHIFT, DATA_SHIFT = 0.02, 0.01, 0.03


def _stages(rng, S, coupled=True):
    """Synthetic risk curves with known link contributions.

    Each seed has an initialisation fluctuation (shared by GD, online SGD and
    multi-pass SGD when ``coupled``) plus smaller stage-specific noise.
    """
    ramp = 1 - np.exp(-t)
    init = 0.02 * rng.standard_normal((S, 1)) * ramp
    init2 = init if coupled else 0.02 * rng.standard_normal((S, 1)) * ramp
    init3 = init if coupled else 0.02 * rng.standard_normal((S, 1)) * ramp
    gd = MF + GD_SHIFT * ramp + init
    sgd = MF + (GD_SHIFT + SGD_SHIFT) * ramp + init2 + 0.003 * rng.standard_normal((S, T))
    mp = MF + (GD_SHIFT + SGD_SHIFT + DATA_SHIFT) * ramp + init3 + 0.003 * rng.standard_normal((S, T))
    return [MF, gd, sgd, mp]


def test_contributions_telescope_and_recover_known_offsets():
    rng = np.random.default_rng(0)
    dec = decompose(_stages(rng, 40))
    assert dec.stages == DEFAULT_STAGES
    assert dec.contributions.sum() == pytest.approx(dec.total, abs=1e-14)
    true = np.array([GD_SHIFT, SGD_SHIFT, DATA_SHIFT]) * (1 - np.exp(-t[-1]))
    assert np.all(np.abs(dec.contributions - true) < 4 * dec.contributions_se)
    assert np.all(dec.paired == [False, True, True])  # the mean-field curve has no seeds
    assert dec.fractions.sum() == pytest.approx(1.0)
    assert "online SGD (N) -> multi-pass SGD (P)" in dec.table()


def test_coupled_seeds_shrink_link_errors_and_errors_are_calibrated():
    # Over 300 repetitions the spread of each estimated contribution must match
    # the mean reported standard error (paired when coupled, independent when
    # not), and coupling must make the SGD and data links far more precise.
    reps, S = 300, 20
    for coupled in (True, False):
        est, se = [], []
        for r in range(reps):
            dec = decompose(_stages(np.random.default_rng(1000 * coupled + r), S, coupled), metric="mean")
            est.append(dec.contributions)
            se.append(dec.contributions_se)
        spread = np.std(est, axis=0, ddof=1)
        mean_se = np.mean(se, axis=0)
        np.testing.assert_allclose(mean_se, spread, rtol=0.15)
        if coupled:
            coupled_se = mean_se
        else:
            assert np.all(coupled_se[1:] < 0.5 * mean_se[1:])
            # the first link (deterministic mean-field vs GD) is unaffected
            assert coupled_se[0] == pytest.approx(mean_se[0], rel=0.15)


def test_metrics_and_validation():
    rng = np.random.default_rng(2)
    curves = _stages(rng, 10)
    final = decompose(curves, metric="final")
    weights = np.zeros(T)
    weights[-1] = 1.0
    np.testing.assert_allclose(decompose(curves, metric=weights).contributions, final.contributions)
    mean = decompose(curves, metric="mean")
    np.testing.assert_allclose(mean.values[0], MF.mean())
    # unequal seed counts fall back to independent errors
    dec = decompose([MF, curves[1][:7], curves[2]], stages=["mf", "gd", "sgd"])
    assert list(dec.paired) == [False, False] and dec.links == ("mf -> gd", "gd -> sgd")
    with pytest.raises(ValueError):
        decompose([MF, curves[1][:, :-1]])
    with pytest.raises(ValueError):
        decompose([MF, curves[1][:1]])
    with pytest.raises(ValueError):
        decompose(curves, metric="median")
