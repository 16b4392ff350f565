r"""Vector–Jacobian products of the two-layer network's velocity, output and risk (positions AND masses).

These are the derivatives the discrete adjoint (:mod:`meanfield_solvers.integrators.adjoint`) needs
to differentiate a width-N run with respect to its initial measure (``docs/fluctuations.md``).
Conventions as in :mod:`meanfield_solvers.models.two_layer`: a particle is ``[a, w, (b)]``,
:math:`f(x) = \alpha\sum_j \omega_j a_j\sigma(z_j)`, :math:`z_j = w_j\cdot x + b_j`, residual
:math:`r = -\partial_f\ell`, and the velocity

.. math::
    v^a_j = k_a\langle r\,\sigma_j\rangle,\quad v^w_j = k_w a_j\langle r\,\sigma'_j x\rangle,\quad
    v^b_j = k_b a_j\langle r\,\sigma'_j\rangle,\qquad k_g = \lambda_g/\alpha .

Every function takes one system, ``theta`` (n, p), masses ``mass`` (n,) (None = 1/n), and cotangents
with a leading *channel* axis C (several outputs differentiated in one sweep): ``cot`` (C, n, p).
They return ``(theta_bar (C, n, p), mass_bar (C, n))``.

**Samples (a fixed Monte Carlo sample or a dataset, any registered loss with a curvature here).**
With :math:`\langle\cdot\rangle = \frac1P\sum_\mu` and cotangents :math:`(\bar a_j, \bar w_j, \bar b_j)`:

.. math::
    \zeta_{j\mu} &= k_w\bar w_j\cdot x_\mu + k_b\bar b_j, \qquad
    \rho_\mu = \tfrac1P\textstyle\sum_j\big[k_a\bar a_j\sigma_{j\mu} + a_j\sigma'_{j\mu}\zeta_{j\mu}\big],
    \qquad \bar f_\mu = -\ell''_\mu\,\rho_\mu,\\
    \bar Z_{j\mu} &= \tfrac{r_\mu}P\big[k_a\bar a_j\sigma'_{j\mu} + a_j\sigma''_{j\mu}\zeta_{j\mu}\big]
                   + \alpha\omega_j a_j\sigma'_{j\mu}\bar f_\mu,\\
    g^a_j &= \langle r\sigma'_j\zeta_j\rangle + \alpha\omega_j\textstyle\sum_\mu\bar f_\mu\sigma_{j\mu},\quad
    g^w_j = \textstyle\sum_\mu\bar Z_{j\mu}x_\mu,\quad g^b_j = \sum_\mu\bar Z_{j\mu},\quad
    g^\omega_j = \alpha a_j\textstyle\sum_\mu\bar f_\mu\sigma_{j\mu}.

**Population (Gaussian mixture, square loss, no bias; closed-form kernels).** Per mixture component
(weight π, input variance s²) with :math:`K_{ij} = \kappa(q_i, q_j, c_{ij})`,
:math:`q_i = s^2|w_i|^2`, :math:`c_{ij} = s^2 w_i\cdot w_j`, the velocity is
:math:`v^a_i = \lambda_a[T_i/\alpha - \sum_j e_j K_{ij}]`,
:math:`v^w_i = \lambda_w a_i[\nabla T_i/\alpha - \sum_j e_j\nabla_1K_{ij}]`, :math:`e_j = \omega_j a_j`,
:math:`\nabla_1K_{ij} = 2s^2\kappa_1 w_i + s^2\kappa_3 w_j`. With :math:`A_i = \lambda_a\bar a_i`,
:math:`u_i = \lambda_w a_i\bar w_i`, the pair part of :math:`S = \sum_i \bar a_i v^a_i + \bar w_i\cdot v^w_i`
is :math:`-\pi\sum_{ij}e_j h_{ij}`, :math:`h_{ij} = A_i\kappa + 2s^2\kappa_1(u_i\cdot w_i) +
s^2\kappa_3(u_i\cdot w_j)`, differentiated through both slots (:math:`q_i, q_j, c_{ij}` and the explicit
:math:`w`): this needs the kernel's second partials :math:`\kappa_{11}, \kappa_{12}, \kappa_{13},
\kappa_{33}` (registered in :data:`KERNEL_HESSIANS`; ``docs/fluctuations.md`` lists them for erf). The
teacher part is the same expression with the teacher neurons in the second slot (weights
:math:`+c_m/\alpha`, no gradient there). Cost O(C n² d) time, O(block·n) memory.

Outputs: :math:`\partial f(x)/\partial a_j = \alpha\omega_j\sigma_j`, :math:`\partial f/\partial w_j =
\alpha\omega_j a_j\sigma'_j x`, :math:`\partial f/\partial\omega_j = \alpha a_j\sigma_j`. Risk:
:math:`\partial R/\partial a_j = -\alpha\omega_j\langle r\sigma_j\rangle`, :math:`\partial R/\partial w_j =
-\alpha\omega_j a_j\langle r\sigma_j' x\rangle`, :math:`\partial R/\partial\omega_j = -\alpha a_j\langle
r\sigma_j\rangle` (both expectation modes, through the model's own expectations).
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation

__all__ = ["KERNEL_HESSIANS", "LOSS_CURVATURES", "register_kernel_hessian", "mc_velocity_vjp",
           "population_velocity_vjp", "output_vjp", "risk_vjp", "vjp_obstacle"]

#: the elements of a (C, n, P) channel block kept below this many float64 numbers
BLOCK = 1 << 22


# ------------------------------------------------------------------ curvatures of the losses
def _square_curv(y, f):
    return np.ones_like(f)


def _logistic_curv(y, f):
    s = 0.5 * (1.0 + np.tanh(0.5 * y * f))
    return s * (1.0 - s) * y * y


#: :math:`\ell''(y, f) = \partial^2_f\ell` by loss name (the residual's derivative is its negative)
LOSS_CURVATURES = {"square": _square_curv, "logistic": _logistic_curv}


# ------------------------------------------------------------------ second partials of the kernels
def _linear_hess(q1, q2, c):
    z = np.zeros_like(c)
    return dict(k=c.copy(), k1=z, k3=np.ones_like(c), k11=z, k12=z, k13=z, k33=z)


def _erf_hess(q1, q2, c):
    r""":math:`\kappa = \frac2\pi\arcsin(c/\sqrt{p_1p_2})`, :math:`p = 1 + q`, :math:`D = p_1p_2 - c^2`."""
    p1, p2 = 1.0 + q1, 1.0 + q2
    D = np.maximum(p1 * p2 - c * c, np.finfo(float).tiny)
    Dm12 = 1.0 / np.sqrt(D)
    Dm32 = Dm12 / D
    k = (2.0 / np.pi) * np.arcsin(np.clip(c / np.sqrt(p1 * p2), -1.0, 1.0))
    k3 = (2.0 / np.pi) * Dm12
    k1 = -(c / (np.pi * p1)) * Dm12
    k33 = (2.0 / np.pi) * c * Dm32
    k13 = -(p2 / np.pi) * Dm32
    k11 = (c / np.pi) * (Dm12 / (p1 * p1) + 0.5 * p2 * Dm32 / p1)
    k12 = (c / (2.0 * np.pi)) * Dm32
    return dict(k=k, k1=k1, k3=k3, k11=k11, k12=k12, k13=k13, k33=k33)


#: activation -> ``fn(q1, q2, c) -> dict(k, k1, k3, k11, k12, k13, k33)`` (kernel, first and second partials)
KERNEL_HESSIANS = {"linear": _linear_hess, "erf": _erf_hess}


def register_kernel_hessian(name, fn):
    """Make the population-mode VJP available for activation ``name`` (see :data:`KERNEL_HESSIANS`)."""
    KERNEL_HESSIANS[name] = fn


def vjp_obstacle(model, data) -> str:
    """Why the two-layer VJPs cannot run over ``data`` ('' when they can)."""
    from .base import Samples
    from .two_layer import GaussianPopulation

    if isinstance(data, Samples):
        if data.loss not in LOSS_CURVATURES:
            return f"no curvature l'' registered for loss {data.loss!r} (have {sorted(LOSS_CURVATURES)})"
        if not get_activation(model.activation).smooth:
            return (f"activation {model.activation!r} is not smooth: the Monte Carlo flow is only piecewise "
                    "differentiable (use a smooth activation, or the analytic expectation)")
        return ""
    if isinstance(data, GaussianPopulation):
        why = model.supports(data)
        if why:
            return why
        if model.activation not in KERNEL_HESSIANS:
            return (f"the population VJP needs the second partials of the {model.activation!r} kernel; they are "
                    f"registered for {sorted(KERNEL_HESSIANS)} (use limit.expectation = 'mc')")
        if not get_activation(model.activation).odd and np.any(np.asarray(data.offsets) != 0):
            return "constant target offsets with a non-odd activation are not covered by the population VJP"
        return ""
    return f"no VJP over {type(data).__name__}"


def _masses(theta, mass):
    return np.full(theta.shape[-2], 1.0 / theta.shape[-2]) if mass is None else np.asarray(mass, dtype=float)


def _split(model, theta):
    d = model.d
    return theta[:, 0], theta[:, 1:1 + d], (theta[:, 1 + d] if model.bias else np.zeros(theta.shape[0]))


def _chunks(C, per):
    step = max(1, int(BLOCK // max(per, 1)))
    return [slice(i, min(C, i + step)) for i in range(0, C, step)]


# ------------------------------------------------------------------ Samples
def mc_velocity_vjp(model, theta, x, y, loss, cot, mass=None):
    """VJP of the Monte Carlo velocity (module docstring); ``cot`` (C, n, p) -> ((C, n, p), (C, n))."""
    act = get_activation(model.activation)
    om = _masses(theta, mass)
    a, w, b = _split(model, theta)
    P = x.shape[0]
    al = model.alpha
    z = w @ x.T + b[:, None]  # (n, P)
    s, s1, s2 = act.fn(z), act.d1(z), act.d2(z)
    f = al * ((om * a) @ s)
    _, r = _loss_residual(loss, y, f)
    curv = LOSS_CURVATURES[loss](y, f)
    ka, kw, kb = model.velocity_scales()
    d = model.d
    C = cot.shape[0]
    out_t = np.zeros_like(cot)
    out_m = np.zeros((C, theta.shape[0]))
    for sl in _chunks(C, theta.shape[0] * P * 3):
        ab, wb = cot[sl, :, 0], cot[sl, :, 1:1 + d]
        zeta = kw * np.einsum("cnd,pd->cnp", wb, x)
        if model.bias:
            zeta += kb * cot[sl, :, 1 + d][..., None]
        rho = (ka * np.einsum("cn,np->cp", ab, s) + np.einsum("n,np,cnp->cp", a, s1, zeta)) / P
        fbar = -curv * rho  # (c, P)
        ga = np.einsum("p,np,cnp->cn", r, s1, zeta) / P + al * om * np.einsum("cp,np->cn", fbar, s)
        Zb = (r / P) * (ka * ab[..., None] * s1 + a[:, None] * s2 * zeta) + (al * om * a)[:, None] * s1 * fbar[:, None, :]
        out_t[sl, :, 0] = ga
        out_t[sl, :, 1:1 + d] = Zb @ x
        if model.bias:
            out_t[sl, :, 1 + d] = Zb.sum(-1)
        out_m[sl] = al * a * np.einsum("cp,np->cn", fbar, s)
    return out_t, out_m


def _loss_residual(loss, y, f):
    from ..losses import loss_and_residual

    return loss_and_residual(loss, y, f)


# ------------------------------------------------------------------ population
def _pair_pass(hess, s2, A, u, wI, wJ, eJ, same):
    r"""Gradient pieces of :math:`\sum_{i\in I, j} e_j h_{ij}` (module docstring) for a block of first-slot
    particles ``wI`` (bi, d) against second-slot vectors ``wJ`` (m, d) with weights ``eJ`` (m,).

    Returns ``(gw_first (C, bi, d), colsum_h (C, m), gw_second (C, m, d) or None)``.
    ``same``: the second slot is the particle set itself (its gradients are returned)."""
    qI = s2 * np.einsum("id,id->i", wI, wI)
    qJ = s2 * np.einsum("jd,jd->j", wJ, wJ)
    c = s2 * (wI @ wJ.T)
    Q1, Q2 = np.broadcast_arrays(qI[:, None], qJ[None, :])
    H = hess(Q1, Q2, c)
    uw = np.einsum("cid,id->ci", u, wI)  # u_i . w_i
    uW = s2 * np.einsum("cid,jd->cij", u, wJ)  # s^2 u_i . w_j
    h = A[..., None] * H["k"] + 2.0 * s2 * uw[..., None] * H["k1"] + uW * H["k3"]
    dqi = A[..., None] * H["k1"] + 2.0 * s2 * uw[..., None] * H["k11"] + uW * H["k13"]
    dc = A[..., None] * H["k3"] + 2.0 * s2 * uw[..., None] * H["k13"] + uW * H["k33"]
    edqi = np.einsum("cij,j->ci", dqi, eJ)
    gw_first = (2.0 * s2 * edqi[..., None] * wI + s2 * np.einsum("cij,j,jd->cid", dc, eJ, wJ)
                + 2.0 * s2 * np.einsum("ij,j->i", H["k1"], eJ)[None, :, None] * u)
    colsum = h.sum(axis=1)
    gw_second = None
    if same:
        Hs = hess(Q2.T, Q1.T, c.T)  # swapped slots: kappa_2 = kappa_1(q2, q1, c), kappa_23 = kappa_13(q2, q1, c)
        k2, k23 = Hs["k1"].T, Hs["k13"].T
        dqj = A[..., None] * k2 + 2.0 * s2 * uw[..., None] * H["k12"] + uW * k23
        gw_second = (2.0 * s2 * dqj.sum(axis=1)[..., None] * wJ + s2 * np.einsum("cij,id->cjd", dc, wI)
                     + s2 * np.einsum("ij,cid->cjd", H["k3"], u))
    return gw_first, colsum, gw_second


def population_velocity_vjp(model, backend, theta, pop, cot, mass=None, block=256):
    """VJP of the population velocity (module docstring); ``cot`` (C, n, p) -> ((C, n, p), (C, n))."""
    from .two_layer import population_expectations as _population_expectations

    hess = KERNEL_HESSIANS[model.activation]
    om = _masses(theta, mass)
    a, w, _ = _split(model, theta)
    n, d = w.shape
    C = cot.shape[0]
    la, lw = model.lr_a, model.lr_w
    ab, wb = cot[:, :, 0], cot[:, :, 1:1 + d]
    A = la * ab
    u = lw * a[None, :, None] * wb
    e = om * a
    block = max(8, min(block, BLOCK // max(1, 12 * C * n)))  # the (C, block, n) temporaries stay bounded
    gw = np.zeros((C, n, d))
    colsum = np.zeros((C, n))
    for pi, s, c_t in zip(pop.weights, pop.scales, pop.teacher_c):
        s2 = float(s * s)
        for i0 in range(0, n, block):
            I = slice(i0, min(n, i0 + block))
            g1, cs, g2 = _pair_pass(hess, s2, A[:, I], u[:, I], w[I], w, e, True)
            gw[:, I] += -pi * g1
            gw += -pi * e[None, :, None] * g2
            colsum += -pi * cs
            if pop.teacher_w.shape[0]:
                g1t, _, _ = _pair_pass(hess, s2, A[:, I], u[:, I], w[I], pop.teacher_w,
                                       np.asarray(c_t, float) / model.alpha, False)
                gw[:, I] += pi * g1t
    # through e_k = omega_k a_k (the pair's second slot) and through u_k = lambda_w a_k wbar_k
    _, _, gwe = _population_expectations(model, backend, theta, pop, om, True)
    out_t = np.zeros_like(cot)
    out_t[:, :, 0] = om * colsum + (lw / model.alpha) * np.einsum("cnd,nd->cn", wb, gwe)
    out_t[:, :, 1:1 + d] = gw
    return out_t, a * colsum


# ------------------------------------------------------------------ outputs and risks
def output_vjp(model, theta, x, cot, mass=None):
    r"""VJP of :math:`f(x_q)` (q = 1..Q): ``cot`` (C, Q) -> ((C, n, p), (C, n))."""
    act = get_activation(model.activation)
    om = _masses(theta, mass)
    a, w, b = _split(model, theta)
    z = w @ x.T + b[:, None]  # (n, Q)
    s, s1 = act.fn(z), act.d1(z)
    al = model.alpha
    cs = cot @ s.T  # (C, n): sum_q cot_q sigma_jq
    t = np.zeros((cot.shape[0],) + theta.shape)
    t[..., 0] = al * om * cs
    zb = (al * om * a)[:, None] * np.einsum("cq,nq->cnq", cot, s1)
    t[..., 1:1 + model.d] = zb @ x
    if model.bias:
        t[..., 1 + model.d] = zb.sum(-1)
    return t, al * a * cs


def risk_vjp(model, backend, theta, data, mass=None):
    """Gradient of the risk over ``data`` in positions and masses: ((n, p), (n,))."""
    from .base import Samples
    from .two_layer import mc_expectations as _mc_expectations, population_expectations as _population_expectations

    om = _masses(theta, mass)
    a = theta[:, 0]
    if isinstance(data, Samples):
        _, ga, gw, gb = _mc_expectations(model, backend, theta, data.x, data.y, data.loss, om)
    else:
        _, ga, gw = _population_expectations(model, backend, theta, data, om, True)
        gb = None
    al = model.alpha
    t = np.zeros_like(theta)
    t[:, 0] = -al * om * ga
    t[:, 1:1 + model.d] = -al * (om * a)[:, None] * gw
    if model.bias and gb is not None:
        t[:, 1 + model.d] = -al * om * a * gb
    return t, -al * a * ga
