"""Small configs and exact reference paths shared by the tests."""
import copy
import math

import numpy as np


def tiny(**over):
    """A tiny, fast teacher-student config dict; ``over`` maps 'section.key' to values."""
    cfg = {
        "run": {"seed": 1},
        "task": {"kind": "teacher_student", "d": 3, "teacher_width": 2},
        "model": {"activation": "erf"},
        "limit": {"particles": 32, "dt": 0.1, "expectation": "analytic"},
        "train": {"widths": [8, 16], "seeds": 2, "lr": 0.1, "batch": 8},
        "time": {"t_max": 1.0, "records": 6, "snapshots": 2},
        "eval": {"n_test": 200, "n_points": 4},
    }
    cfg = copy.deepcopy(cfg)
    for k, v in over.items():
        sec, key = k.split(".", 1)
        cfg.setdefault(sec, {})[key] = v
    return cfg


def ou_exact_path(paths, lam, sig, T, n_fine, seed, x0=1.0):
    r"""Brownian increments ``dw`` (paths, n_fine) and the exact X_T of dX = −λX dt + σ dW driven by them.

    On the fine grid h = T/n_fine, variation of constants gives X_{t+h} = e^{−λh}X_t + σI with
    I = ∫_t^{t+h} e^{−λ(t+h−u)} dW_u; (ΔW, I) is a centred Gaussian pair with Var ΔW = h,
    Var I = v = (1 − e^{−2λh})/(2λ), Cov = c = (1 − e^{−λh})/λ (Itô's isometry), so
    ΔW = √h Z₁, I = (c/√h) Z₁ + √(v − c²/h) Z₂: exact at the grid points, and coarser steps use
    sums of ``dw``.
    """
    h = T / n_fine
    z1, z2 = np.random.default_rng(seed).standard_normal((2, paths, n_fine))
    c, v = -math.expm1(-lam * h) / lam, -math.expm1(-2 * lam * h) / (2 * lam)
    dw = math.sqrt(h) * z1
    stoch = (c / math.sqrt(h)) * z1 + math.sqrt(v - c * c / h) * z2
    x = np.full(paths, float(x0))
    for k in range(n_fine):
        x = math.exp(-lam * h) * x + sig * stoch[:, k]
    return dw, x
