"""Global order of Euler, Heun and RK4 on a smooth particle flow (fitted slopes)."""
import numpy as np
import pytest

from meanfield_solvers.particles import (ORDER, GaussianPopulation, TwoLayer, get_backend, get_integrator,
                               population_risk_velocity)


def _flow():
    rng = np.random.default_rng(0)
    d, N = 3, 12
    tw = rng.standard_normal((2, d)) / np.sqrt(d)
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), tw, np.ones((1, 2)) / 2, "erf")
    model = TwoLayer("erf", d)
    be = get_backend("numpy")
    theta0 = rng.standard_normal((N, 1 + d))
    return (lambda th: population_risk_velocity(model, be, th, pop)[1]), theta0


def _solve(v, y0, name, n, T):
    step = get_integrator(name)
    y = y0
    for _ in range(n):
        y = step(v, y, T / n)
    return y


@pytest.mark.parametrize("name", ["euler", "heun", "rk4"])
def test_global_order(name):
    v, y0 = _flow()
    T = 2.0
    ref = _solve(v, y0, "rk4", 1024, T)
    ns = {"euler": [16, 32, 64, 128], "heun": [8, 16, 32, 64], "rk4": [4, 8, 16, 32]}[name]
    errs = [np.max(np.abs(_solve(v, y0, name, n, T) - ref)) for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - ORDER[name]) < 0.25, (name, slope, errs)
