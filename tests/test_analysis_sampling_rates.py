"""Coupled versus independent comparison of neuron clouds.

Claim (docstring of meanfield.analysis.distances): W2 between an N-subsample of
the mean-field cloud and the cloud itself decays like N^(-1/d) from sampling
alone (d = 3 here), which would hide a finite-width correction of size
N^(-1/2); comparing the perturbed subsample with the *same* subsample
(coupled) recovers N^(-1/2).
"""

import numpy as np

from meanfield.analysis import coupling_distance, fit_power_law, w2_exact

D = 3
M = 2000  # "mean-field" particles, uniform on the unit cube
WIDTHS = np.array([8, 16, 32, 64, 128])  # N <= M / 16 keeps the finite-M bend small
REPEATS = 8
C = 0.3


def _field(x):
    """A smooth, non-gradient displacement field standing in for the dynamics."""
    return np.stack([np.sin(3 * x[:, 2]), np.cos(2 * x[:, 0]), x[:, 1] ** 2], axis=1)


def _curves():
    rng = np.random.default_rng(2024)
    cloud = rng.random((M, D))
    indep, coupled, perturbed_vs_cloud, coupling = [], [], [], []
    for n in WIDTHS:
        a, b, c, e = [], [], [], []
        for _ in range(REPEATS):
            sub = cloud[rng.choice(M, n, replace=False)]
            moved = sub + C / np.sqrt(n) * _field(sub)  # finite-width "dynamics"
            a.append(w2_exact(sub, cloud).value)
            b.append(w2_exact(moved, sub).value)
            c.append(w2_exact(moved, cloud).value)
            e.append(coupling_distance(moved, sub).value)
        indep.append(np.mean(a))
        coupled.append(np.mean(b))
        perturbed_vs_cloud.append(np.mean(c))
        coupling.append(np.mean(e))
    return [np.array(v) for v in (indep, coupled, perturbed_vs_cloud, coupling)]


def test_sampling_floor_versus_coupled_dynamics():
    indep, coupled, perturbed_vs_cloud, coupling = _curves()
    assert np.all(np.isfinite(indep)) and np.all(np.isfinite(coupled))

    f_sampling = fit_power_law(WIDTHS, indep)
    f_coupled = fit_power_law(WIDTHS, coupled)
    f_masked = fit_power_law(WIDTHS, perturbed_vs_cloud)

    # sampling alone: exponent -1/d (measured -0.33 .. -0.36 over seeds)
    assert abs(f_sampling.slope - (-1 / D)) < 0.06
    # coupled: the N^(-1/2) perturbation is seen directly (measured -0.48 .. -0.52)
    assert abs(f_coupled.slope - (-0.5)) < 0.05
    # comparing the perturbed cloud with the limit cloud masks it: sampling rate
    assert abs(f_masked.slope - (-1 / D)) < 0.06
    # the two exponents differ by many standard errors
    gap = f_sampling.slope - f_coupled.slope
    assert gap > 4 * np.hypot(f_sampling.slope_se, f_coupled.slope_se)

    # the identity coupling is an upper bound on W2 and here it is tight:
    # a perturbation much smaller than the inter-particle spacing is optimal
    assert np.all(coupled <= coupling + 1e-12)
    assert np.allclose(coupled, coupling, rtol=0.05)
