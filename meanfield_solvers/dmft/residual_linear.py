r"""Exact DMFT of deep *linear* residual networks: one causal pass in time ("coefficient tracking").

Network and flow (docs/residual.md §1, muP): :math:`\phi = \mathrm{id}`, L hidden layers, L − 1 blocks,

.. math::
    h^1 = W^0x/\sqrt D,\quad h^{\ell+1} = h^\ell + bW^\ell h^\ell/\sqrt N,\quad f = w\cdot h^L/(\gamma_0N),
    \qquad W \leftarrow W - dt\,\gamma_0^2N\nabla\hat L .

Discrete DMFT (docs/residual.md §3), the exact :math:`N\to\infty` limit of GD at step dt. Each neuron
carries one forward stream :math:`h^1..h^L` and one backward stream :math:`g^L..g^1`
(:math:`g = \gamma_0N\partial f/\partial h`), driven by independent Gaussian sources
:math:`u^1\sim N(0,\Phi^0)` (static), :math:`u^{\ell+1}\sim GP(0,\Phi^\ell)`, :math:`r^\ell\sim GP(0,G^{\ell+1})`
(ℓ = 1..L−1) and :math:`r^L\sim N(0,1)` (the readout at init):

.. math::
    h^1[k] &= u^1 + \tfrac{\gamma_0dt}{P}\textstyle\sum_{j<k}\Phi^0\Delta[j]\,g^1[j]\\
    h^{\ell+1}[k] &= h^\ell[k] + b\Big(u^{\ell+1}[k] + \textstyle\sum_{j<k}R_A^\ell[k,j]\,g^{\ell+1}[j]\Big)
        + \tfrac{\gamma_0b^2dt}{P}\textstyle\sum_{j<k}\Phi^\ell[k,j]\Delta[j]\,g^{\ell+1}[j]\\
    g^L[k] &= w[k] = r^L + \tfrac{\gamma_0dt}{P}\textstyle\sum_{j<k}\sum_\nu\Delta_\nu[j]h^L_\nu[j]\\
    \xi^\ell[k] &= r^\ell[k] + \textstyle\sum_{j<k}R_B^\ell[k,j]\,h^\ell[j]
        + \tfrac{\gamma_0b\,dt}{P}\textstyle\sum_{j<k}G^{\ell+1}[k,j]\Delta[j]\,h^\ell[j],\qquad
    g^\ell[k] = g^{\ell+1}[k] + b\,\xi^\ell[k]\\
    f[k] &= \gamma_0^{-1}\,\partial h^L[k]/\partial r^L + \tfrac{dt}{P}\textstyle\sum_{j<k}\Phi^L[k,j]\Delta[j]

with :math:`\Delta[j] = \mathrm{diag}(y-f[j])` on training points (0 on test points),
:math:`\Phi^\ell[k,j] = \langle h^\ell[k]h^\ell[j]^\top\rangle`, :math:`G^\ell = \langle g g^\top\rangle`, and the
responses :math:`R_A^\ell[k,j] = \partial h^\ell[k]/\partial r^\ell[j]`,
:math:`R_B^\ell[k,j] = \partial g^{\ell+1}[k]/\partial u^{\ell+1}[j]` (P×P blocks over points).

Why one pass is exact. With :math:`\phi'' = 0` no field depends on a same-step source of the layer
that reads it (:math:`R_B^\ell[k,k] = 0`, by induction from :math:`g^L[k] = w[k]`, which sees only
:math:`h^L[j<k]`), so every response links a step to strictly earlier ones. All fields are linear in
the sources; we store each field value as a coefficient vector over all source components
(:math:`n_s = n + 2(L-1)(T+1)n + 1`, n points). Kernels are quadratic forms in the block-diagonal source
covariance, whose blocks (:math:`\Phi^0`, :math:`\Phi^\ell`, :math:`G^{\ell+1}`, 1) fill causally during the
pass (order within step k: :math:`h^1..h^L`, then :math:`w, g^L, \xi^{L-1}, g^{L-1}, ..., g^1`), and the
responses are coefficients. Marching once through the steps gives the exact discrete DMFT; nothing is
iterated. The solver asserts causality (no weight on a future source). Cost
:math:`O(L^2T^3n^3)`, memory :math:`\approx(4L^2+2L)((T+1)n)^2` doubles (:func:`residual_linear_bytes`).

``responses=False`` drops :math:`R_A, R_B` (gradient independence); docs/residual.md §3 explains why
that is not the limit of residual networks, and the finite-width test shows it fails.
"""
from __future__ import annotations

import time

import numpy as np

from .ntk import train_loss
from .result import DMFTResult

__all__ = ["solve_residual_linear", "residual_linear_bytes"]


def residual_linear_bytes(L: int, T: int, n_pts: int) -> float:
    """Estimated peak memory (bytes) of :func:`solve_residual_linear`: coefficients and two-time kernels."""
    nt = (T + 1) * n_pts
    n_s = n_pts + 2 * (L - 1) * nt + 1
    return 8.0 * (2 * L * nt * n_s + 2 * L * nt * nt)


def solve_residual_linear(X, y, L: int, branch: float, gamma0: float, dt: float, T: int, *, X_test=None,
                          responses: bool = True, max_bytes: float = 4e9) -> DMFTResult:
    r"""Exact DMFT of a deep linear residual muP network on ``t = dt * arange(T+1)`` (module doc).

    Parameters
    ----------
    X : (P, D), y : (P,), X_test : (Q, D) optional
    L : hidden layers (L − 1 residual blocks);  branch : multiplier b (depth-muP :math:`\beta/\sqrt L`)
    gamma0 : richness (> 0);  dt, T : step and number of steps (the GD step of the networks it describes)
    responses : keep the response terms (False: the gradient-independence ablation, not the limit)
    max_bytes : refuse a solve whose estimate (:func:`residual_linear_bytes`) exceeds this

    Returns
    -------
    DMFTResult
        ``Phi``, ``G`` (L, T+1, n, n) equal-time kernels; ``Phi_two_time``, ``G_two_time``
        (L, T+1, n, T+1, n); ``K`` the NTK :math:`\Phi^L + b^2\sum G^{\ell+1}\odot\Phi^\ell + G^1\odot\Phi^0`
        at equal times; ``RA``, ``RB`` (L−1, T+1, n, T+1, n); zero MC errors; status ``exact``.
    """
    t0 = time.perf_counter()
    if not gamma0 > 0:
        raise ValueError("gamma0 must be > 0 (gamma0 -> 0 is the residual NTK flow: solve_residual_ntk)")
    if int(T) != T or T < 1 or not dt > 0 or L < 1:
        raise ValueError(f"need integers L, T >= 1 and dt > 0, got L={L}, T={T}, dt={dt}")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    Xall = X if X_test is None else np.concatenate([X, np.asarray(X_test, dtype=float)], axis=0)
    P, n = X.shape[0], Xall.shape[0]
    need = residual_linear_bytes(L, T, n)
    if need > max_bytes:
        raise MemoryError(f"the residual linear DMFT needs about {need / 1e9:.3g} GB > {max_bytes / 1e9:.3g} GB "
                          f"(L = {L}, T = {T}, {n} points): lower T, L or the number of points")
    Tn = T + 1
    nt = Tn * n
    g0, b, b2 = float(gamma0), float(branch), float(branch) ** 2
    Phi0 = Xall @ Xall.T / X.shape[1]

    # source layout: u1 | U[1..L-1] (u^{l+1}, cov Phi^l) | R[1..L-1] (r^l, cov G^{l+1}) | rL
    U = {l: n + (l - 1) * nt for l in range(1, L)}
    R = {l: n + (L - 1) * nt + (l - 1) * nt for l in range(1, L)}
    rL = n + 2 * (L - 1) * nt
    n_s = rL + 1

    Ch = np.zeros((L + 1, Tn, n, n_s))  # Ch[l, k]: coefficients of h^l[k] (l = 1..L)
    Cg = np.zeros((L + 1, Tn, n, n_s))  # Cg[l, k]: coefficients of g^l[k]
    Phi2 = np.zeros((L + 1, Tn, n, Tn, n))  # two-time kernels, index l = 1..L
    G2 = np.zeros((L + 1, Tn, n, Tn, n))
    f = np.zeros((Tn, n))
    Delta = np.zeros((Tn, n))  # y - f on training points, 0 on test points
    eye = np.eye(n)

    def cov_apply(c, k):
        """c C (c: (m, n_s) coefficients), using the blocks filled up to step k."""
        out = np.zeros_like(c)
        out[:, :n] = c[:, :n] @ Phi0
        m = (k + 1) * n
        for l in range(1, L):
            out[:, U[l]:U[l] + m] = c[:, U[l]:U[l] + m] @ Phi2[l, :k + 1, :, :k + 1, :].reshape(m, m)
            out[:, R[l]:R[l] + m] = c[:, R[l]:R[l] + m] @ G2[l + 1, :k + 1, :, :k + 1, :].reshape(m, m)
        out[:, rL] = c[:, rL]
        return out

    def fill(K2, C, l, k):
        """Two-time kernel K2[l][k, :, j, :] = <c(l, k) c(l, j)> for j <= k (and its transpose)."""
        cc = cov_apply(C[l, k], k) @ C[l, :k + 1].reshape((k + 1) * n, n_s).T  # (n, (k+1) n)
        cc = cc.reshape(n, k + 1, n)
        K2[l, k, :, :k + 1, :] = cc
        K2[l, :k + 1, :, k, :] = np.transpose(cc, (1, 2, 0))
        K2[l, k, :, k, :] = 0.5 * (cc[:, k, :] + cc[:, k, :].T)

    def future(c, base, k):
        """Largest weight of c on source steps >= k of the block starting at ``base`` (causality check)."""
        return np.abs(c[:, base + k * n: base + nt]).max(initial=0.0)

    worst = 0.0
    for k in range(Tn):
        # ---------------- forward: h^1[k] .. h^L[k]
        c = np.zeros((n, n_s))
        c[:, :n] = eye
        for j in range(k):
            c += (g0 * dt / P) * (Phi0 * Delta[j][None, :]) @ Cg[1, j]
        Ch[1, k] = c
        for l in range(1, L):
            fill(Phi2, Ch, l, k)
            c = Ch[l, k].copy()
            src = np.zeros((n, n_s))
            src[:, U[l] + k * n: U[l] + (k + 1) * n] = eye
            if responses and k:
                worst = max(worst, future(Ch[l, k], R[l], k))
                src += Ch[l, k][:, R[l]:R[l] + k * n] @ Cg[l + 1, :k].reshape(k * n, n_s)
            c += b * src
            for j in range(k):
                c += (g0 * b2 * dt / P) * (Phi2[l, k, :, j, :] * Delta[j][None, :]) @ Cg[l + 1, j]
            Ch[l + 1, k] = c
        fill(Phi2, Ch, L, k)
        # ---------------- backward: w[k] = g^L[k], then xi^l, g^l for l = L-1 .. 1
        cw = np.zeros(n_s)
        cw[rL] = 1.0
        for j in range(k):
            cw += (g0 * dt / P) * (Delta[j] @ Ch[L, j])
        Cg[L, k] = cw[None, :]
        fill(G2, Cg, L, k)
        for l in range(L - 1, 0, -1):
            xi = np.zeros((n, n_s))
            xi[:, R[l] + k * n: R[l] + (k + 1) * n] = eye
            if responses and k:
                worst = max(worst, future(Cg[l + 1, k], U[l], k))
                xi += Cg[l + 1, k][:, U[l]:U[l] + k * n] @ Ch[l, :k].reshape(k * n, n_s)
            for j in range(k):
                xi += (g0 * b * dt / P) * (G2[l + 1, k, :, j, :] * Delta[j][None, :]) @ Ch[l, j]
            Cg[l, k] = Cg[l + 1, k] + b * xi
            fill(G2, Cg, l, k)
        # ---------------- outputs
        fk = Ch[L, k][:, rL] / g0
        for j in range(k):
            fk = fk + (dt / P) * Phi2[L, k, :, j, :] @ Delta[j]
        f[k] = fk
        Delta[k, :P] = y - fk[:P]
    if worst > 1e-12:
        raise AssertionError(f"residual linear DMFT: a field weighs a future source ({worst:.3g}): not causal")

    idx = np.arange(Tn)
    Phi = Phi2[1:, idx, :, idx, :]  # (Tn, L, n, n) after fancy indexing
    Phi = np.moveaxis(Phi, 0, 1)
    G = np.moveaxis(G2[1:, idx, :, idx, :], 0, 1)
    K = Phi[L - 1] + G[0] * Phi0[None]
    for l in range(1, L):
        K = K + b2 * G[l] * Phi[l - 1]
    RA = np.zeros((max(L - 1, 0), Tn, n, Tn, n))
    RB = np.zeros_like(RA)
    for l in range(1, L):
        RA[l - 1] = Ch[l][:, :, R[l]:R[l] + nt].reshape(Tn, n, Tn, n)
        RB[l - 1] = Cg[l + 1][:, :, U[l]:U[l] + nt].reshape(Tn, n, Tn, n)
    zero = np.zeros
    info = dict(activation="linear", L=L, branch=b, gamma0=g0, dt=dt, T=T, responses=responses,
                n_sources=n_s, causality_max=worst, seconds=time.perf_counter() - t0)
    return DMFTResult(t=dt * np.arange(Tn), f=f, loss=train_loss(f, y), Phi=Phi, G=G, K=K, Phi0=Phi0,
                      Phi_two_time=Phi2[1:], G_two_time=G2[1:], RA=RA, RB=RB,
                      f_err=zero(f.shape), loss_err=zero(Tn), K_err=zero(K.shape), Phi_err=zero(Phi.shape),
                      G_err=zero(G.shape), residuals=np.zeros(0), horizons=np.zeros(0, dtype=int),
                      status="exact", iterations=1, message="", n_train=P, info=info)
