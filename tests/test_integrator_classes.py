"""The integrator classes of meanfield_solvers.integrators on deterministic flows: orders, bitwise agreement
with the array-level functions every backend uses, the registry, and the errors that name a fix."""
import functools

import numpy as np
import pytest
from test_integrators import _flow

from meanfield_solvers.integrators import INTEGRATORS, UnsupportedTermError, get_integrator
from meanfield_solvers.particles import integrators as old
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import Drift, Noise, Reaction

T = 2.0


@functools.lru_cache(maxsize=1)
def _reference():
    """RK4 with 1024 steps on the particle flow: the same reference as test_integrators."""
    v, y0 = _flow()
    y = y0
    for _ in range(1024):
        y = old.rk4(v, y, T / 1024)
    return y


def _solve(integ, drift, theta0, n, dt):
    state = ParticleState(theta0)
    for _ in range(n):
        state = integ.step(drift, state, dt)
    assert state.step == n
    return state.theta


@pytest.mark.parametrize("name", ["euler", "heun", "rk4", "euler_maruyama"])
def test_class_global_order_is_the_declared_order(name):
    """Fitted slope of log max-error against log n on the smooth particle flow (noise-free for
    Euler–Maruyama, whose deterministic order is 1) within 0.25 of ``Integrator.order``."""
    v, y0 = _flow()
    drift = Drift(lambda th, m: v(th))
    integ = get_integrator(name)
    ns = {1: [16, 32, 64, 128], 2: [8, 16, 32, 64], 4: [4, 8, 16, 32]}[integ.order]
    errs = [np.max(np.abs(_solve(integ, drift, y0, n, T / n) - _reference())) for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - integ.order) < 0.25, (name, slope, errs)


@pytest.mark.parametrize("name", ["euler", "heun", "rk4"])
def test_class_step_is_bitwise_the_array_function(name):
    """Five steps of the class on a ParticleState give the bits of the function the backends,
    the limit and the CUDA cross-checks use (no numerics changed by the new seam)."""
    v, y0 = _flow()
    fn = old.get_integrator(name)
    y = y0
    for _ in range(5):
        y = fn(v, y, 0.05)
    got = _solve(get_integrator(name), Drift(lambda th, m: v(th)), y0, 5, 0.05)
    assert got.dtype == y.dtype and got.tobytes() == y.tobytes()


def test_euler_maruyama_without_noise_is_bitwise_euler():
    """beta^-1 = 0 (no Noise term) reproduces the existing Euler step bit for bit."""
    v, y0 = _flow()
    drift = Drift(lambda th, m: v(th))
    em = _solve(get_integrator("euler_maruyama"), drift, y0, 5, 0.05)
    assert em.tobytes() == _solve(get_integrator("euler"), drift, y0, 5, 0.05).tobytes()


def test_old_module_keeps_its_interface():
    """meanfield_solvers.particles.integrators still maps the three names to the (moved) functions."""
    assert old.INTEGRATORS == {"euler": old.euler, "heun": old.heun, "rk4": old.rk4}
    assert old.ORDER == {name: INTEGRATORS[name].order for name in ("euler", "heun", "rk4")}
    with pytest.raises(ValueError, match="unknown integrator 'euler_maruyama'"):
        old.get_integrator("euler_maruyama")  # the array API stays drift-only


def test_drifts_add_and_masses_reach_the_velocity():
    """Two Drift terms integrate as their sum; the state's masses are what the velocity sees."""
    rng = np.random.default_rng(1)
    theta, mass = rng.standard_normal((2, 5, 3)), rng.random((2, 5))
    seen = []

    def v1(th, m):
        seen.append(m)
        return -th

    v2 = lambda th, m: np.tanh(th) * m[..., None]  # noqa: E731
    state = ParticleState(theta, mass=mass)
    two = get_integrator("euler").step([Drift(v1), Drift(v2)], state, 0.1)
    expected = theta + 0.1 * (-theta + np.tanh(theta) * mass[..., None])
    assert np.array_equal(two.theta, expected) and seen[0] is mass
    assert two.mass is mass and state.theta is theta  # masses carried, input state untouched


def test_unknown_integrator_names_it_and_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        get_integrator("leapfrog")
    msg = str(err.value)
    assert "'leapfrog'" in msg and all(name in msg for name in INTEGRATORS)


@pytest.mark.parametrize("name, term, fix", [
    ("rk4", Noise(1.0), "euler_maruyama"),
    ("heun", Noise(lambda th: th), "euler_maruyama"),
    ("euler_maruyama", Reaction(lambda th, m: -m), "get_integrator('strang', transport='euler_maruyama')"),
    ("euler", Reaction(lambda th, m: -m), "splitting"),
])
def test_refused_term_names_the_term_and_the_fix(name, term, fix):
    state = ParticleState(np.zeros((4, 2)), rng=np.random.default_rng(0))
    with pytest.raises(UnsupportedTermError) as err:
        get_integrator(name).step([Drift(lambda th, m: -th), term], state, 0.1)
    msg = str(err.value)
    assert type(term).__name__ in msg and fix in msg and name in msg, msg


def test_splitting_passes_on_what_its_transport_refuses():
    """strang(transport=rk4) with noise: the message names the splitting, the transport and the fix."""
    state = ParticleState(np.zeros((4, 2)), rng=np.random.default_rng(0))
    terms = [Drift(lambda th, m: -th), Noise(0.1), Reaction(lambda th, m: -m)]
    with pytest.raises(UnsupportedTermError, match=r"strang\(transport=rk4\): rk4 cannot integrate "
                                                   r"a Noise term.*use euler_maruyama"):
        get_integrator("strang", transport="rk4").step(terms, state, 0.1)
    with pytest.raises(UnsupportedTermError, match="needs a reaction term"):
        get_integrator("strang", transport="rk4").step(terms[0], state, 0.1)
    with pytest.raises(TypeError, match="needs a transport integrator"):
        get_integrator("lie")
    with pytest.raises(ValueError, match="unknown integrator 'rk5'"):
        get_integrator("lie", transport="rk5")


def test_malformed_terms_and_states_are_refused_where_they_are_built():
    with pytest.raises(ValueError, match="give one Noise term"):
        get_integrator("euler_maruyama").check([Drift(lambda th, m: -th), Noise(1.0), Noise(2.0)])
    with pytest.raises(UnsupportedTermError, match="needs a drift term"):
        get_integrator("euler").check([])
    with pytest.raises(ValueError, match="mass must have shape"):
        ParticleState(np.zeros((3, 4, 2)), mass=np.ones((3, 2)))
    with pytest.raises(ValueError, match="one per index of theta's first"):
        ParticleState(np.zeros((3, 4, 2)), rng=(np.random.default_rng(0),) * 2)
    with pytest.raises(ValueError, match="needs a random stream"):
        get_integrator("euler_maruyama").step([Drift(lambda th, m: -th), Noise(1.0)],
                                              ParticleState(np.zeros((4, 2))), 0.1)
