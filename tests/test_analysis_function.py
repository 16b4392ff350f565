"""Function-space distance, bias/variance split and risk gap."""

import numpy as np
import pytest

from meanfield.analysis import bias_variance, fit_power_law, function_distance, risk_gap

T, Q = 11, 64


def _f_inf():
    t = np.linspace(0, 2, T)[:, None]
    x = np.linspace(-1, 1, Q)[None, :]
    return np.tanh(x * (1 + t))


def test_distance_zero_for_identical_and_exact_for_offsets():
    fi = _f_inf()
    assert np.all(function_distance(fi, fi) == 0.0)
    # an offset c(t) at every test point has RMS |c(t)|, for any leading axes
    c = np.linspace(-1, 1, T)
    fN = np.stack([fi + c[:, None], fi - 2 * c[:, None]])[None]  # (1, 2, T, Q)
    d = function_distance(fN, fi)
    assert d.shape == (1, 2, T)
    np.testing.assert_allclose(d[0, 0], np.abs(c), atol=1e-14)
    np.testing.assert_allclose(d[0, 1], 2 * np.abs(c), atol=1e-14)


def test_quadrature_weights_select_test_points():
    fi = _f_inf()
    fN = fi.copy()
    fN[:, 0] += 3.0  # error only at the first test point
    w = np.zeros(Q)
    w[0] = 5.0
    np.testing.assert_allclose(function_distance(fN, fi, weights=w), 3.0)
    np.testing.assert_allclose(function_distance(fN, fi), 3.0 / np.sqrt(Q))
    with pytest.raises(ValueError):
        function_distance(fN[:, :5], fi)


def test_bias_variance_identity_and_one_over_n_scaling():
    # f_N = f_inf + b / N + xi / sqrt(N): bias^2 ~ N^-2, variance ~ N^-1,
    # distance ~ N^-1/2
    rng = np.random.default_rng(0)
    fi = _f_inf()
    S = 100
    widths = np.array([16, 64, 256, 1024])
    var, bias2, dist = [], [], []
    for n in widths:
        xi = rng.standard_normal((S, 1, Q)) * np.linspace(0.5, 1.5, T)[:, None]
        fN = fi + 2.0 / n + xi / np.sqrt(n)
        bv = bias_variance(fN, fi)
        np.testing.assert_allclose(bv.mse, bv.bias2 + bv.variance, rtol=1e-12)
        # ||mean f_N - f_inf||^2 = mse - (S-1)/S * variance, by construction
        fbar = fN.mean(axis=0)
        np.testing.assert_allclose(bv.bias2 + bv.variance / S, ((fbar - fi) ** 2).mean(axis=1), rtol=1e-10)
        var.append(bv.variance[-1])
        bias2.append(bv.bias2[-1])
        dist.append(function_distance(fN, fi)[:, -1].mean())
    assert fit_power_law(widths, var).slope == pytest.approx(-1.0, abs=0.1)
    assert fit_power_law(widths, dist).slope == pytest.approx(-0.5, abs=0.05)
    # unbiased bias^2 tracks b^2 = (2/N)^2: mean_q (b + zeta_q)^2 - var/S with
    # zeta_q ~ N(0, var/S) iid over q has sd 2 b sqrt(var/(S Q)) + (var/S) sqrt(2/Q)
    b, v = 2.0 / widths, np.array(var)
    sd = 2 * b * np.sqrt(v / (S * Q)) + v / S * np.sqrt(2 / Q)
    assert np.all(np.abs(np.array(bias2) - b**2) < 4 * sd)
    assert bias2[0] > 5 * sd[0]  # and at small N the bias is resolved (b^2 ~ 11 sd)


def test_risk_gap_shapes_and_relative():
    r_inf = np.linspace(1.0, 0.1, T)
    r_N = r_inf + np.array([[0.1], [0.2]])
    np.testing.assert_allclose(risk_gap(r_N, r_inf), [[0.1] * T, [0.2] * T])
    np.testing.assert_allclose(risk_gap(r_N, r_inf, relative=True)[0], 0.1 / r_inf)
    with pytest.raises(ValueError):
        risk_gap(r_N[:, :-1], r_inf)
