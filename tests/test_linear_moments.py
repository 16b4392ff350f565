r"""Linear units: the flow closes on the moments of (a, w).

With sigma(z) = z the network is f(x) = beta . x, beta = alpha m_aw, m_aw = E_mu[a w], and for a
linear teacher y = beta* . x (x ~ N(0, I)), u = beta* - beta, the particle flow gives exactly

    d m_aw/dt = (1/alpha) (lambda_a M_ww + lambda_w M_aa) u
    d M_aa/dt = (2 lambda_a / alpha) m_aw . u
    d M_ww/dt = (lambda_w / alpha) (u m_aw^T + m_aw u^T)

with M_aa = E[a^2], M_ww = E[w w^T]; risk R = |u|^2 / 2. From the empirical moments of N
particles this is exact at any N; from the population moments of rho_0 it is the infinite-width
limit, which N particles approach with an error ~ N^{-1/2}.
"""
import numpy as np

from meanfield_solvers.particles import GaussianPopulation, TwoLayer, get_backend, get_integrator, population_risk_velocity

D, ALPHA, LA, LW = 3, 1.0, 1.0, 0.5
BE = get_backend("numpy")


def _setup():
    rng = np.random.default_rng(1)
    tw = rng.standard_normal((2, D))
    tc = np.array([0.6, -0.9])
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), tw, tc[None], "linear")
    return pop, tc @ tw


def _moments_rhs(beta_star):
    def rhs(y):
        maa, m, Mww = y[0], y[1 : 1 + D], y[1 + D :].reshape(D, D)
        u = beta_star - ALPHA * m
        out = np.empty_like(y)
        out[0] = 2 * LA / ALPHA * m @ u
        out[1 : 1 + D] = (LA * Mww @ u + LW * maa * u) / ALPHA
        out[1 + D :] = (LW / ALPHA * (np.outer(u, m) + np.outer(m, u))).ravel()
        return out

    return rhs


def _particle_risk_curve(theta, pop, T=3.0, n=150, every=10):
    model = TwoLayer("linear", D, alpha=ALPHA, lr_a=LA, lr_w=LW)
    v = lambda th: population_risk_velocity(model, BE, th, pop)[1]
    step = get_integrator("rk4")
    out = []
    for k in range(n):
        theta = step(v, theta, T / n)
        if (k + 1) % every == 0:
            out.append(population_risk_velocity(model, BE, theta, pop, velocity=False)[0])
    return np.array(out)


def _moment_risk_curve(y, beta_star, T=3.0, n=150, every=10):
    rhs = _moments_rhs(beta_star)
    step = get_integrator("rk4")
    out = []
    for k in range(n):
        y = step(rhs, y, T / n)
        if (k + 1) % every == 0:
            u = beta_star - ALPHA * y[1 : 1 + D]
            out.append(0.5 * u @ u)
    return np.array(out)


def _empirical_moments(theta):
    a, w = theta[:, 0], theta[:, 1:]
    return np.concatenate([[np.mean(a * a)], (a[:, None] * w).mean(0), (w.T @ w / len(a)).ravel()])


def test_particles_follow_moment_ode_exactly_from_empirical_moments():
    pop, beta_star = _setup()
    rng = np.random.default_rng(2)
    theta = rng.standard_normal((50, 1 + D))
    # Both are RK4 solutions of different (but equivalent) ODE systems: they agree up to the
    # O(dt^4) discretisation error, so refine dt until that is far below the tolerance.
    r_particles = _particle_risk_curve(theta, pop, n=1200, every=80)
    r_moments = _moment_risk_curve(_empirical_moments(theta), beta_star, n=1200, every=80)
    assert np.allclose(r_particles, r_moments, rtol=1e-10, atol=1e-14)


def test_particles_approach_the_infinite_width_moments_like_inverse_sqrt_n():
    pop, beta_star = _setup()
    pop_moments = np.concatenate([[1.0], np.zeros(D), (np.eye(D) / D).ravel()])  # a~N(0,1), w~N(0,I/D)
    r_inf = _moment_risk_curve(pop_moments, beta_star)
    Ns = [64, 256, 1024, 4096]
    errs = []
    for N in Ns:
        e = []
        for s in range(12):
            rng = np.random.default_rng(100 + s)
            theta = np.concatenate([rng.standard_normal((N, 1)), rng.standard_normal((N, D)) / np.sqrt(D)], 1)
            # the moment ODE is exact for the empirical measure, so use it (cheap) for the particles
            e.append(np.max(np.abs(_moment_risk_curve(_empirical_moments(theta), beta_star) - r_inf)))
        errs.append(np.sqrt(np.mean(np.square(e))))
    slope = np.polyfit(np.log(Ns), np.log(errs), 1)[0]
    assert errs[-1] < errs[0] / 4
    assert abs(slope + 0.5) < 0.15, (slope, errs)
