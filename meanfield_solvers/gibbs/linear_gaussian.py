r"""Linear Gaussian oracle for mean-field Langevin dynamics: exact covariance flow, Gibbs fixed point,
free energy and the exact finite-N stationary risk.

The problem
-----------
Linear units :math:`\sigma(z) = z`, d = 1, no bias, inputs :math:`x\sim N(0, 1)`, a linear teacher
:math:`y = c\,x`, the population square loss, :math:`\alpha = 1`, :math:`\Lambda = I`. A neuron is
:math:`\theta = (a, w)`; the network :math:`f(x) = E_\mu[a\,w\,x] = q\,x` with :math:`q = E_\mu[a w]`.

* Risk: :math:`R = \tfrac12 E[(y - f)^2] = \tfrac12 (c - q)^2 E[x^2] = \tfrac12 (c-q)^2`.
* Residual :math:`r = y - f = (c - q)x`; first variation
  :math:`\Psi(\theta;\mu) = -E[r\,a\,w x] = -(c - q)\,a w = -m\,a w`, with :math:`m = c - q`.
  Its gradient is :math:`\nabla_\theta\Psi = -m\,(w, a) = -m J\theta`,
  :math:`J = \begin{pmatrix}0&1\\1&0\end{pmatrix}`.
* Mean-field Langevin with weight decay :math:`\lambda > 0` and temperature :math:`\tau = 1/\beta`:

  .. math:: \mathrm d\theta = [m J\theta - \lambda\theta]\,\mathrm dt + \sqrt{2\tau}\,\mathrm dB
            = A\theta\,\mathrm dt + \sqrt{2\tau}\,\mathrm dB, \qquad A = mJ - \lambda I .

Gaussian closure (:func:`covariance_flow`)
-----------------------------------------
In the mean-field limit :math:`q(t)` is a deterministic function of time, so for a given path
:math:`m(t)` the SDE is linear with deterministic coefficients: :math:`\theta(t) = \Phi(t)\theta(0)
+ \int_0^t\Phi(t, s)\sqrt{2\tau}\,\mathrm dB_s` is a linear image of the Gaussian vector
:math:`(\theta(0), B)`, hence Gaussian. Its mean solves :math:`\dot\nu = A\nu`, so a centred start
stays centred. Itô's formula for :math:`\theta\theta^\top` gives
:math:`\mathrm d(\theta\theta^\top) = (A\theta\theta^\top + \theta\theta^\top A^\top + 2\tau I)\mathrm dt
+ \text{martingale}`, so the covariance obeys the Lyapunov equation

.. math:: \dot S = A S + S A^\top + 2\tau I, \qquad A = (c - S_{12})J - \lambda I,

closed because :math:`q = E[aw] = S_{12}` for a centred law. Conversely the solution S(t) of this
ODE defines m(t), and the linear SDE driven by that m(t) has exactly this covariance: the Gaussian
law is self-consistent. In coordinates (:math:`s_a = S_{11}`, :math:`s_w = S_{22}`,
:math:`p = S_{12}`, :math:`T = s_a + s_w`), since :math:`JS + SJ = \begin{pmatrix}2p & T\\ T & 2p
\end{pmatrix}`:

.. math::
    \dot s_a = 2mp - 2\lambda s_a + 2\tau,\quad \dot s_w = 2mp - 2\lambda s_w + 2\tau,\quad
    \dot p = mT - 2\lambda p,

so :math:`s_a - s_w` decays as :math:`e^{-2\lambda t}` and (T, p) carry the dynamics.

Gibbs fixed point (:func:`stationary`)
-------------------------------------
At a fixed point :math:`s_a = s_w = T/2`, :math:`p = mT/(2\lambda)` and
:math:`\lambda T = 2mp + 2\tau = m^2T/\lambda + 2\tau`, so

.. math::
    T = \frac{2\tau\lambda}{\lambda^2 - m^2},\qquad
    S^* = \frac{\tau}{\lambda^2 - m^2}\begin{pmatrix}\lambda & m\\ m & \lambda\end{pmatrix}
        = \tau(\lambda I - mJ)^{-1},

which needs :math:`|m| < \lambda` (T > 0). This is exactly the Gibbs law
:math:`\mu^*\propto\exp(-\beta[\Psi + \lambda|\theta|^2/2]) = \exp(-\tfrac\beta2\theta^\top
(\lambda I - mJ)\theta)`, normalisable iff :math:`|m| < \lambda`. Self-consistency
:math:`m = c - S^*_{12}` is one scalar equation:

.. math:: h(m) \equiv m + \frac{\tau m}{\lambda^2 - m^2} = c, \qquad |m| < \lambda .

See :func:`stationary` for existence, uniqueness and the small/large c behaviour.

Free energy (:func:`free_energy`)
---------------------------------
For a centred Gaussian :math:`\mu = N(0, S)`: :math:`R = \tfrac12(c - S_{12})^2`,
:math:`\int|\theta|^2\mathrm d\mu = \mathrm{tr}\,S`, :math:`\int\mu\log\mu = -\tfrac12\log\det(2\pi e S)`,
so the mean-field free energy :math:`F_\beta = R + \frac\lambda2\int|\theta|^2 + \tau\int\mu\log\mu` is

.. math:: F(S) = \tfrac12(c - S_{12})^2 + \tfrac\lambda2\,\mathrm{tr}\,S - \tfrac\tau2\log\det(2\pi e S).

Finite N (:func:`finite_n_risk`)
--------------------------------
N particles under Langevin dynamics of the population risk have the invariant law
:math:`\pi_N\propto e^{-\beta U}`, :math:`U = \tfrac N2(c - q_N)^2 + \tfrac\lambda2\sum_i|\theta_i|^2`,
:math:`q_N = \tfrac1N\sum_i a_i w_i`; its risk :math:`E_N[\tfrac12(c-q_N)^2]` is computed exactly by a
Hubbard–Stratonovich integral and carries an O(1/N) bias (:func:`finite_n_expansion`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import integrate, optimize

__all__ = [
    "LinearGibbs",
    "RelaxationRates",
    "FiniteN",
    "FiniteNExpansion",
    "covariance_velocity",
    "covariance_flow",
    "euler_maruyama_covariance",
    "gibbs_covariance",
    "stationary",
    "relaxation_rates",
    "free_energy",
    "free_energy_gradient",
    "dissipation",
    "finite_n_risk",
    "finite_n_expansion",
]

_J = np.array([[0.0, 1.0], [1.0, 0.0]])
_I = np.eye(2)


def _check_params(lam, tau, need_positive=True):
    lam = float(lam)
    tau = float(tau)
    if need_positive and not (lam > 0.0 and tau > 0.0):
        raise ValueError(f"need weight decay lam > 0 and temperature tau > 0 (got lam={lam}, tau={tau}): "
                         "without decay the Gibbs law exp(beta m a w) is not normalisable, and at tau = 0 "
                         "the stationary law is degenerate (see stationary's docstring for that limit)")
    if lam < 0.0 or tau < 0.0:
        raise ValueError(f"lam and tau must be non-negative (got lam={lam}, tau={tau})")
    return lam, tau


def _as_cov(S):
    S = np.asarray(S, dtype=float)
    if S.shape[-2:] != (2, 2):
        raise ValueError(f"a covariance of (a, w) has shape (..., 2, 2), got {S.shape}")
    if not np.allclose(S, np.swapaxes(S, -1, -2), rtol=1e-12, atol=1e-14):
        raise ValueError("the covariance must be symmetric")
    return S


# ----------------------------------------------------------------------------- the flow
def covariance_velocity(S, c, lam, tau):
    r"""Right-hand side of the covariance ODE, :math:`\dot S = AS + SA^\top + 2\tau I`.

    Parameters
    ----------
    S : (..., 2, 2) array
        Symmetric covariance of (a, w).
    c, lam, tau : float
        Teacher weight, weight decay λ, temperature τ = 1/β (λ = 0 or τ = 0 allowed here).

    Returns
    -------
    (..., 2, 2) array, with :math:`A = (c - S_{12})J - \lambda I`.
    """
    lam, tau = _check_params(lam, tau, need_positive=False)
    S = _as_cov(S)
    m = c - S[..., 0, 1]
    A = m[..., None, None] * _J - lam * _I
    AS = A @ S
    return AS + np.swapaxes(AS, -1, -2) + 2.0 * tau * _I


def covariance_flow(S0, c, lam, tau, t, rtol=1e-11, atol=1e-13):
    r"""Covariance S(t) of the mean-field Langevin law started from :math:`N(0, S_0)`.

    Solves :math:`\dot S = AS + SA^\top + 2\tau I`, :math:`A = (c - S_{12})J - \lambda I` (derivation
    in the module docstring) on its three independent entries :math:`(S_{11}, S_{22}, S_{12})`
    with an adaptive 8th-order Runge–Kutta method (``scipy.integrate.solve_ivp``, DOP853), so the
    result is symmetric by construction.

    Parameters
    ----------
    S0 : (2, 2) array
        Initial covariance (symmetric, positive semi-definite; S0 = 0 is a point mass at 0).
    c, lam, tau : float
        Teacher weight, weight decay λ ≥ 0, temperature τ ≥ 0.
    t : float or 1-d array of increasing times ≥ 0
    rtol, atol : float
        Tolerances of the ODE solver.

    Returns
    -------
    (2, 2) array for scalar ``t``, else (len(t), 2, 2).
    """
    lam, tau = _check_params(lam, tau, need_positive=False)
    S0 = _as_cov(S0)
    if S0.shape != (2, 2):
        raise ValueError(f"S0 must be one (2, 2) covariance, got shape {S0.shape}")
    if np.linalg.eigvalsh(S0)[0] < -1e-12 * max(1.0, np.abs(S0).max()):
        raise ValueError("S0 must be positive semi-definite")
    scalar = np.ndim(t) == 0
    ts = np.atleast_1d(np.asarray(t, dtype=float))
    if ts.ndim != 1 or np.any(ts < 0) or np.any(np.diff(ts) < 0):
        raise ValueError("t must be a non-negative time or an increasing 1-d array of them")

    def rhs(_, y):
        sa, sw, p = y
        m = c - p
        return [2 * m * p - 2 * lam * sa + 2 * tau, 2 * m * p - 2 * lam * sw + 2 * tau,
                m * (sa + sw) - 2 * lam * p]

    y0 = [S0[0, 0], S0[1, 1], S0[0, 1]]
    if ts[-1] == 0.0:
        ys = np.repeat(np.asarray(y0)[:, None], len(ts), axis=1)
    else:
        sol = integrate.solve_ivp(rhs, (0.0, ts[-1]), y0, method="DOP853", t_eval=ts,
                                  rtol=rtol, atol=atol)
        if not sol.success:  # pragma: no cover - a smooth polynomial ODE; only blow-up fails
            raise RuntimeError(f"covariance ODE failed: {sol.message}")
        ys = sol.y
    out = np.empty((len(ts), 2, 2))
    out[:, 0, 0], out[:, 1, 1] = ys[0], ys[1]
    out[:, 0, 1] = out[:, 1, 0] = ys[2]
    return out[0] if scalar else out


def euler_maruyama_covariance(S0, c, lam, tau, dt, n_steps):
    r"""Exact covariance of the Euler–Maruyama particle scheme with infinitely many particles.

    One EM step of the particle SDE is :math:`\theta' = B_n\theta + \sqrt{2\tau\Delta t}\,\xi`,
    :math:`B_n = I + \Delta t\,A_n`, :math:`A_n = m_nJ - \lambda I`, with :math:`\xi\sim N(0, I)`
    independent of :math:`\theta`. With M → ∞ particles the empirical
    :math:`q_n = \tfrac1M\sum a w` equals :math:`S_{n,12}` (law of large numbers), so
    :math:`m_n = c - S_{n,12}` is deterministic and the law stays centred Gaussian with

    .. math:: S_{n+1} = B_n S_n B_n^\top + 2\tau\Delta t\, I .

    This is the particle simulation's own target (no O(Δt) bias, only Monte Carlo error and an
    O(1/M) finite-particle bias); it differs from :func:`covariance_flow` by O(Δt) (weak order 1).
    E.g. for a frozen mode :math:`\dot s = -2\gamma s + 2\tau` the EM stationary value is
    :math:`\tau/(\gamma(1 - \gamma\Delta t/2))`: a relative bias of :math:`+\gamma\Delta t/2`.

    Returns
    -------
    (n_steps + 1, 2, 2) array: S_0, S_1, ..., S_{n_steps}.
    """
    lam, tau = _check_params(lam, tau, need_positive=False)
    S = _as_cov(S0).copy()
    out = np.empty((int(n_steps) + 1, 2, 2))
    out[0] = S
    for n in range(int(n_steps)):
        B = _I + dt * ((c - S[0, 1]) * _J - lam * _I)
        S = B @ S @ B.T + (2.0 * tau * dt) * _I
        S = 0.5 * (S + S.T)
        out[n + 1] = S
    return out


# ----------------------------------------------------------------------------- fixed point
@dataclass(frozen=True)
class LinearGibbs:
    """The Gibbs fixed point of the linear problem (see :func:`stationary`).

    Attributes
    ----------
    m : float
        :math:`m^* = c - q^*`, the coefficient of the residual (|m*| < λ).
    q : float
        :math:`q^* = S^*_{12} = E_{\\mu^*}[a w]`, the learned teacher weight.
    S : (2, 2) array
        :math:`S^* = \\tau(\\lambda I - m^*J)^{-1}`.
    risk : float
        :math:`R^* = \\tfrac12 m^{*2}`.
    free_energy : float
        :math:`F(S^*)`, the minimum of the free energy.
    """

    m: float
    q: float
    S: np.ndarray
    risk: float
    free_energy: float


def gibbs_covariance(m, lam, tau):
    r"""Covariance of the Gibbs law :math:`\propto\exp(-\beta[-m\,a w + \lambda|\theta|^2/2])` at a given m.

    :math:`\tau(\lambda I - mJ)^{-1} = \frac{\tau}{\lambda^2 - m^2}\begin{pmatrix}\lambda & m\\ m &
    \lambda\end{pmatrix}`; requires |m| < λ (otherwise the law is not normalisable).
    """
    lam, tau = _check_params(lam, tau)
    if not abs(m) < lam:
        raise ValueError(f"the Gibbs law needs |m| < lam (got m={m}, lam={lam})")
    e = lam - abs(m)
    g = tau / (e * (2.0 * lam - e))  # tau / (lam^2 - m^2) without cancellation near |m| = lam
    return g * np.array([[lam, m], [m, lam]])


def stationary(c, lam, tau):
    r"""The unique stationary law (Gibbs fixed point) of the linear mean-field Langevin dynamics.

    Derivation
    ----------
    Setting :math:`\dot S = 0` (module docstring) gives :math:`S^* = \tau(\lambda I - mJ)^{-1}`, the
    Gibbs law at m, and :math:`q = S^*_{12} = \tau m/(\lambda^2 - m^2)`. Self-consistency
    :math:`m = c - q` is the scalar equation

    .. math:: h(m) = m + \frac{\tau m}{\lambda^2 - m^2} = c, \qquad m\in(-\lambda, \lambda).

    Every stationary law is of this form: a stationary law with given m is invariant for the
    linear (Ornstein–Uhlenbeck) SDE with drift A = mJ − λI, whose unique invariant law is
    :math:`N(0, \tau(-A)^{-1})` when A is stable, i.e. |m| < λ (A has eigenvalues −λ ± m); for
    |m| ≥ λ the SDE has no invariant probability law at all.

    Existence and uniqueness (λ > 0, τ > 0): :math:`h'(m) = 1 + \tau(\lambda^2 + m^2)/(\lambda^2 -
    m^2)^2 \ge 1 > 0` on (−λ, λ), and :math:`h\to\mp\infty` at :math:`m\to\mp\lambda`, so there is
    **exactly one root for every c**. It has the sign of c (h is odd and h(0) = 0), and
    :math:`|m^*| < \min(|c|, \lambda)`. So :math:`q^* = c - m^* = \tau m^*/(\lambda^2-m^{*2})` is
    zero **only** for c = 0: at positive temperature there is no threshold in c.

    Small versus large c (the τ → 0 limit): with :math:`e = \lambda - |m|`,

    * :math:`|c| < \lambda`: :math:`m^*\to c` and :math:`q^* = \tau c/(\lambda^2 - c^2) + O(\tau^2)`:
      the network learns almost nothing, weight decay wins.
    * :math:`|c| > \lambda`: :math:`e\approx\tau/(2(|c| - \lambda))`, :math:`m^*\to\lambda\,\mathrm{sign}\,c`,
      :math:`q^*\to\mathrm{sign}(c)(|c| - \lambda)`.
    * :math:`|c| = \lambda`: :math:`P(e)\approx -2\lambda e^2 + \tau\lambda` (P below) gives
      :math:`e\approx\sqrt{\tau/2}` and :math:`q^*\approx\tau/(2e) = \mathrm{sign}(c)\sqrt{\tau/2}`.

    So :math:`q^*\to\mathrm{sign}(c)(|c| - \lambda)_+`, soft thresholding, which is the τ = 0
    problem: minimising :math:`\tfrac12(c - q)^2 + \tfrac\lambda2 E[a^2 + w^2]` with
    :math:`E[a^2 + w^2]\ge 2|E[aw]|` (equality for a = ±w) is :math:`\min_q\tfrac12(c-q)^2 + \lambda|q|`.
    At τ = 0 itself the noiseless flow with decay has the fixed point S = 0 (q = 0) for every c, stable
    iff |c| < λ (linearised (T, p) rates −2λ ± 2|c|); for |c| > λ also the rank-one
    :math:`S = |q|\begin{pmatrix}1 & s\\ s & 1\end{pmatrix}`, :math:`s = \mathrm{sign}\,c`,
    :math:`q = s(|c|-\lambda)` (m = sλ). Positive τ smooths the threshold |c| = λ; near it (and
    whenever |m*| ≈ λ) relaxation is slow, see :func:`relaxation_rates`.

    Numerics: in :math:`e = \lambda - |m|\in(0, \lambda]` the equation, multiplied by
    :math:`e(2\lambda - e) = \lambda^2 - m^2 > 0`, is the cubic
    :math:`P(e) = (\lambda - e - |c|)\,e(2\lambda - e) + \tau(\lambda - e) = 0` with
    :math:`P(0) = \tau\lambda > 0` and :math:`P(\lambda) = -|c|\lambda^2 < 0`: bracketed, solved by
    Brent's method to relative precision ~1e-15 in e (so λ² − m² = e(2λ − e) keeps full relative
    precision even when m* is within 1e-10 of λ).

    Parameters
    ----------
    c, lam, tau : float
        Teacher weight, weight decay λ > 0, temperature τ > 0.

    Returns
    -------
    LinearGibbs
        m*, q*, S*, R* = m*²/2 and F(S*).
    """
    lam, tau = _check_params(lam, tau)
    c = float(c)
    if c == 0.0:
        m = 0.0
    else:
        ac = abs(c)

        def P(e):
            return (lam - e - ac) * e * (2.0 * lam - e) + tau * (lam - e)

        e = optimize.brentq(P, 0.0, lam, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
        if e <= 0.0:  # pragma: no cover - P(0) > 0 excludes it
            raise RuntimeError("stationary: root at |m| = lam")
        m = float(np.copysign(lam - e, c))
    S = gibbs_covariance(m, lam, tau)
    return LinearGibbs(m=float(m), q=float(S[0, 1]), S=S, risk=0.5 * m * m,
                       free_energy=float(free_energy(S, c, lam, tau)))


class RelaxationRates(NamedTuple):
    """Decay rates (1/time) at the fixed point: see :func:`relaxation_rates`."""

    covariance: np.ndarray
    mean: np.ndarray


def relaxation_rates(c, lam, tau):
    r"""Decay rates of perturbations of the Gibbs fixed point (the run length a test needs).

    * ``covariance``: minus the eigenvalues of the covariance ODE linearised at S*, in the
      coordinates :math:`(s_a, s_w, p)` with Jacobian

      .. math:: \begin{pmatrix}-2\lambda & 0 & 2(m-p)\\ 0 & -2\lambda & 2(m-p)\\ m & m & -T-2\lambda\end{pmatrix}

      (:math:`\partial(2mp)/\partial p = 2(m - p)` since m = c − p). The mode :math:`s_a - s_w`
      has rate 2λ; the (T, p) block has trace :math:`-4\lambda - T` and determinant
      :math:`4(\lambda^2 - m^2) + 4\tau(\lambda^2 + m^2)/(\lambda^2 - m^2)` at the fixed point.
      These are the rates at which S(t) from a centred Gaussian converges. They are O(λ) and
      the determinant is small (slow convergence) only near the threshold |c| ≈ λ at small τ:
      with :math:`x = \lambda^2 - m^2`, :math:`4x + 8\tau\lambda^2/x \ge 8\lambda\sqrt{2\tau}`,
      reached for :math:`x\sim\sqrt\tau`, which is the |c| = λ case (for |c| < λ, x → λ² − c²;
      for |c| > λ, x ~ τ and the second term is O(1)).
    * ``mean``: the mean ν of a non-centred law obeys :math:`\dot\nu = A\nu` (q depends on ν only at
      second order), rates :math:`\lambda - m^*` and :math:`\lambda + m^*` along (1, ±1). The
      smaller, :math:`\lambda - |m^*|`, also governs every non-Gaussian perturbation of the law
      and the time correlations of a single particle's :math:`a\pm w`, hence the correlation time
      of time averages and of a finite system's empirical mean: this is the **slow mixing near
      |m*| ≈ λ** (e.g. |c| > λ at small τ, where λ − |m*| ≈ τ/(2(|c| − λ))).

    Returns
    -------
    RelaxationRates
        ``covariance`` (3,) complex array sorted by real part, ``mean`` (2,) sorted.
    """
    g = stationary(c, lam, tau)
    m, p, T = g.m, g.q, float(np.trace(g.S))
    jac = np.array([[-2 * lam, 0.0, 2 * (m - p)],
                    [0.0, -2 * lam, 2 * (m - p)],
                    [m, m, -T - 2 * lam]])
    rates = -np.linalg.eigvals(jac).astype(complex)
    rates = rates[np.argsort(rates.real)]
    return RelaxationRates(covariance=rates, mean=np.sort([lam - abs(m), lam + abs(m)]))


# ----------------------------------------------------------------------------- free energy
def free_energy(S, c, lam, tau):
    r"""Mean-field free energy of the centred Gaussian N(0, S).

    .. math:: F(S) = \tfrac12(c - S_{12})^2 + \tfrac\lambda2\,\mathrm{tr}\,S
                     - \tfrac\tau2\log\det(2\pi e\,S),

    i.e. :math:`R + \frac\lambda2 E|\theta|^2 - \tau H(\mu)` with the Gaussian entropy
    :math:`H = \tfrac12\log\det(2\pi e S)`.

    Why it never increases along :func:`covariance_flow`
    ----------------------------------------------------
    With the trace inner product on symmetric matrices, :math:`\mathrm dF = \mathrm{tr}(G\,\mathrm dS)`
    where (using :math:`\mathrm dS_{12} = \tfrac12\mathrm{tr}(J\,\mathrm dS)` and
    :math:`\mathrm d\log\det S = \mathrm{tr}(S^{-1}\mathrm dS)`)

    .. math:: G = -\tfrac m2 J + \tfrac\lambda2 I - \tfrac\tau2 S^{-1} = -\tfrac12(A + \tau S^{-1}),
              \qquad A = mJ - \lambda I .

    The ODE is :math:`\dot S = AS + SA + 2\tau I = (A + \tau S^{-1})S + S(A + \tau S^{-1})
    = -2(GS + SG)`, hence

    .. math:: \frac{\mathrm dF}{\mathrm dt} = \mathrm{tr}(G\dot S) = -2\,\mathrm{tr}(G(GS + SG))
              = -4\,\mathrm{tr}(GSG) = -4\,\|S^{1/2}G\|_F^2 \le 0,

    zero iff G = 0 (S ≻ 0), i.e. iff :math:`S = \tau(\lambda I - mJ)^{-1}` with m = c − S₁₂: the
    fixed point. This is the general MFLD dissipation
    :math:`-\int|\nabla(\Psi + \lambda|\theta|^2/2 + \tau\log\mu)|^2\mathrm d\mu` evaluated on a
    Gaussian: the bracket's gradient is :math:`(-mJ + \lambda I - \tau S^{-1})\theta = 2G\theta`,
    and :math:`E|2G\theta|^2 = 4\,\mathrm{tr}(GSG)`. F is strictly convex on S ≻ 0 (−log det is
    strictly convex, the square of the linear S₁₂ is convex, tr S is linear), so the stationary
    point is its unique minimiser over centred Gaussians (and, F being strictly convex in μ, the
    Gibbs law minimises it over all probability laws).

    Parameters
    ----------
    S : (..., 2, 2) array
    c, lam, tau : float

    Returns
    -------
    float or array of shape (...); +inf where S is not positive definite.
    """
    lam, tau = _check_params(lam, tau, need_positive=False)
    S = _as_cov(S)
    sign, logdet = np.linalg.slogdet(S)
    F = (0.5 * (c - S[..., 0, 1]) ** 2 + 0.5 * lam * np.trace(S, axis1=-2, axis2=-1)
         - 0.5 * tau * (logdet + 2.0 * np.log(2.0 * np.pi * np.e)))
    F = np.where(sign > 0, F, np.inf)
    return float(F) if np.ndim(F) == 0 else F


def free_energy_gradient(S, c, lam, tau):
    r"""The symmetric gradient :math:`G = -\tfrac m2J + \tfrac\lambda2 I - \tfrac\tau2S^{-1}` of F.

    :math:`\mathrm dF = \mathrm{tr}(G\,\mathrm dS)`; in the three coordinates
    :math:`(S_{11}, S_{22}, S_{12})` the partial derivatives are :math:`(G_{11}, G_{22}, 2G_{12})`.
    Zero exactly at the fixed point (see :func:`free_energy`).
    """
    lam, tau = _check_params(lam, tau, need_positive=False)
    S = _as_cov(S)
    m = c - S[..., 0, 1]
    return -0.5 * m[..., None, None] * _J + 0.5 * lam * _I - 0.5 * tau * np.linalg.inv(S)


def dissipation(S, c, lam, tau):
    r""":math:`-\mathrm dF/\mathrm dt = 4\,\mathrm{tr}(GSG)\ge 0` along the covariance flow (see :func:`free_energy`)."""
    G = free_energy_gradient(S, c, lam, tau)
    D = 4.0 * np.trace(G @ np.asarray(S, float) @ G, axis1=-2, axis2=-1)
    return float(D) if np.ndim(D) == 0 else D


# ----------------------------------------------------------------------------- finite N
class FiniteN(NamedTuple):
    """Stationary moments of N particles (:func:`finite_n_risk`)."""

    n: int
    mean_residual: float  # E_N[c - q_N]
    mean_sq_residual: float  # E_N[(c - q_N)^2]
    risk: float  # E_N[R] = E_N[(c - q_N)^2] / 2
    var_q: float  # Var_N[q_N]


class FiniteNExpansion(NamedTuple):
    r"""First-order 1/N coefficients: :math:`E_N[X] = X^* + b_X/N + O(1/N^2)` (:func:`finite_n_expansion`)."""

    residual: float  # b for E[c - q]
    risk: float  # b for E[R]
    var_q: float  # N Var[q_N] -> var_q


def _g_shift(y, m, c, lam, tau):
    r""":math:`G(y + im) - G(im)`, :math:`G(u) = u^2/2 - icu + (\tau/2)\log(\lambda^2 + u^2)`."""
    u = y + 1j * m
    # principal log is continuous on the line: Re(lam^2 + u^2) = lam^2 - m^2 + y^2 > 0
    return (0.5 * (u * u + m * m) - 1j * c * y
            + 0.5 * tau * np.log((lam * lam + u * u) / ((lam - abs(m)) * (lam + abs(m)))))


def finite_n_risk(c, lam, tau, n, epsrel=1e-12):
    r"""Exact stationary moments of the risk for N particles (Hubbard–Stratonovich integral).

    Derivation
    ----------
    Langevin dynamics of N particles on the population risk,
    :math:`\mathrm d\theta_i = -\nabla_{\theta_i}U\,\mathrm dt + \sqrt{2\tau}\,\mathrm dB_i` with
    :math:`U = \tfrac N2(c - q_N)^2 + \tfrac\lambda2\sum_i|\theta_i|^2`,
    :math:`q_N = \tfrac1N\sum_i a_iw_i` (indeed :math:`\nabla_{\theta_i}U = -(c - q_N)J\theta_i +
    \lambda\theta_i = \nabla\Psi(\theta_i;\mu_N) + \lambda\theta_i`), is reversible with invariant law
    :math:`\pi_N\propto e^{-\beta U}`. Linearise the square with a Gaussian integral
    (:math:`\int e^{-Ak^2/2 + iBk}\mathrm dk = \sqrt{2\pi/A}\,e^{-B^2/2A}`, A = N/β, B = N(c − q_N)):

    .. math:: e^{-\beta N(c-q_N)^2/2} \propto \int\mathrm dk\; e^{-Nk^2/(2\beta) + iNk(c - q_N)} .

    The particles then decouple: :math:`\int e^{-ik\,aw - \beta\lambda(a^2+w^2)/2}\mathrm da\,\mathrm dw
    = 2\pi/\sqrt{\det(\beta\lambda I + ikJ)} = 2\pi/\sqrt{\beta^2\lambda^2 + k^2}`, so

    .. math:: Z_N \propto \int\mathrm dk\; e^{-Ng(k)}, \qquad
              g(k) = \frac{k^2}{2\beta} - ikc + \tfrac12\log(\beta^2\lambda^2 + k^2).

    Moments by differentiating in c: :math:`\partial_c\log Z_N = -\beta N E[c - q_N] = E_k[iNk]`
    and :math:`\partial_c^2 Z_N/Z_N = \beta^2N^2E[(c-q_N)^2] - \beta N = -N^2E_k[k^2]`, with
    :math:`E_k` the average under the complex weight :math:`e^{-Ng}`:

    .. math:: E_N[c - q_N] = -iE_k[k]/\beta, \qquad E_N[(c - q_N)^2] = \frac1{\beta N} - \frac{E_k[k^2]}{\beta^2}.

    Numerics: rescale k = βu, so :math:`e^{-Ng} \propto e^{-(N/\tau)G(u)}`,
    :math:`G(u) = u^2/2 - icu + \tfrac\tau2\log(\lambda^2 + u^2)`; then :math:`E_N[c-q_N] = -iE_u[u]`
    and :math:`E_N[(c-q_N)^2] = \tau/N - E_u[u^2]`. G is analytic in the strip |Im u| < λ
    (branch points ±iλ) and the weight decays like a Gaussian in Re u, so the contour moves to
    the horizontal line u = y + im* through the saddle: :math:`G'(im) = 0` is exactly
    :math:`m + \tau m/(\lambda^2 - m^2) = c`, the Gibbs equation. On that line
    :math:`G(-y + im) = \overline{G(y + im)}`, so the weight w(y) has even real and odd imaginary
    part, and with :math:`Z = 2\int_0^\infty\mathrm{Re}\,w`, :math:`J_1 = 2\int_0^\infty y\,
    \mathrm{Im}\,w`, :math:`J_2 = 2\int_0^\infty y^2\,\mathrm{Re}\,w`:

    .. math:: E_N[c - q_N] = m^* + J_1/Z, \qquad
              E_N[(c-q_N)^2] = m^{*2} + \tau/N + 2m^*J_1/Z - J_2/Z .

    :math:`|w| \le e^{-Ny^2/(2\tau)}` because :math:`|\lambda^2 + u^2| \ge \lambda^2 - m^2 + y^2`;
    the integrals are adaptive Gauss–Kronrod on pieces scaled to the saddle's width
    :math:`\sqrt{\tau/(ND)}`, :math:`D = G''(im^*)` (see :func:`finite_n_expansion`). No Monte Carlo,
    any N ≥ 1; checked to round-off (1e-15 relative) against an independent reduction of
    :math:`\pi_N` to one real integral over :math:`|w|^2/N` (tests) for τ down to 1e-4.
    Limitation: when :math:`\lambda - |m^*|` is tiny (τ ≲ 1e-6 with |c| > λ, or |c| ≈ λ) and N is
    small, the branch point sits next to the contour, the weight decays only like a power and
    oscillates fast, and the quadrature loses accuracy; a RuntimeWarning then reports quad's
    relative error estimate.

    Parameters
    ----------
    c, lam, tau : float
        Teacher weight, weight decay λ > 0, temperature τ > 0.
    n : int
        Number of particles N ≥ 1.
    epsrel : float
        Relative tolerance of each quadrature.

    Returns
    -------
    FiniteN
        ``mean_residual`` E_N[c − q_N], ``mean_sq_residual`` E_N[(c − q_N)²], ``risk`` E_N[R] (half of
        it) and ``var_q``.
    """
    lam, tau = _check_params(lam, tau)
    n = int(n)
    if n < 1:
        raise ValueError(f"need n >= 1 particles, got {n}")
    m = stationary(c, lam, tau).m
    D = 1.0 + tau * (lam * lam + m * m) / ((lam - abs(m)) * (lam + abs(m))) ** 2
    scale = np.sqrt(tau / n)  # Gaussian bound's width
    width = scale / np.sqrt(D)  # the saddle's width
    # pieces growing geometrically from the finer of the saddle's width and the distance
    # lam - |m*| from the contour to the branch point i lam (the integrand's other length scale)
    edges = [0.0]
    e = min(8.0 * width, lam - abs(m))
    while e < 40.0 * scale:
        edges.append(e)
        e *= 4.0
    edges.append(40.0 * scale)

    def weight(y):
        return np.exp(-(n / tau) * _g_shift(y, m, c, lam, tau))

    def integral(f, epsabs):
        # quad's round-off warnings are replaced by one check of its error estimates below
        total = err = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", integrate.IntegrationWarning)
                v, e = integrate.quad(f, lo, hi, epsabs=epsabs / len(edges), epsrel=epsrel, limit=200)
            total += v
            err += e
        return 2.0 * total, 2.0 * err

    Z, eZ = integral(lambda y: weight(y).real, 0.0)
    J2, e2 = integral(lambda y: y * y * weight(y).real, 0.0)
    # J1 is a small difference of oscillating parts: an absolute tolerance on its natural scale
    # Z * rms(y), since a purely relative one can be unattainable
    y_rms = np.sqrt(abs(J2 / Z))
    J1, e1 = integral(lambda y: y * weight(y).imag, epsrel * abs(Z) * y_rms)
    worst = max(eZ / abs(Z), e2 / abs(J2), e1 / (abs(Z) * y_rms))
    if worst > 1e3 * epsrel:
        warnings.warn(f"finite_n_risk(c={c}, lam={lam}, tau={tau}, n={n}): relative quadrature error "
                      f"estimate {worst:.1e} above the tolerance {epsrel:.0e}", RuntimeWarning, stacklevel=2)
    mean_res = m + J1 / Z
    mean_sq = m * m + tau / n + 2.0 * m * J1 / Z - J2 / Z
    return FiniteN(n=n, mean_residual=float(mean_res), mean_sq_residual=float(mean_sq),
                   risk=float(0.5 * mean_sq), var_q=float(mean_sq - mean_res ** 2))


def finite_n_expansion(c, lam, tau):
    r"""The O(1/N) bias of the stationary N-particle moments, with its exact constants.

    Derivation (Laplace's method on :func:`finite_n_risk`'s integral): with weight
    :math:`e^{-(N/\tau)G(u)}` around the saddle :math:`u_0 = im^*`, :math:`G_2 = G''(u_0)`,
    :math:`G_3 = G'''(u_0)`, for smooth h

    .. math:: E_u[h] = h(u_0) + \frac\tau N\Big[\frac{h''}{2G_2} - \frac{h'G_3}{2G_2^2}\Big] + O(N^{-2})

    (expand :math:`e^{-(N/\tau)G_3 x^3/6}` to first order against the Gaussian of variance
    :math:`\tau/(NG_2)`). Here, from :math:`\frac{\mathrm d^2}{\mathrm du^2}\log(\lambda^2+u^2)
    = \frac{2(\lambda^2 - u^2)}{(\lambda^2+u^2)^2}` and
    :math:`\frac{\mathrm d^3}{\mathrm du^3}\log(\lambda^2+u^2) = -\frac{4u(3\lambda^2-u^2)}{(\lambda^2+u^2)^3}`,

    .. math:: G_2 = D \equiv 1 + \frac{\tau(\lambda^2+m^2)}{(\lambda^2-m^2)^2} = h'(m^*),\qquad
              G_3 = -\frac{2i\tau m(3\lambda^2 + m^2)}{(\lambda^2 - m^2)^3} .

    With :math:`K = \tau m(3\lambda^2+m^2)/((\lambda^2-m^2)^3D^2)` (so :math:`iG_3/(2D^2) = K`):
    h = u gives :math:`E_N[c - q_N] = m + \tau K/N`; h = u² gives
    :math:`E_N[(c-q_N)^2] = m^2 + \frac\tau N\,[1 - 1/D + 2mK]`. Hence

    .. math::
        E_N[R] = R^* + \frac{\tau}{2N}\Big[1 - \frac1D + 2mK\Big],\qquad
        N\,\mathrm{Var}_N[q_N]\to\tau\Big(1 - \frac1D\Big) = \frac{\tau(D-1)}{D}.

    Check: independent particles of the Gibbs law would give
    :math:`N\mathrm{Var}[q] = \mathrm{Var}(aw) = S_{11}S_{22} + S_{12}^2 = \tau(D - 1)`; the mean-field
    feedback (q enters m) divides it by :math:`D = h'(m^*)`. The bias grows like
    :math:`(\lambda^2-m^2)^{-1}` as |m*| → λ.

    Returns
    -------
    FiniteNExpansion
        ``residual`` = τK, ``risk`` = (τ/2)(1 − 1/D + 2mK), ``var_q`` = τ(1 − 1/D).
    """
    g = stationary(c, lam, tau)
    m = g.m
    lam2m2 = (lam - abs(m)) * (lam + abs(m))
    D = 1.0 + tau * (lam * lam + m * m) / lam2m2 ** 2
    K = tau * m * (3 * lam * lam + m * m) / (lam2m2 ** 3 * D * D)
    return FiniteNExpansion(residual=float(tau * K), risk=float(0.5 * tau * (1.0 - 1.0 / D + 2.0 * m * K)),
                            var_q=float(tau * (1.0 - 1.0 / D)))
