"""Gaussian units: the 1-D particle model of Rotskoff, Jelassi, Bruna & Vanden-Eijnden (2019).

Reference: G. Rotskoff, S. Jelassi, J. Bruna, E. Vanden-Eijnden, "Neuron birth-death
dynamics accelerates gradient descent and converges asymptotically", ICML 2019.

This file is the proof that a model written outside the package runs through the same
pipeline as the built-in networks, using the public API only (``meanfield.ParticleModel``,
``meanfield.Task``, ``meanfield.ModelKind``, ``meanfield.Field``, ``meanfield.register_model``).
It holds, in this order: the mathematics (side-effect-free vectorised numpy), the model as a
particle model, its data and task, the model kind that builds them from a config
(``model.kind = "gaussian_units"``; importing this file registers it, and ``model.plugin``
pointing here lets ``meanfield run`` / ``meanfield plot`` import it from a config), and a study:

    python experiments/custom_model.py [--quick] [--out DIR]

runs the mean-field limit (many particles) beside networks of several widths with
``meanfield.run``, draws the figures with ``meanfield plot``, and checks the closed-form initial
risk and the N^(-1/2) approach of the finite widths (``results.md``).

Model
-----
A unit (particle) is theta = (c, y): a charge c in R and a centre y in R.  Its feature is
the Gaussian bump

    phi(x; y) = N(x; y, s^2) = exp(-(x - y)^2 / (2 s^2)) / sqrt(2 pi s^2).

A weighted empirical measure mu = sum_i m_i delta_{theta_i} (uniform m_i = 1/n for a
width-n network) outputs

    f(x; mu) = sum_i m_i c_i phi(x; y_i),

and is fitted to a signed sum of Gaussian bumps f*(x) = sum_k b_k N(x; z_k, v_k) in
L^2(R):

    E(mu) = 1/2 int (f(x; mu) - f*(x))^2 dx
          = C_f - sum_i m_i c_i F(y_i) + 1/2 sum_ij m_i m_j c_i c_j K(y_i, y_j),

    C_f   = 1/2 int f*(x)^2 dx,
    F(y)  = int f*(x) phi(x; y) dx            (one-body potential),
    K(y, y') = int phi(x; y) phi(x; y') dx    (two-body interaction).

(Expand the square: the cross term gives -sum_i m_i c_i int f* phi(.; y_i), the square
of f gives the double sum; everything is a finite sum, so the integrals and sums swap.)

Every integral is of a product of two Gaussian densities, for which

    int N(x; a, u) N(x; b, w) dx = N(a; b, u + w).                         (G)

Proof of (G): N(x; b, w) = N(b; x, w) = N(b - x; 0, w), so the integral is the
convolution of the densities of X ~ N(a, u) and Z ~ N(0, w) evaluated at b, i.e. the
density at b of X + Z ~ N(a, u + w).  Consequently

    K(y, y') = N(y; y', 2 s^2),     K(0) := K(y, y) = 1 / (2 s sqrt(pi)),
    F(y)     = sum_k b_k N(y; z_k, s^2 + v_k),
    C_f      = 1/2 sum_kl b_k b_l N(z_k; z_l, v_k + v_l).

Mean-field conventions (this project's)
---------------------------------------
First variation: Psi(theta; mu) = dE/dmu(theta) = -c F(y) + c U(y), with the field of
the measure U(y) = sum_j m_j c_j K(y, y_j).  Velocity v(theta) = -Lambda grad_theta Psi,
Lambda = diag(lambda_c, lambda_y).  Because dE/dtheta_i = m_i grad Psi(theta_i), gradient
descent theta_i <- theta_i - eta n Lambda grad_{theta_i} E at uniform masses is exactly
an Euler step of size eta of the flow, at every width.

Initialisation rho_0: c and y independent; c = +-1 with probability 1/2 (or N(0, 1), as
in the authors' notebook), y ~ U[-2, 2] (authors' choice) or N(0, sigma_y^2).  Since
E[c] = 0 the mean-field output at t = 0 is zero, and E[E_n(0)] = C_f + K(0) / (2n)
(see `expected_initial_energy`).

Shapes: every function accepts a leading batch (seed) axis, written `...`; `theta` has
shape (..., n, 2) with columns [c, y]; `mass` is None (uniform 1/n) or broadcastable to
(..., n).  Masses need not be positive or sum to one: E is a polynomial in them, which
the finite-difference checks of the first variation use.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------
# Gaussian-units maths: closed forms (no meanfield imports; importable without side effects)
# ----------------------------------------------------------------------------------------

#: Largest number of pair (point, centre) elements held at once by the Gaussian sums; the
#: evaluation points are processed in chunks so that batch * chunk * n stays below it.
MAX_PAIR_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class UnitsParams:
    """Parameters of the Gaussian-units model (defaults follow the authors' notebook).

    Attributes
    ----------
    s : float
        Width (standard deviation) of each unit's bump phi(x; y) = N(x; y, s^2).
        Default sqrt(0.5): the authors use variance s^2 = 0.5.
    target_centres, target_sd, target_charges : tuple of float
        The target f*(x) = sum_k b_k N(x; z_k, v_k) with z_k = target_centres,
        v_k = target_sd**2, b_k = target_charges.  Default: the authors' three bumps at
        z = (-2, 0, 2) with variances (0.5, 1, 0.5) and charges (1, -2, 1) / 3 -- two
        positive side bumps, one negative centre bump, int f* = 0.
    init_y : {"uniform", "normal"}
        Law of the centres at initialisation: U[-y_scale, y_scale] (the authors' choice,
        y_scale = 2) or N(0, y_scale^2) (then y_scale is sigma_y).
    y_centre : float
        Centre of the initial law of the centres (0: the authors' symmetric start; a narrow law
        away from the target's bumps is the "bad initialisation" where transport stalls).
    y_scale : float
        Half-width of the uniform law, or sigma_y of the normal law.
    init_c : {"rademacher", "normal"}
        Law of the charges: +-1 with probability 1/2 (default), or N(0, 1) (the authors'
        notebook).  Both have E[c] = 0 and E[c^2] = 1.
    """

    s: float = math.sqrt(0.5)
    target_centres: tuple = (-2.0, 0.0, 2.0)
    target_sd: tuple = (math.sqrt(0.5), 1.0, math.sqrt(0.5))
    target_charges: tuple = (1.0 / 3.0, -2.0 / 3.0, 1.0 / 3.0)
    init_y: str = "uniform"
    y_scale: float = 2.0
    y_centre: float = 0.0
    init_c: str = "rademacher"

    def __post_init__(self):
        k = len(self.target_centres)
        if not (len(self.target_sd) == len(self.target_charges) == k):
            raise ValueError("target_centres, target_sd and target_charges must have one entry per bump")
        if self.s <= 0 or any(sd <= 0 for sd in self.target_sd) or self.y_scale <= 0:
            raise ValueError("widths s, target_sd and y_scale must be positive")
        if self.init_y not in ("uniform", "normal"):
            raise ValueError(f"init_y must be 'uniform' or 'normal', not {self.init_y!r}")
        if self.init_c not in ("rademacher", "normal"):
            raise ValueError(f"init_c must be 'rademacher' or 'normal', not {self.init_c!r}")

    @property
    def s2(self) -> float:
        """Unit variance s^2."""
        return self.s * self.s

    def bumps(self):
        """Target as arrays (z, v, b): centres, variances, charges, each of shape (K,)."""
        return (np.asarray(self.target_centres, float), np.asarray(self.target_sd, float) ** 2,
                np.asarray(self.target_charges, float))


DEFAULT = UnitsParams()


def gaussian_density(x, mean=0.0, var=1.0):
    """Normal density N(x; mean, var) = exp(-(x - mean)^2 / (2 var)) / sqrt(2 pi var).

    Parameters
    ----------
    x, mean, var : array_like
        Broadcast together; `var` is the variance (not the standard deviation).

    Returns
    -------
    ndarray
        The density, of the broadcast shape.
    """
    x = np.asarray(x, float)
    var = np.asarray(var, float)
    d = x - mean
    return np.exp(-0.5 * d * d / var) / np.sqrt(2.0 * np.pi * var)


def _gauss_sum(points, centres, weights, var, deriv=False):
    """S(x) = sum_j w_j N(x; centre_j, var_j) at each point, and optionally dS/dx.

    points (..., p); centres, weights (..., n) or (n,); var scalar or broadcastable to
    (..., n).  Returns S (..., p) [and S' (..., p)].  Work is chunked over the points so
    that no intermediate holds more than about MAX_PAIR_ELEMENTS pair values.
    """
    points = np.asarray(points, float)
    centres = np.asarray(centres, float)
    weights = np.asarray(weights, float)
    var = np.asarray(var, float)
    n = centres.shape[-1]
    batch = np.broadcast_shapes(points.shape[:-1], centres.shape[:-1], weights.shape[:-1],
                                var.shape[:-1] if var.ndim else ())
    p = points.shape[-1]
    out_shape = batch + (p,)
    S = np.empty(out_shape)
    dS = np.empty(out_shape) if deriv else None
    per_point = max(1, int(np.prod(batch, dtype=np.int64)) * n)
    step = max(1, MAX_PAIR_ELEMENTS // per_point)
    c = centres[..., None, :]
    w = weights[..., None, :]
    v = var[..., None, :] if var.ndim else var
    for lo in range(0, p, step):
        sl = slice(lo, min(p, lo + step))
        d = points[..., sl, None] - c                      # (..., chunk, n)
        g = w * np.exp(-0.5 * d * d / v) / np.sqrt(2.0 * np.pi * v)
        S[..., sl] = g.sum(axis=-1)
        if deriv:
            dS[..., sl] = (-(d / v) * g).sum(axis=-1)
    return (S, dS) if deriv else S


def target(x, params: UnitsParams = DEFAULT):
    """Target function f*(x) = sum_k b_k N(x; z_k, v_k).

    Parameters
    ----------
    x : array_like, shape (..., p)

    Returns
    -------
    ndarray, shape (..., p)
    """
    z, v, b = params.bumps()
    x = np.asarray(x, float)
    return _gauss_sum(np.atleast_1d(x), z, b, v).reshape(x.shape)


def C_f(params: UnitsParams = DEFAULT) -> float:
    """Constant part of the loss, C_f = 1/2 int f*(x)^2 dx = E of the zero network.

    Derivation: f*^2 = sum_kl b_k b_l N(x; z_k, v_k) N(x; z_l, v_l); integrate each term
    with (G):  C_f = 1/2 sum_kl b_k b_l N(z_k; z_l, v_k + v_l).
    """
    z, v, b = params.bumps()
    M = gaussian_density(z[:, None], z[None, :], v[:, None] + v[None, :])
    return float(0.5 * b @ M @ b)


def potential(y, params: UnitsParams = DEFAULT):
    """One-body potential F(y) = int f*(x) phi(x; y) dx = sum_k b_k N(y; z_k, s^2 + v_k).

    Derivation: f* phi(.; y) = sum_k b_k N(x; z_k, v_k) N(x; y, s^2); apply (G) to each
    term.  The unit at y overlaps the target by a Gaussian whose variance is the sum.

    Parameters
    ----------
    y : array_like, shape (..., n)

    Returns
    -------
    ndarray, shape (..., n)
    """
    y = np.asarray(y, float)
    z, v, b = params.bumps()
    return _gauss_sum(np.atleast_1d(y), z, b, params.s2 + v).reshape(y.shape)


def _potential_and_grad(y, params):
    """(F(y), F'(y)) in one pass over the target bumps."""
    y = np.asarray(y, float)
    z, v, b = params.bumps()
    F, dF = _gauss_sum(np.atleast_1d(y), z, b, params.s2 + v, deriv=True)
    return F.reshape(y.shape), dF.reshape(y.shape)


def potential_grad(y, params: UnitsParams = DEFAULT):
    """Derivative F'(y) = -sum_k b_k (y - z_k) / (s^2 + v_k) N(y; z_k, s^2 + v_k).

    (d/dy N(y; z, V) = -(y - z)/V N(y; z, V).)  Shape as `potential`.
    """
    return _potential_and_grad(y, params)[1]


def interaction(y, y2, params: UnitsParams = DEFAULT):
    """Two-body interaction K(y, y') = int phi(x; y) phi(x; y') dx = N(y; y', 2 s^2).

    Derivation: (G) with u = w = s^2.  On the diagonal K(0) = K(y, y) = 1/(2 s sqrt(pi)),
    the self-energy of one unit, ||phi||^2.  `y` and `y2` broadcast together.
    """
    return gaussian_density(y, y2, 2.0 * params.s2)


def interaction_grad(y, y2, params: UnitsParams = DEFAULT):
    """Derivative in the first argument, d/dy K(y, y') = -(y - y') / (2 s^2) K(y, y').

    It vanishes on the diagonal y = y' (K depends on y - y' only and is even), which is
    why the self-interaction of a particle exerts no force on it.
    """
    y = np.asarray(y, float)
    return -(y - y2) / (2.0 * params.s2) * interaction(y, y2, params)


def self_energy(params: UnitsParams = DEFAULT) -> float:
    """K(0) = K(y, y) = int phi(x; y)^2 dx = 1 / (2 s sqrt(pi))."""
    return 1.0 / (2.0 * params.s * math.sqrt(math.pi))


def _split(theta, mass):
    """theta (..., n, 2) -> c, y (..., n); mass -> weights m broadcast to (..., n)."""
    theta = np.asarray(theta, float)
    if theta.shape[-1] != 2:
        raise ValueError(f"theta must have shape (..., n, 2) with columns [c, y], got {theta.shape}")
    c, y = theta[..., 0], theta[..., 1]
    n = c.shape[-1]
    m = np.full(c.shape, 1.0 / n) if mass is None else np.broadcast_to(np.asarray(mass, float), c.shape)
    return c, y, m


def output(theta, x, mass=None, params: UnitsParams = DEFAULT):
    """Network / measure output f(x; mu) = sum_i m_i c_i phi(x; y_i).

    Parameters
    ----------
    theta : array_like, shape (..., n, 2)
        Particles, columns [c, y].
    x : array_like, shape (p,) or (..., p)
        Inputs; a 1-D grid is shared by every batch entry.
    mass : None or array_like broadcastable to (..., n)
        Particle masses m_i; None means uniform 1/n.

    Returns
    -------
    ndarray, shape (..., p)
    """
    c, y, m = _split(theta, mass)
    return _gauss_sum(np.atleast_1d(np.asarray(x, float)), y, m * c, params.s2)


def field(theta, at_y, mass=None, params: UnitsParams = DEFAULT, deriv=False):
    """Field of the measure, U(y) = sum_j m_j c_j K(y, y_j), at the points `at_y`.

    Parameters
    ----------
    theta : (..., n, 2);  at_y : (..., p);  mass : None or (..., n).

    Returns
    -------
    U : ndarray (..., p), and U'(y) = sum_j m_j c_j d_1K(y, y_j) if `deriv`.
    """
    c, y, m = _split(theta, mass)
    return _gauss_sum(np.asarray(at_y, float), y, m * c, 2.0 * params.s2, deriv=deriv)


def energy(theta, mass=None, params: UnitsParams = DEFAULT):
    """Closed-form loss E(mu) = 1/2 int (f(x; mu) - f*(x))^2 dx.

    E = C_f - sum_i m_i c_i F(y_i) + 1/2 sum_i m_i c_i U(y_i), U the field (`field`), so
    the double sum sum_ij m_i m_j c_i c_j K(y_i, y_j) costs one O(n^2) pass (chunked).

    Parameters
    ----------
    theta : (..., n, 2);  mass : None or broadcastable to (..., n).

    Returns
    -------
    ndarray of shape (...) (a float array of shape () without batch axes).
    """
    c, y, m = _split(theta, mass)
    U = field(theta, y, mass, params)
    return C_f(params) + np.sum(m * c * (0.5 * U - potential(y, params)), axis=-1)


def _probes(theta, at):
    return np.asarray(theta if at is None else at, float)


def first_variation(theta, mass=None, params: UnitsParams = DEFAULT, at=None):
    """First variation Psi(theta'; mu) = dE/dmu(theta') = c' (U(y') - F(y')).

    Derivation: E is quadratic in mu, E(mu + eps nu) = E(mu) + eps int Psi dnu + O(eps^2),
    where the linear term collects -c F(y) from the potential part and, from the double
    sum, twice (by symmetry of K) 1/2 c sum_j m_j c_j K(y, y_j) = c U(y).

    Parameters
    ----------
    theta : (..., n, 2)
        Particles of mu.
    mass : None or (..., n)
    at : None or (..., p, 2)
        Probe points theta' = (c', y'); None evaluates at the particles themselves.

    Returns
    -------
    ndarray, shape (..., n) (or (..., p) with `at`).
    """
    probe = _probes(theta, at)
    cp, yp = probe[..., 0], probe[..., 1]
    return cp * (field(theta, yp, mass, params) - potential(yp, params))


def grad_first_variation(theta, mass=None, params: UnitsParams = DEFAULT, at=None):
    """Gradient of Psi in theta' = (c', y'), mu held fixed.

    d Psi / d c' = U(y') - F(y'),   d Psi / d y' = c' (U'(y') - F'(y')),
    with U'(y') = sum_j m_j c_j d_1K(y', y_j).  Also equals d E / d theta_i / m_i at a
    particle theta' = theta_i (the particle's own term has d_1K(y_i, y_i) = 0 and the
    symmetric double sum supplies the factor 2 that cancels the 1/2).

    Returns
    -------
    ndarray, shape (..., n, 2) (or (..., p, 2) with `at`), columns [d/dc, d/dy].
    """
    probe = _probes(theta, at)
    cp, yp = probe[..., 0], probe[..., 1]
    U, dU = field(theta, yp, mass, params, deriv=True)
    F, dF = _potential_and_grad(yp, params)
    return np.stack([U - F, cp * (dU - dF)], axis=-1)


def velocity(theta, mass=None, lr=(1.0, 1.0), params: UnitsParams = DEFAULT, at=None):
    """Wasserstein velocity v(theta') = -Lambda grad Psi(theta'; mu), Lambda = diag(lr).

    With uniform masses, v(theta_i) = -Lambda n dE/dtheta_i, so the gradient-descent step
    theta_i += eta v(theta_i) advances mean-field time by eta at every width n.

    Returns
    -------
    ndarray, shape (..., n, 2) (or (..., p, 2) with `at`), columns [dc/dt, dy/dt].
    """
    return -np.asarray(lr, float) * grad_first_variation(theta, mass, params, at)


def dissipation(theta, mass=None, lr=(1.0, 1.0), params: UnitsParams = DEFAULT):
    """Energy dissipation rate D = sum_i m_i |Lambda^{1/2} grad Psi(theta_i)|^2 = -dE/dt.

    Along the flow dtheta_i/dt = v(theta_i):  dE/dt = sum_i dE/dtheta_i . v(theta_i)
    = sum_i m_i grad Psi_i . (-Lambda grad Psi_i) = -D <= 0.  Returns shape (...).
    """
    _, _, m = _split(theta, mass)
    g = grad_first_variation(theta, mass, params)
    return np.sum(m * np.sum(np.asarray(lr, float) * g * g, axis=-1), axis=-1)


def draw_initial(rng: np.random.Generator, n: int, params: UnitsParams = DEFAULT, size=()):
    """Draw iid units from rho_0: c and y independent (see `UnitsParams.init_c/init_y`).

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Number of units.
    size : tuple of int
        Leading batch shape (independent networks).

    Returns
    -------
    ndarray, shape size + (n, 2), columns [c, y].
    """
    shape = tuple(size) + (n,)
    if params.init_c == "rademacher":
        c = rng.choice(np.array([-1.0, 1.0]), size=shape)
    else:
        c = rng.standard_normal(shape)
    if params.init_y == "uniform":
        y = params.y_centre + rng.uniform(-params.y_scale, params.y_scale, size=shape)
    else:
        y = params.y_centre + params.y_scale * rng.standard_normal(shape)
    return np.stack([c, y], axis=-1)


def expected_initial_energy(n, params: UnitsParams = DEFAULT):
    """E[E_n(0)] = C_f + E[c^2] K(0) / (2n) for n iid units from rho_0 (E[c^2] = 1 here).

    Derivation: E_n = C_f - (1/n) sum_i c_i F(y_i) + (1/(2n^2)) sum_ij c_i c_j K(y_i, y_j).
    The linear term has mean E[c] E[F(y)] = 0 (c independent of y).  A cross term i != j
    has mean E[c_i] E[c_j K(y_i, y_j)] = 0 because c_i is independent of (y_i, c_j, y_j).
    The n diagonal terms are c_i^2 K(y_i, y_i) = c_i^2 K(0), mean E[c^2] K(0).  Hence
    E[E_n] = C_f + E[c^2] K(0) / (2n), whatever the law of y and the target: the excess over
    the mean-field value E(rho_0) = C_f is half the mean squared L^2 norm of the random
    initial output, E ||f_n||^2 / 2 = K(0) / (2n).
    """
    c2 = 1.0  # both init_c laws (+-1 and N(0, 1)) have unit second moment
    return C_f(params) + c2 * self_energy(params) / (2.0 * np.asarray(n, float))



# ----------------------------------------------------------------------------------------
# The model in the pipeline (public API of meanfield only)
# ----------------------------------------------------------------------------------------
import meanfield  # noqa: E402  (after the maths, which stays importable on its own)


@dataclass(frozen=True)
class UnitsTarget:
    """The data of the Gaussian-units model: its L^2 target, with closed-form expectations."""

    params: UnitsParams = DEFAULT


class GaussianUnits(meanfield.ParticleModel):
    """The Gaussian-units model as a particle model: columns [c, y], closed-form loss.

    Parameters
    ----------
    params : UnitsParams
    lr : (lambda_c, lambda_y), learning-rate multipliers (Lambda)
    """

    kind = "gaussian_units"
    output_group = "c"
    columns = ("c", "y")
    plot_columns = ("y", "c")  # centres on the x axis, charges on the y axis

    def __init__(self, params: UnitsParams = DEFAULT, lr=(1.0, 1.0)):
        self.params = params
        self.lr = tuple(float(v) for v in lr)

    @property
    def lr_multipliers(self):
        return np.asarray(self.lr, dtype=float)

    def output(self, backend, theta, x, mass=None):
        """f(x; mu) at points x of shape (Q, 1): shape (..., Q)."""
        return output(theta, np.asarray(x)[..., 0], mass, self.params)

    def supports(self, data) -> str:
        return "" if isinstance(data, UnitsTarget) else (
            f"the Gaussian-units model has a closed-form L2 loss only, not expectations over {type(data).__name__}")

    def risk_velocity(self, backend, theta, data, mass=None, velocity=True):
        why = self.supports(data)
        if why:
            raise meanfield.UnsupportedData(why)
        v = globals()["velocity"](theta, mass, self.lr, self.params) if velocity else None
        return energy(theta, mass, self.params), v

    def first_variation(self, backend, theta, data, mass=None):
        why = self.supports(data)
        if why:
            raise meanfield.UnsupportedData(why)
        return first_variation(theta, mass, self.params)

    def draw(self, rng, n):
        return draw_initial(rng, n, self.params)

    def draw_prior(self, rng, n):
        """Births' law: centres N(0, 3^2), of full support over the target's bumps whatever the
        initial law (a concentrated start is what births from a prior must escape); charges +-1."""
        theta = draw_initial(rng, n, self.params)
        theta[..., 1] = 3.0 * rng.standard_normal(n)
        return theta


class UnitsTask(meanfield.Task):
    """What the units are trained on: the target, as closed-form expectations (no samples).

    f is recorded on an even grid of x covering the target's bumps.
    """

    d = 1
    loss = "square"

    def __init__(self, params: UnitsParams = DEFAULT, x_max: float = 4.0):
        self.params = params
        self.population = UnitsTarget(params)
        self.x_max = x_max

    def sample(self, rng, n, batch=()):
        raise NotImplementedError("the Gaussian-units model is trained on its closed-form L2 loss and has no "
                                  "samples: use train.algorithm = 'population_gd' and limit.expectation = "
                                  "'analytic' (or 'auto')")

    def test_set(self, rng, n):
        return None

    def eval_points(self, rng, n):
        return np.linspace(-self.x_max, self.x_max, n)[:, None]

    def arrays(self):
        x = self.eval_points(None, 201)[:, 0]
        return {"target_x": x, "target_f": target(x, self.params)}

    def array_dims(self):
        return {"target_x": ("target_point",), "target_f": ("target_point",)}


F = meanfield.Field


class GaussianUnitsKind(meanfield.ModelKind):
    """``model.kind = "gaussian_units"`` and its own ``[model]`` keys."""

    name = "gaussian_units"
    doc = "1-D Gaussian units against a signed sum of Gaussians (Rotskoff et al. 2019)"
    fields = {
        "s": F("float", DEFAULT.s, "Width of each unit's Gaussian bump.", check=lambda v: v > 0, check_doc="> 0"),
        "init_y": F("str", DEFAULT.init_y, "Law of the centres at t = 0.", choices=("uniform", "normal")),
        "y_scale": F("float", DEFAULT.y_scale, "Half-width of the uniform law of the centres (or their std).",
                     check=lambda v: v > 0, check_doc="> 0"),
        "y_centre": F("float", DEFAULT.y_centre, "Centre of the initial law of the centres."),
        "init_c": F("str", DEFAULT.init_c, "Law of the charges at t = 0 (both have mean 0 and variance 1).",
                    choices=("rademacher", "normal")),
        "lr_c": F("float", 1.0, "Learning-rate multiplier of the charges.", check=lambda v: v >= 0, check_doc=">= 0"),
        "lr_y": F("float", 1.0, "Learning-rate multiplier of the centres.", check=lambda v: v >= 0, check_doc=">= 0"),
    }

    def check(self, c):
        p = []
        if c["limit"]["method"] not in ("particles", "none"):
            p.append(f"limit.method = {c['limit']['method']!r}: the Gaussian-units model's limit is its particle "
                     "flow; use limit.method = 'particles'")
        if c["limit"]["expectation"] == "mc":
            p.append("limit.expectation = 'mc': the Gaussian-units model has no samples, only its closed-form L2 "
                     "loss; use 'analytic' or 'auto'")
        if c["train"]["seeds"] > 0 and c["train"]["algorithm"] != "population_gd":
            p.append(f"train.algorithm = {c['train']['algorithm']!r} needs samples; the Gaussian-units model is "
                     "trained on its closed-form L2 loss: use 'population_gd'")
        return p

    def build(self, cfg):
        m = cfg.model
        params = UnitsParams(s=m.s, init_y=m.init_y, y_scale=m.y_scale, y_centre=m.y_centre, init_c=m.init_c)
        return GaussianUnits(params, (m.lr_c, m.lr_y)), UnitsTask(params)


KIND = meanfield.register_model(GaussianUnitsKind())


# ----------------------------------------------------------------------------------------
# The study: the limit beside finite widths, through meanfield.run and meanfield plot
# ----------------------------------------------------------------------------------------
def study_config(quick: bool = False) -> dict:
    """The config of the study (independent networks, so their initial risk has the closed form)."""
    return {
        "run": {"name": "gaussian_units", "seed": 0, "backend": "numpy"},
        "model": {"kind": "gaussian_units", "plugin": os.path.abspath(__file__)},
        "limit": {"particles": 1024 if quick else 2048, "expectation": "analytic", "integrator": "rk4", "dt": 0.05},
        "train": {"widths": [8, 32, 128] if quick else [8, 32, 128, 512], "seeds": 16 if quick else 64,
                  "algorithm": "population_gd", "lr": 0.05, "coupling": False},
        "time": {"t_max": 2.0 if quick else 5.0, "records": 20, "spacing": "log", "snapshots": 3},
        "eval": {"n_points": 64},
    }


def initial_risk_check(res):
    """Per width: the measured mean initial risk, its standard error and the closed form C_f + K(0)/(2n)."""
    rows = []
    for i, n in enumerate(res["widths"]):
        r0 = res["risk_nn"][i, :, 0]
        rows.append((int(n), float(r0.mean()), float(r0.std(ddof=1) / np.sqrt(r0.size)),
                     float(expected_initial_energy(int(n)))))
    return rows


def approach_exponent(res, k=-1):
    """Fitted slope of the RMS (over seeds and points) distance ||f_N - f_inf|| at record k against N."""
    widths = np.asarray(res["widths"], float)
    dev = res["f_nn"][:, :, k, :] - res["f_mf"][k][None, None, :]
    rms = np.sqrt(np.mean(dev ** 2, axis=(1, 2)))
    slope, intercept = np.polyfit(np.log(widths), np.log(rms), 1)
    return float(slope), rms


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller run (about a minute on 2 cores)")
    ap.add_argument("--out", default=os.path.join("runs", "custom_model"))
    args = ap.parse_args(argv)
    from meanfield.cli import main as cli
    from meanfield.viz import set_banner

    set_banner("QUICK MODE: a smoke test at reduced size, not a result" if args.quick else None)

    res = meanfield.run_to_dir(study_config(args.quick), args.out, overwrite=True, log=print)
    assert cli(["plot", args.out]) == 0
    lines = ["# Gaussian units (Rotskoff et al. 2019) through meanfield.run" + (" (quick mode: a smoke test)" if args.quick else ""),
             *(["", "> **Quick mode — a smoke test.** Reduced sizes; the numbers below check that the pipeline runs, "
                "they are not measurements (run without --quick for the README's)."] if args.quick else []),
             "", f"C_f = {C_f():.6g}, K(0) = {self_energy():.6g}", "",
             "| N | mean initial risk | s.e. | C_f + K(0)/(2N) |", "|---|---|---|---|"]
    lines += [f"| {n} | {m:.5f} | {se:.5f} | {cf:.5f} |" for n, m, se, cf in initial_risk_check(res)]
    slope, rms = approach_exponent(res)
    lines += ["", f"RMS ||f_N - f_inf|| at t = {res['t'][-1]:g}: " + ", ".join(f"{v:.3g}" for v in rms),
              f"fitted exponent: {slope:.3f} (theory -1/2)",
              f"limit risk: {res['risk_mf'][0]:.5f} at t = 0 -> {res['risk_mf'][-1]:.5f} at t = {res['t'][-1]:g}"]
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
