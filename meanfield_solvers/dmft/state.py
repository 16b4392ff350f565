r"""The order parameters of the discrete DMFT and the operations on them that do not sample.

State :math:`\Sigma = \{\Phi^\ell, G^\ell\ (\ell=1..L),\ R_A^\ell, R_B^\ell\ (\ell=1..L-1),\ f\}`
(docs/dmft.md §3.4) on a :class:`~meanfield_solvers.dmft.grid.Grid`; the static :math:`\Phi^0 = XX^\top/D` and
:math:`G^{L+1}\equiv 1` are stored alongside. All two-time objects are ``(n, n)`` matrices
(see :mod:`meanfield_solvers.dmft.grid`). The responses are the discrete ones,
:math:`R_A^\ell[k,j] = \langle\partial\phi(h^\ell[k])/\partial r^\ell[j]\rangle\approx\gamma_0\,dt\,A^\ell(t_k,t_j)`
and :math:`R_B^\ell[k,j] = \langle\partial g^{\ell+1}[k]/\partial u^{\ell+1}[j]\rangle\approx\gamma_0\,dt\,B^\ell`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .grid import Grid
from .ntk import InitKernels, kernel_flow

__all__ = ["DMFTState", "outputs_from_field_term", "memory_operators"]


def outputs_from_field_term(c, Phi_L, grid: Grid, y):
    r"""Outputs from the discrete field formula, solved by forward substitution.

    .. math::  f_\mu[k] = c_\mu[k] + \frac{dt}{P}\sum_{j<k}\sum_{\nu\le P}\Phi^L_{\mu\nu}[k,j]\,
               (y_\nu - f_\nu[j])

    with :math:`c_\mu[k] = \gamma_0^{-1}\langle\partial\phi(h^L_\mu[k])/\partial r^L\rangle`
    (docs/dmft.md §3.1; equivalently :math:`\gamma_0^{-1}\langle z^L\phi(h^L)\rangle`). This is the exact
    :math:`N\to\infty` limit of Euler gradient descent, not an Euler step of the kernel ODE.

    Parameters
    ----------
    c : (n_t, n_pts)
    Phi_L : (n, n) two-time last-layer kernel
    grid : Grid;  y : (n_train,)

    Returns
    -------
    f : (n_t, n_pts)
    """
    P, n_pts = grid.n_train, grid.n_pts
    A = grid.as4(Phi_L)[:, :, :, :P]  # (k, mu, j, nu<P)
    f = np.array(c, dtype=float, copy=True)
    delta = np.zeros((grid.n_t, P))
    coef = grid.dt / P
    for k in range(grid.n_t):
        if k:
            f[k] += coef * np.einsum("mjn,jn->m", A[k, :, :k, :], delta[:k])
        delta[k] = y - f[k, :P]
    return f


def memory_operators(state: "DMFTState", l: int, gamma0: float):
    r"""The memory operators ``H``, ``Z`` (n×n) of the single-site process of layer ``l``.

    .. math::
        H = R_A^{\ell-1} + \frac{\gamma_0 dt}{P}\Phi^{\ell-1}[k,j]\,\mathrm{diag}(\Delta[j])\ (j<k),\qquad
        Z = R_B^{\ell} + \frac{\gamma_0 dt}{P}G^{\ell+1}[k,j]\,\mathrm{diag}(\Delta[j])\ (j<k)

    with :math:`R_A^0 = 0`, :math:`R_B^L = 0` (docs/dmft.md §3.1). ``H`` is strictly block-lower
    triangular; ``Z`` is block-lower triangular with the instantaneous diagonal blocks of
    :math:`R_B^\ell`.
    """
    g = state.grid
    d = g.loss_row(state.y, state.f)
    coef = gamma0 * g.dt / g.n_train
    H = g.memory_term(state.Phi[l - 1], d, coef)
    Z = g.memory_term(state.G[l + 1], d, coef)
    if l >= 2:
        H += state.RA[l - 1]
    if l <= state.L - 1:
        Z += state.RB[l]
    return H, Z


@dataclass
class DMFTState:
    """Order parameters on one horizon (see module doc). Lists are indexed by layer number.

    ``Phi[l]``, l = 0..L (``Phi[0]`` static); ``G[l]``, l = 1..L+1 (``G[0]`` None, ``G[L+1]`` ones);
    ``RA[l]``, ``RB[l]``, l = 1..L-1 (index 0 None); ``f`` (n_t, n_pts).
    """

    grid: Grid
    y: np.ndarray
    Phi: list
    G: list
    RA: list
    RB: list
    f: np.ndarray
    extras: dict = field(default_factory=dict)

    @property
    def L(self) -> int:
        return len(self.Phi) - 1

    # ----- construction ------------------------------------------------------------------------
    @classmethod
    def lazy(cls, init: InitKernels, grid: Grid, y) -> "DMFTState":
        r"""The :math:`\gamma_0\to0` solution: t = 0 kernels held constant in time, responses 0,
        outputs from the Euler NTK flow (docs/dmft.md §3.4, §5c)."""
        L = init.depth
        Phi = [grid.constant_in_time(init.Phi[l]) for l in range(L + 1)]
        G = [None] + [grid.constant_in_time(init.G[l]) for l in range(1, L + 2)]
        RA = [None] + [np.zeros((grid.n, grid.n)) for _ in range(1, L)]
        RB = [None] + [np.zeros((grid.n, grid.n)) for _ in range(1, L)]
        f = kernel_flow(init.K, y, grid.dt, grid.T)
        return cls(grid, np.asarray(y, dtype=float), Phi, G, RA, RB, f)

    def extended(self, new: Grid) -> "DMFTState":
        """Initial guess on a longer horizon: kernels held constant beyond the old horizon,
        responses extended by zero, outputs continued by the Euler flow with the last NTK."""
        g = self.grid
        Phi = [g.extend(M, new, "hold") for M in self.Phi]
        G = [None] + [g.extend(M, new, "hold") for M in self.G[1:]]
        RA = [None] + [g.extend(M, new, "zero") for M in self.RA[1:]]
        RB = [None] + [g.extend(M, new, "zero") for M in self.RB[1:]]
        f = np.zeros((new.n_t, g.n_pts))
        f[: g.n_t] = self.f
        tail = kernel_flow(self.ntk()[-1], self.y, g.dt, new.n_t - g.n_t, f0=self.f[-1])
        f[g.n_t - 1:] = tail
        return DMFTState(new, self.y, Phi, G, RA, RB, f)

    # ----- fixed-point arithmetic --------------------------------------------------------------
    def _dynamic(self):
        L = self.L
        for l in range(1, L + 1):
            yield f"Phi{l}", "Phi", l
            yield f"G{l}", "G", l
        for l in range(1, L):
            yield f"RA{l}", "RA", l
            yield f"RB{l}", "RB", l

    def blended(self, new: "DMFTState", beta: float) -> "DMFTState":
        r""":math:`(1-\beta)\,\Sigma + \beta\,\Sigma_{new}` for the dynamic order parameters."""
        out = DMFTState(self.grid, self.y, list(self.Phi), list(self.G), list(self.RA),
                        list(self.RB), (1 - beta) * self.f + beta * new.f, dict(new.extras))
        if beta == 1.0:
            out.Phi, out.G, out.RA, out.RB = list(new.Phi), list(new.G), list(new.RA), list(new.RB)
            out.Phi[0], out.G[self.L + 1] = self.Phi[0], self.G[self.L + 1]
            return out
        for _, attr, l in self._dynamic():
            getattr(out, attr)[l] = (1 - beta) * getattr(self, attr)[l] + beta * getattr(new, attr)[l]
        return out

    def residual(self, new: "DMFTState") -> tuple[float, dict]:
        r"""Relative change ``max(‖X_new − X‖_F / ‖X_new‖_F over kernels and responses, max|Δf|)``."""
        parts = {}
        for name, attr, l in self._dynamic():
            a, b = getattr(self, attr)[l], getattr(new, attr)[l]
            nb = np.linalg.norm(b)
            diff = np.linalg.norm(b - a)
            parts[name] = diff / nb if nb > 0 else (0.0 if diff == 0 else np.inf)
        parts["f"] = float(np.max(np.abs(new.f - self.f)))
        return max(parts.values()), parts

    # ----- derived quantities ------------------------------------------------------------------
    def ntk(self) -> np.ndarray:
        r"""Equal-time NTK :math:`K[k] = \sum_{\ell=0}^{L} G^{\ell+1}[k,k]\odot\Phi^\ell[k,k]`, (n_t, n_pts, n_pts)."""
        g = self.grid
        return sum(g.equal_time(self.G[l + 1]) * g.equal_time(self.Phi[l]) for l in range(self.L + 1))

    def loss(self) -> np.ndarray:
        P = self.grid.n_train
        return 0.5 * np.mean((self.y[None, :] - self.f[:, :P]) ** 2, axis=1)
