"""Antithetic initialisation (pairs (a, w, b), (-a, w, b)): the prediction over pairs,
N Var = 2 Var_pairs[(g_j + g_j~)/2] (docs/fluctuations.md section 6), matches 400 antithetic networks,
while the formula for independent units (ignoring the pairing) does not."""
import numpy as np

import meanfield
from meanfield.analysis.fluctuations import variance_stderr
from meanfield.twolayer.prediction import influence_variance, predict_fluctuations
from test_fluct_predict import _dataset, _erf_cfg


def test_antithetic_ensembles_match_the_paired_prediction(tmp_path):
    N = 32
    cfg = _erf_cfg(_dataset(tmp_path), [N], 400, 2000, False, t_max=2.0)
    cfg["model"]["antithetic"] = True
    cfg["fluctuations"]["predict"] = False
    r = meanfield.run(cfg)
    pred = predict_fluctuations(meanfield.config.from_dict(cfg), times=0)
    assert pred.paired
    q = r["f_nn"][0]  # (S, T, Q)
    meas, mse = N * q.var(axis=0, ddof=1), N * variance_stderr(q, method="analytic")
    paired, se = pred.nvar[:, :4], pred.nvar_se[:, :4]
    np.testing.assert_allclose(paired[0], 0.0, atol=1e-20)  # f's influence is odd in a: no variance at t = 0
    z = ((meas - paired) / np.sqrt(mse ** 2 + se ** 2))[1:]
    assert np.mean(np.abs(z) < 3) >= 0.9, np.round(z, 2)
    plain = influence_variance(pred.g[:, :4], paired=False)[0]
    z_plain = ((meas - plain) / np.sqrt(mse ** 2 + se ** 2))[1:]
    assert np.mean(np.abs(z_plain) < 3) < 0.5, np.round(z_plain, 2)
