r"""Wasserstein–Fisher–Rao dynamics (``dynamics.reaction_rate`` κ): particle masses react to the first
variation beside the transport, on the limit and on weighted finite networks.

Claims:

* κ = 0 is today's run bit for bit (no masses are even created);
* the balanced reaction conserves the total mass to rounding (1e-12 relative) on both sides;
* the dissipation identity of balanced WFR, derived from dR/dt = Σᵢ ∂R/∂θᵢ·θ̇ᵢ + Σᵢ ∂R/∂mᵢ ṁᵢ with
  ∂(R/α²)/∂θᵢ = mᵢ∇Ψᵢ and ∂(R/α²)/∂mᵢ = Ψᵢ:
  d(R/α²)/dt = −Σᵢ mᵢ |∇Ψᵢ|²_Λ − κ Σᵢ mᵢ (Ψᵢ − Ψ̄)², checked by one small splitting step
  (it fails if the transport velocity were scaled by the masses);
* on the Gaussian-units model, WFR reaches a lower energy than pure Wasserstein transport at equal
  time (seed means with their standard errors).
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

import meanfield
from meanfield.config import ConfigError
from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.models import GaussianPopulation, TwoLayer
from meanfield_solvers.particles import get_backend
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import Drift, Reaction

from helpers import tiny

WFR = {"dynamics.reaction_rate": 2.0, "time.snapshots": 3, "train.algorithm": "population_gd"}


def test_zero_rate_is_todays_run_bit_for_bit():
    a = meanfield.run(tiny()).arrays
    b = meanfield.run(tiny(**{"dynamics.reaction": "unbalanced", "dynamics.splitting": "lie"})).arrays
    assert a.keys() == b.keys() and not any(k.startswith("masses") for k in b)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_balanced_reaction_conserves_mass_on_both_sides():
    res = meanfield.run(tiny(**WFR))
    m = res["masses_mf"]
    assert np.max(np.abs(m.sum(axis=-1) - 1.0)) < 1e-12 and np.ptp(m[-1]) > 1e-3  # masses moved
    assert np.max(np.abs(res["masses_nn_N16"].sum(axis=-1) - 1.0)) < 1e-12
    un = meanfield.run(tiny(**WFR, **{"dynamics.reaction": "unbalanced"}))
    assert np.max(np.abs(un["masses_mf"].sum(axis=-1) - 1.0)) > 1e-3  # the conic flow's mass is free


def test_dissipation_identity_of_balanced_wfr():
    rng = np.random.default_rng(0)
    d, N, kappa = 3, 12, 1.7
    model = TwoLayer("erf", d, alpha=1.3, lr_a=0.7, lr_w=1.2)
    tw = rng.standard_normal((2, d)) / np.sqrt(d)
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), tw, np.ones((1, 2)) / 2, "erf")
    be = get_backend("numpy")
    theta = rng.standard_normal((N, model.p))
    mass = rng.random(N)
    mass /= mass.sum()

    def rate(th, m):
        psi = model.first_variation(be, th, pop, mass=m)
        return -kappa * (psi - np.sum(m * psi) / np.sum(m))

    terms = [Drift(lambda th, m: model.risk_velocity(be, th, pop, mass=m)[1]), Reaction(rate, conserve_mass=True)]
    energy = lambda st: model.risk_velocity(be, st.theta, pop, mass=st.mass, velocity=False)[0] / model.alpha**2
    st = ParticleState(theta, mass=mass)
    psi = model.first_variation(be, theta, pop, mass=mass)
    v = model.risk_velocity(be, theta, pop, mass=mass)[1]
    Lam = model.lr_multipliers
    want = -np.sum(mass * np.sum(v * v / Lam, axis=-1)) - kappa * np.sum(mass * (psi - np.sum(mass * psi)) ** 2)
    rates = []
    for h in (1e-3, 5e-4):
        new = get_integrator("strang", transport="rk4").step(terms, st, h)
        rates.append((energy(new) - energy(st)) / h)
    # first-order difference quotients: their error halves with h; extrapolate
    got = 2 * rates[1] - rates[0]
    assert np.isclose(got, want, rtol=1e-5), (got, want, rates)


def _units():
    path = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "custom_model.py"))
    if "custom_model" not in sys.modules:
        spec = importlib.util.spec_from_file_location("custom_model", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["custom_model"] = mod
        spec.loader.exec_module(mod)
    return path


def test_wfr_reaches_a_lower_energy_than_wasserstein_on_gaussian_units():
    plugin = _units()

    def final(kappa):
        cfg = {"run": {"seed": 2, "backend": "numpy"}, "model": {"kind": "gaussian_units", "plugin": plugin},
               "limit": {"method": "none"},
               "train": {"widths": [32], "seeds": 16, "algorithm": "population_gd", "lr": 0.05, "coupling": False},
               "time": {"t_max": 3.0, "records": 4, "snapshots": 0}, "eval": {"n_points": 8},
               "dynamics": {"reaction_rate": kappa}}
        r = meanfield.run(cfg)["risk_nn"][0, :, -1]
        return r.mean(), r.std(ddof=1) / np.sqrt(r.size)

    (w, sw), (wfr, swfr) = final(0.0), final(5.0)
    assert wfr + 3 * np.hypot(sw, swfr) < w, (w, sw, wfr, swfr)


def test_bad_reaction_input_is_refused():
    with pytest.raises(ConfigError, match="dynamics.reaction_rate = -1.0 is out of range"):
        meanfield.Config.from_dict(tiny(**{"dynamics.reaction_rate": -1.0}))
    with pytest.raises(ConfigError, match="dynamics.reaction = 'conic' is not allowed"):
        meanfield.Config.from_dict(tiny(**{"dynamics.reaction": "conic"}))


def test_transport_rate_zero_is_pure_reweighting():
    """With the transport switched off (rate 0) and a reaction, positions never move, masses do."""
    res = meanfield.run(tiny(**WFR, **{"dynamics.transport_rate": 0.0}))
    assert np.array_equal(res["particles_mf"][0], res["particles_mf"][-1])
    assert np.ptp(res["masses_mf"][-1]) > 1e-3 and res["risk_mf"][-1] < res["risk_mf"][0]
    # and a rate of 2 is the unit-rate flow at twice the time: compare at matched times
    fast = meanfield.run(tiny(**{"dynamics.transport_rate": 2.0, "limit.integrator": "rk4", "time.t_max": 0.5,
                                 "limit.dt": 0.05, "time.spacing": "linear", "time.records": 6}))
    slow = meanfield.run(tiny(**{"limit.integrator": "rk4", "time.t_max": 1.0, "limit.dt": 0.1,
                                 "time.spacing": "linear", "time.records": 6}))
    assert np.allclose(fast["risk_mf"], slow["risk_mf"], rtol=1e-6)
