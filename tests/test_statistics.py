"""Statistical claims of the two-layer simulator: initial fluctuations and the N^(-1/2) approach."""
import numpy as np
import pytest

import meanfield
from meanfield_solvers import gaussian
from helpers import tiny


def test_initial_output_variance_is_rho0_variance_over_n():
    r"""Var_seeds f_N(x) = alpha^2 Var_rho0[a sigma(w.x)] / N at t = 0.

    For a ~ N(0, 1), w ~ N(0, I/d) and erf units, Var_rho0[a sigma(w.x)] = E[sigma(u)^2] with
    u ~ N(0, q), q = |x|^2/d: (2/pi) arcsin(q / (1 + q)).
    """
    S, alpha = 600, 1.7
    cfg = tiny(**{"limit.method": "none", "train.coupling": False, "train.seeds": S, "train.widths": [4, 32],
                  "model.alpha": alpha, "time.t_max": 0.1, "time.records": 2, "time.snapshots": 0,
                  "eval.n_points": 6})
    a = meanfield.run(cfg).arrays
    x = a["x_eval"]
    q = np.sum(x * x, axis=1) / x.shape[1]
    var_rho0 = gaussian.kernel("erf", q, q, q)
    for i, N in enumerate(a["widths"]):
        f0 = a["f_nn"][i, :, 0, :]  # (S, Q)
        v = f0.var(axis=0, ddof=1)
        # standard error of a sample variance from the sample's own fourth moment
        m4 = np.mean((f0 - f0.mean(0)) ** 4, axis=0)
        se = np.sqrt((m4 - v**2) / S)
        z = (N * v / alpha**2 - var_rho0) / (N * se / alpha**2)
        assert np.all(np.abs(z) < 4.5), (N, z)


def test_finite_width_risk_approaches_the_limit_like_inverse_sqrt_n():
    """Sup-norm gap between each network's population-risk curve and the limit's, RMS over seeds."""
    widths = [8, 32, 128, 512]
    cfg = tiny(**{"task.d": 4, "task.teacher_width": 2, "limit.particles": 4096, "limit.dt": 0.25,
                  "train.algorithm": "population_gd", "train.lr": 0.25, "train.widths": widths,
                  "train.seeds": 6, "time.t_max": 2.0, "time.records": 5, "time.snapshots": 0,
                  "limit.integrator": "euler", "train.coupling": False})
    a = meanfield.run(cfg).arrays
    gaps = np.max(np.abs(a["risk_nn"] - a["risk_mf"]), axis=2)  # (W, S)
    rms = np.sqrt(np.mean(gaps**2, axis=1))
    slope, _ = np.polyfit(np.log(widths), np.log(rms), 1)
    assert rms[-1] < rms[0] / 3
    assert abs(slope + 0.5) < 0.15, (slope, rms)
