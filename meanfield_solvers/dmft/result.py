r"""Result object of an infinite-width solve (sampled or closed form)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .iteration import IterationLog
from .state import DMFTState

__all__ = ["DMFTResult", "result_from_state"]


@dataclass
class DMFTResult:
    r"""Trajectory and order parameters of a DMFT solve on ``t = dt * arange(T+1)``.

    Points are the training points (first ``n_train``) followed by the test points.
    Layer-indexed arrays have a leading axis of length L (index ``l-1`` holds layer ``l``).

    Attributes
    ----------
    t : (T+1,)
    f : (T+1, n_pts)            network outputs (infinite width)
    loss : (T+1,)               training loss (1/P) Σ ½(y − f)²
    Phi : (L, T+1, n_pts, n_pts)  equal-time feature kernels Φ^ℓ(t,t)
    G : (L, T+1, n_pts, n_pts)    equal-time gradient kernels G^ℓ(t,t)
    K : (T+1, n_pts, n_pts)       NTK Σ_{ℓ=0}^{L} G^{ℓ+1} ⊙ Φ^ℓ at equal times
    Phi0 : (n_pts, n_pts)         input kernel XXᵀ/D
    Phi_two_time, G_two_time : (L, T+1, n_pts, T+1, n_pts)  two-time kernels [l-1, k, μ, j, ν]
    RA, RB : (L-1, T+1, n_pts, T+1, n_pts)  discrete responses ≈ γ₀ dt A^ℓ(t_k,t_j), γ₀ dt B^ℓ
    f_err, loss_err : like f, loss     Monte Carlo standard errors (zeros for the closed form)
    K_err, Phi_err, G_err : like K, Phi, G   Monte Carlo standard errors of the equal-time kernels
    residuals : (iterations,)   max relative change per fixed-point iteration (all stages)
    horizons : (iterations,)    horizon T of the continuation stage of each iteration
    status : 'converged' | 'not_converged' | 'diverged' | 'not_positive_definite'
    iterations : int
    message : str
    info : dict                 settings, timings, per-component residuals, error-estimate details
    """

    t: np.ndarray
    f: np.ndarray
    loss: np.ndarray
    Phi: np.ndarray
    G: np.ndarray
    K: np.ndarray
    Phi0: np.ndarray
    Phi_two_time: np.ndarray
    G_two_time: np.ndarray
    RA: np.ndarray
    RB: np.ndarray
    f_err: np.ndarray
    loss_err: np.ndarray
    K_err: np.ndarray
    Phi_err: np.ndarray
    G_err: np.ndarray
    residuals: np.ndarray
    horizons: np.ndarray
    status: str
    iterations: int
    message: str
    n_train: int
    info: dict = field(default_factory=dict)
    state: DMFTState | None = field(default=None, repr=False)

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def __repr__(self):
        T = len(self.t) - 1
        return (f"DMFTResult(status={self.status!r}, iterations={self.iterations}, T={T}, "
                f"n_pts={self.f.shape[1]}, L={self.Phi.shape[0]}, final loss={self.loss[-1]:.4g}"
                f" ± {self.loss_err[-1]:.1g})")


def result_from_state(state: DMFTState, log: IterationLog, info=None, errors=None) -> DMFTResult:
    """Package a state (any horizon) and its iteration log; ``errors`` maps names to MC errors."""
    g = state.grid
    L = state.L
    P4 = lambda M: g.as4(M).copy()  # noqa: E731
    Phi = np.stack([g.equal_time(state.Phi[l]) for l in range(1, L + 1)])
    G = np.stack([g.equal_time(state.G[l]) for l in range(1, L + 1)])
    K = state.ntk()
    loss = state.loss()
    shape_r = (max(L - 1, 0), g.n_t, g.n_pts, g.n_t, g.n_pts)
    RA = np.stack([P4(state.RA[l]) for l in range(1, L)]) if L > 1 else np.zeros(shape_r)
    RB = np.stack([P4(state.RB[l]) for l in range(1, L)]) if L > 1 else np.zeros(shape_r)
    errors = errors or {}
    z = np.zeros_like
    return DMFTResult(
        t=g.times, f=state.f.copy(), loss=loss, Phi=Phi, G=G, K=K,
        Phi0=g.equal_time(state.Phi[0])[0],
        Phi_two_time=np.stack([P4(state.Phi[l]) for l in range(1, L + 1)]),
        G_two_time=np.stack([P4(state.G[l]) for l in range(1, L + 1)]),
        RA=RA, RB=RB,
        f_err=errors.get("f", z(state.f)), loss_err=errors.get("loss", z(loss)),
        K_err=errors.get("K", z(K)), Phi_err=errors.get("Phi", z(Phi)), G_err=errors.get("G", z(G)),
        residuals=np.asarray(log.residuals, dtype=float), horizons=np.asarray(log.horizons, dtype=int),
        status=log.status, iterations=log.iterations, message=log.message, n_train=g.n_train,
        info=dict(info or {}, residual_parts=log.parts, betas=log.betas, seconds=log.seconds,
                  good_horizon=log.good_horizon),
        state=state,
    )
