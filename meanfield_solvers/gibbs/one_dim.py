r"""Gibbs fixed point of mean-field Langevin dynamics for a nonlinear two-layer network in d = 1.

The problem
-----------
A neuron is :math:`\theta = (a, w)`, the network :math:`f(x) = \alpha\int a\,\sigma(wx)\,\mathrm d\mu`
(d = 1, no bias), inputs :math:`x\sim N(0, 1)`, a teacher :math:`y = \sum_m c_m\sigma(v_m x)` with the
student's activation σ (one with a closed-form Gaussian kernel: linear, erf = erf(z/√2), relu), the
population square loss :math:`R = \tfrac12E[(y - f)^2]`, weight decay λ > 0, temperature
:math:`\tau = 1/\beta > 0`, :math:`\Lambda = I`. Kernels (all closed form, :mod:`meanfield_solvers.gaussian`):

.. math:: K(w, w') = E[\sigma(wx)\sigma(w'x)] = \kappa(w^2, w'^2, ww'),\qquad
          T(w) = E[y\,\sigma(wx)] = \sum_m c_m K(w, v_m),\qquad E[y^2] = \sum_{mn}c_mc_nK(v_m, v_n).

Derivation
----------
1. *First variation.* :math:`\delta R/\delta\mu(\theta) = -E[r(x)\,\alpha a\sigma(wx)]` with
   :math:`r = y - f`, so :math:`\Psi = \delta(R/\alpha^2)/\delta\mu = -\tfrac1\alpha E[r\,a\sigma(wx)]
   = -a\,h(w)`, :math:`h(w) = \tfrac1\alpha E[r(x)\sigma(wx)]`: Ψ is linear in a.
2. *Gibbs law.* :math:`\mu^*\propto\exp(-\beta[\Psi + \tfrac\lambda2(a^2 + w^2)])`. Completing the square,
   :math:`-ah + \tfrac\lambda2a^2 = \tfrac\lambda2(a - h/\lambda)^2 - h^2/(2\lambda)`, so
   :math:`\mu^*(a, w) = N(a;\,h(w)/\lambda,\,\tau/\lambda)\,\rho^*(w)` with the marginal

   .. math:: \rho^*(w)\propto\exp\Big(\frac{\beta h(w)^2}{2\lambda} - \frac{\beta\lambda w^2}{2}\Big)

   (the Gaussian integral over a contributes :math:`\sqrt{2\pi\tau/\lambda}`, the same for every w).
   Integrable iff :math:`h(w)^2 < \lambda^2w^2` eventually: always for erf (h bounded); for linear
   and relu h grows linearly in |w| and the slope must stay below λ.
3. *Self-consistency.* :math:`f(x) = \alpha\int\!\!\int a\sigma(wx)\,\mathrm d\mu^*
   = \tfrac\alpha\lambda\int h(w)\sigma(wx)\rho^*(w)\,\mathrm dw`, hence

   .. math:: h(w) = \tfrac1\alpha\big[T(w) - E[f\sigma(wx)]\big]
             = \frac{T(w)}{\alpha} - \frac1\lambda\int K(w, w')\,h(w')\rho^*(w')\,\mathrm dw'.

   That is :math:`h = T/\alpha - \lambda^{-1}\mathcal K[\rho^*h]`. Written
   as :math:`\tfrac1\alpha[T - \tfrac{\alpha^2}\lambda\mathcal K[\rho h]]` the factor is α, not α²:
   :math:`E[f\sigma] = \tfrac\alpha\lambda\mathcal K[\rho h]`.
4. *Stationary quantities.* :math:`E[a^2] = E_\rho[h^2/\lambda^2 + \tau/\lambda]`,
   :math:`E[aw] = E_\rho[wh]/\lambda`, :math:`E[w^2] = E_\rho[w^2]`, and
   :math:`R = \tfrac12E[y^2] - E[yf] + \tfrac12E[f^2]` with
   :math:`E[yf] = \tfrac\alpha\lambda\int hT\rho`,
   :math:`E[f^2] = \tfrac{\alpha^2}{\lambda^2}\iint h(w)K(w,w')h(w')\rho(w)\rho(w')`. Free energy
   :math:`F = R/\alpha^2 + \tfrac\lambda2E|\theta|^2 + \tau\int\mu\log\mu` with
   :math:`\int\mu\log\mu = \int\rho\log\rho - \tfrac12\log(2\pi e\tau/\lambda)`.
5. *Linear check.* σ(z) = z, y = cx, α = 1: K = ww', T = cw, so h = mw with
   :math:`m = c - E_\rho[wh]/\lambda = c - q`, and ρ* = N(0, τλ/(λ² − m²)): exactly
   :func:`~meanfield_solvers.gibbs.linear_gaussian.stationary` (S* = τ(λI − mJ)⁻¹).

Numerics (:func:`solve`)
------------------------
Composite Gauss–Legendre quadrature on [−L, 0] ∪ [0, L] (the relu kernel has a kink at w = 0),
weights :math:`\omega_j`; ρ is carried as probabilities :math:`q_j\propto\omega_j\rho(w_j)`. For fixed
q the h-equation is linear: with :math:`s = \sqrt q`, :math:`g = s\odot h` solves the symmetric positive
definite system :math:`(I + \lambda^{-1}\,\mathrm{diag}(s)K\mathrm{diag}(s))\,g = s\odot T/\alpha`
(K is a Gram matrix). Outer loop: damped Picard on h (new h from ρ(h), mixed with step η, η halved
when the residual grows, grown when it falls), then Newton on the residual
:math:`F(h) = h - T/\alpha + \lambda^{-1}K(q(h)\odot h)` with the exact Jacobian
(:math:`\partial q_j/\partial h_k = q_j\,(\beta h_k/\lambda)(\delta_{jk} - q_k)`) and backtracking.
F is the stationarity condition of a strictly convex free energy, so the root is unique. The
reported ``residual`` is :math:`\max_j|F(h)_j|` at the returned h (ρ recomputed from h). The
window L grows until :math:`\log\rho` at ±L is ``tail`` below its maximum (else: not converged,
the law is not normalisable or too wide), and the whole solve is repeated at ``refine`` times the
nodes; ``grid_error`` is the largest change of (R, E[a²], E[w²], E[aw]) between the two.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from .. import gaussian

__all__ = ["Gibbs1D", "solve", "residual", "kernel_matrix"]


@dataclass
class Gibbs1D:
    """The Gibbs fixed point on the quadrature grid (see :func:`solve`).

    Attributes
    ----------
    w, weights : (n,) nodes and quadrature weights
    density : (n,) ρ*(w) at the nodes (normalised density, ∫ρ = 1)
    prob : (n,) probabilities q_j = ω_j ρ*(w_j)
    h : (n,) h(w) at the nodes; a | w ~ N(h/λ, τ/λ)
    risk : stationary population risk R*
    ea2, ew2, eaw, ea, ew : E[a²], E[w²], E[aw], E[a], E[w] under μ*
    free_energy : R/α² + (λ/2)E|θ|² + τ∫μ log μ
    residual : max |h − T/α + λ⁻¹ K[ρ(h) h]| at the returned h
    iterations : Picard + Newton iterations of the final solve
    converged : residual < tol, tail and grid checks passed
    grid_error : largest change of (R, E[a²], E[w²], E[aw]) against the coarser grid
    message : why not converged ('' when converged)
    """

    w: np.ndarray
    weights: np.ndarray
    density: np.ndarray
    prob: np.ndarray
    h: np.ndarray
    risk: float
    ea2: float
    ew2: float
    eaw: float
    ea: float
    ew: float
    free_energy: float
    residual: float
    iterations: int
    converged: bool
    grid_error: float
    half_width: float
    message: str = ""
    params: dict = field(default_factory=dict, repr=False)

    def conditional_mean(self, w):
        """E[a | w] = h(w)/λ, h interpolated between nodes (use nodes for exact values)."""
        return np.interp(w, self.w, self.h) / self.params["lam"]


def kernel_matrix(activation, w1, w2):
    r""":math:`K(w_i, w'_j) = E[\sigma(w_ix)\sigma(w'_jx)]`, x ~ N(0, 1), shape (len(w1), len(w2))."""
    w1 = np.asarray(w1, float)[:, None]
    w2 = np.asarray(w2, float)[None, :]
    return gaussian.kernel(activation, w1 * w1, w2 * w2, w1 * w2)


def _nodes(L, n):
    x, wt = np.polynomial.legendre.leggauss(n)
    half = 0.5 * L
    nodes = np.concatenate([half * (x - 1.0), half * (x + 1.0)])
    return nodes, np.concatenate([half * wt, half * wt])


class _Problem:
    def __init__(self, activation, teacher_w, teacher_c, lam, tau, alpha, nodes, weights):
        self.lam, self.tau, self.alpha = lam, tau, alpha
        self.beta = 1.0 / tau
        self.w, self.om = nodes, weights
        self.K = kernel_matrix(activation, nodes, nodes)
        self.T = kernel_matrix(activation, nodes, teacher_w) @ teacher_c
        self.ey2 = float(teacher_c @ kernel_matrix(activation, teacher_w, teacher_w) @ teacher_c)
        self.logprior = np.log(weights) - 0.5 * self.beta * lam * nodes * nodes

    def prob(self, h):
        lq = self.logprior + 0.5 * self.beta * h * h / self.lam
        lq -= lq.max()
        q = np.exp(lq)
        return q / q.sum()

    def h_given(self, q):
        s = np.sqrt(q)
        A = np.eye(len(q)) + (s[:, None] * self.K * s[None, :]) / self.lam
        g = linalg.solve(A, s * self.T / self.alpha, assume_a="pos")
        # q_j can underflow to 0 in the tails; h there from the equation itself
        return self.T / self.alpha - self.K @ (s * g) / self.lam

    def resid(self, h):
        q = self.prob(h)
        return h - self.T / self.alpha + self.K @ (q * h) / self.lam

    def jac(self, h):
        q = self.prob(h)
        bh = self.beta * h / self.lam
        M = np.diag(q + q * h * bh) - np.outer(q * h, q * bh)
        return np.eye(len(h)) + self.K @ M / self.lam


def _solve_fixed(P, h0, tol, max_iter):
    h = P.h_given(P.prob(np.zeros_like(P.w))) if h0 is None else h0
    res = np.abs(P.resid(h)).max()
    eta, it = 0.5, 0
    # damped Picard until moderately small, then Newton
    while res > max(1e3 * tol, 1e-6) and it < max_iter:
        it += 1
        hn = (1 - eta) * h + eta * P.h_given(P.prob(h))
        rn = np.abs(P.resid(hn)).max()
        if rn < res:
            h, res, eta = hn, rn, min(1.0, 1.5 * eta)
        else:
            eta *= 0.5
            if eta < 1e-8:
                break
    while res > tol and it < max_iter:
        it += 1
        F = P.resid(h)
        try:
            step = np.linalg.solve(P.jac(h), F)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-6:
            hn = h - t * step
            rn = np.abs(P.resid(hn)).max()
            if rn < res:
                break
            t *= 0.5
        if t <= 1e-6:
            break
        h, res = hn, rn
    return h, res, it


def _summary(P, h):
    lam, tau, alpha = P.lam, P.tau, P.alpha
    q = P.prob(h)
    w = P.w
    Kqh = P.K @ (q * h)
    eyf = alpha / lam * float(q @ (h * P.T))
    ef2 = (alpha / lam) ** 2 * float((q * h) @ Kqh)
    risk = 0.5 * P.ey2 - eyf + 0.5 * ef2
    ea2 = float(q @ (h * h)) / lam ** 2 + tau / lam
    ew2 = float(q @ (w * w))
    dens = q / P.om
    pos = q > 0
    neg_ent_w = float(q[pos] @ np.log(dens[pos]))
    neg_ent = neg_ent_w - 0.5 * np.log(2 * np.pi * np.e * tau / lam)
    F = risk / alpha ** 2 + 0.5 * lam * (ea2 + ew2) + tau * neg_ent
    return dict(density=dens, prob=q, risk=float(risk), ea2=ea2, ew2=ew2,
                eaw=float(q @ (w * h)) / lam, ea=float(q @ h) / lam, ew=float(q @ w),
                free_energy=float(F))


def _solve_on_grid(args, n, L, tol, max_iter, tail, max_widen):
    msg = ""
    h_prev = None
    for _ in range(max_widen + 1):
        nodes, om = _nodes(L, n)
        P = _Problem(*args, nodes, om)
        h0 = None if h_prev is None else np.interp(nodes, *h_prev)
        h, res, it = _solve_fixed(P, h0, tol, max_iter)
        lq = P.logprior - np.log(om) + 0.5 * P.beta * h * h / P.lam  # log density (unnormalised)
        drop = lq.max() - max(lq[0], lq[-1])
        if drop >= tail:
            return P, h, res, it, L, msg
        h_prev = (nodes, h)
        L *= 1.5
    msg = (f"log-density at the window edge only {drop:.1f} below its maximum after widening to "
           f"L = {L / 1.5:.3g}: the Gibbs law is not normalisable (slope of h >= lambda?) or too wide")
    return P, h, res, it, L / 1.5, msg


def solve(activation, teacher_w, teacher_c, lam, tau, alpha=1.0, n=96, half_width=None, tol=1e-10,
          grid_tol=1e-8, refine=1.5, max_iter=500, tail=40.0, max_widen=12):
    r"""The Gibbs fixed point μ* of mean-field Langevin dynamics in d = 1 (module docstring).

    Parameters
    ----------
    activation : str
        linear, erf (= erf(z/√2)) or relu (closed-form kernel; the teacher uses it too).
    teacher_w, teacher_c : (M,) arrays
        Teacher y = Σ_m c_m σ(v_m x).
    lam, tau : float
        Weight decay λ > 0, temperature τ = 1/β > 0.
    alpha : float
        Output scale α (f = α ∫ a σ(wx) dμ).
    n : int
        Gauss–Legendre nodes per half-window [−L, 0], [0, L].
    half_width : float or None
        Initial window L (default 8√(τ/λ) + 2); widened by 1.5 until log ρ at ±L is ``tail``
        below its maximum.
    tol : float
        Target for the self-consistency residual max|F(h)|.
    grid_tol : float
        Largest allowed change of (R, E[a²], E[w²], E[aw]) between n and ``refine``·n nodes.
    refine : float
        Node ratio of the refinement check (≤ 1: skip it; grid_error is then nan).

    Returns
    -------
    Gibbs1D
        On the finer grid. ``converged`` is False, with ``message``, if the residual, the tail or
        the grid check fails; nothing is silent.
    """
    lam, tau, alpha = float(lam), float(tau), float(alpha)
    if not (lam > 0 and tau > 0 and alpha > 0):
        raise ValueError(f"need lam > 0, tau > 0, alpha > 0 (got lam={lam}, tau={tau}, alpha={alpha}): "
                         "without decay or noise the Gibbs law is not a normalisable density")
    tw = np.atleast_1d(np.asarray(teacher_w, float))
    tc = np.atleast_1d(np.asarray(teacher_c, float))
    if tw.shape != tc.shape or tw.ndim != 1:
        raise ValueError(f"teacher_w and teacher_c must be 1-d of equal length (got {tw.shape}, {tc.shape})")
    args = (activation, tw, tc, lam, tau, alpha)
    L = 8.0 * np.sqrt(tau / lam) + 2.0 if half_width is None else float(half_width)
    msgs = []
    grid_error = float("nan")
    if refine > 1:
        P0, h0, _, _, L, m0 = _solve_on_grid(args, n, L, tol, max_iter, tail, max_widen)
        s0 = _summary(P0, h0)
        n = int(np.ceil(refine * n))
        if m0:
            msgs.append(m0)
    P, h, res, it, L, m1 = _solve_on_grid(args, n, L, tol, max_iter, tail, max_widen)
    s = _summary(P, h)
    res = float(np.abs(P.resid(h)).max())
    if m1:
        msgs.append(m1)
    if refine > 1:
        grid_error = max(abs(s[k] - s0[k]) for k in ("risk", "ea2", "ew2", "eaw"))
        if not grid_error <= grid_tol:
            msgs.append(f"grid check failed: quantities change by {grid_error:.2e} > grid_tol {grid_tol:.0e} "
                        "between the two grids")
    if not res <= tol:
        msgs.append(f"self-consistency residual {res:.2e} > tol {tol:.0e} after {it} iterations")
    return Gibbs1D(w=P.w, weights=P.om, h=h, residual=res, iterations=it, converged=not msgs,
                   grid_error=grid_error, half_width=L, message="; ".join(dict.fromkeys(msgs)),
                   params=dict(activation=activation, teacher_w=tw, teacher_c=tc, lam=lam, tau=tau,
                               alpha=alpha),
                   **s)


def residual(sol: Gibbs1D):
    r"""Self-consistency residual of a solution, recomputed from scratch: kernels, T and ρ(h) rebuilt
    on the solution's nodes, then :math:`\max_j|h_j - T(w_j)/\alpha + \lambda^{-1}\sum_k K(w_j, w_k)h_kq_k(h)|`."""
    p = sol.params
    P = _Problem(p["activation"], p["teacher_w"], p["teacher_c"], p["lam"], p["tau"], p["alpha"],
                 sol.w, sol.weights)
    return float(np.abs(P.resid(sol.h)).max())
