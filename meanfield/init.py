r"""Initial neurons: the distribution :math:`\rho_0` and the coupling of finite networks to the limit.

:math:`a_i\sim N(0, a_{std}^2)` (or the constant :math:`a_{value}`),
:math:`w_i\sim N(0, w_{std}^2 I_d/d)`, :math:`b_i\sim N(0, b_{std}^2)`. With ``antithetic`` the
neurons come in pairs :math:`(a, w, b), (-a, w, b)`, so :math:`f_0\equiv 0` exactly for every
activation and every x.

Synchronous coupling: a width-N network's initial neurons are a uniform subsample without
replacement of the mean-field particles (whole antithetic pairs when antithetic), a different
subsample per seed. Both measures then start from the same particles, so a distance between
them at time t measures the dynamics, not the sampling of the initialisation.
"""
from __future__ import annotations

import numpy as np

__all__ = ["draw_neurons", "subsample"]


def draw_neurons(mcfg, d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` neurons as rows ``[a, w, (b)]``; float64, shape (n, 1 + d + bias)."""
    half = n // 2 if mcfg.antithetic else n
    p = 1 + d + int(mcfg.bias)
    th = np.empty((half, p))
    if mcfg.a_init == "gaussian":
        th[:, 0] = mcfg.a_std * rng.standard_normal(half)
    else:
        th[:, 0] = mcfg.a_value
    th[:, 1 : 1 + d] = (mcfg.w_std / np.sqrt(d)) * rng.standard_normal((half, d))
    if mcfg.bias:
        th[:, 1 + d] = mcfg.b_std * rng.standard_normal(half)
    if mcfg.antithetic:
        mirror = th.copy()
        mirror[:, 0] *= -1.0
        th = np.concatenate([th, mirror])
    return th


def subsample(particles: np.ndarray, n: int, rng: np.random.Generator, antithetic: bool):
    """``n`` rows of ``particles`` without replacement (pairs i, i + M/2 kept together if antithetic).

    Returns ``(rows, idx)``: the (n, p) copy and the particle indices it was taken from.
    """
    M = particles.shape[0]
    if antithetic:
        idx = rng.choice(M // 2, size=n // 2, replace=False)
        idx = np.concatenate([idx, idx + M // 2])
    else:
        idx = rng.choice(M, size=n, replace=False)
    return particles[idx].copy(), idx
