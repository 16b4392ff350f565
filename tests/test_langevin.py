r"""Mean-field Langevin dynamics (``[dynamics]`` temperature τ, weight decay λ) on both sides of a run.

Claims:

* τ = λ = 0 is today's run bit for bit, whichever integrator takes it (Euler–Maruyama without
  noise is Euler);
* the noise is reproducible (same seed, same bits) and per seed (a network's path does not depend
  on how many seeds run beside it);
* the virial identity of the N-particle Gibbs law. For population gradient descent the invariant
  law of N noisy neurons is exactly π_N ∝ exp(−βU), U = (N/α²)R(μ_N) + (λ/2)Σ|θᵢ|², since
  ∇_θᵢU = ∇Ψ(θᵢ; μ_N) + λθᵢ. Integrating ∂ᵢ(θᵢ π_N) = 0 over θ gives, at every N,
  E[(1/N) Σᵢ θᵢ·(∇Ψ(θᵢ) + λθᵢ)] = p τ, p the trained coordinates per neuron. Euler–Maruyama
  biases it by O(η): measured at η and η/2 and extrapolated (2V(η/2) − V(η)). Checked at two
  widths 8× apart, which catches a noise that scales with N;
* bad input is refused before anything runs, naming the key and the fix.
"""
import json
import os

import numpy as np
import pytest

import meanfield
from meanfield.config import ConfigError
from meanfield.tasks import make_task
from meanfield.twolayer.network import two_layer_model
from meanfield_solvers.particles import get_backend

from helpers import tiny

NOISY = {"dynamics.temperature": 0.02, "dynamics.weight_decay": 0.5, "limit.integrator": "euler_maruyama"}


def test_zero_temperature_and_decay_are_todays_run_bit_for_bit():
    a = meanfield.run(tiny(**{"limit.integrator": "euler"})).arrays
    b = meanfield.run(tiny(**{"limit.integrator": "euler_maruyama", "dynamics.temperature": 0.0})).arrays
    assert a.keys() == b.keys() and "energy_mf" not in b
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_noisy_runs_are_reproducible_and_per_seed():
    a = meanfield.run(tiny(**NOISY, **{"train.algorithm": "online_sgd"}))
    b = meanfield.run(tiny(**NOISY, **{"train.algorithm": "online_sgd"}))
    for k in a.keys():
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    quiet = meanfield.run(tiny(**{"train.algorithm": "online_sgd"}))
    assert not np.array_equal(a["risk_mf"], quiet["risk_mf"])  # the noise acts on the limit ...
    assert not np.array_equal(a["risk_nn"], quiet["risk_nn"])  # ... and on the networks
    three = meanfield.run(tiny(**NOISY, **{"train.algorithm": "online_sgd", "train.seeds": 3}))
    assert np.array_equal(three["risk_nn"][:, :2], a["risk_nn"])  # seeds 0, 1 unchanged by a third
    # the regularised energy is recorded on both sides: R/alpha^2 + (lambda/2) E|theta|^2 >= R
    assert np.all(a["energy_mf"] >= a["risk_mf"]) and a["energy_nn"].shape == a["risk_nn"].shape


def _virial(N, lr, tau=0.05, lam=1.0, seeds=32):
    cfg = meanfield.Config.from_dict(tiny(**{
        "task.d": 2, "limit.method": "none", "train.widths": [N], "train.seeds": seeds,
        "train.algorithm": "population_gd", "train.lr": lr, "dynamics.temperature": tau,
        "dynamics.weight_decay": lam, "time.t_max": 60.0, "time.records": 61, "time.spacing": "linear",
        "time.snapshots": 61, "run.seed": 4}))
    res = meanfield.run(cfg)
    model, pop, be = two_layer_model(cfg, 2), make_task(cfg).population, get_backend("numpy")
    keep = res["snap_t"] >= 20.0  # burn-in: 20 relaxation times of the decay
    vals = []
    for th in res[f"neurons_nn_N{N}"][keep]:  # (seeds, N, p) at each kept snapshot
        v = model.risk_velocity(be, th, pop)[1]  # -grad Psi (Lambda = I)
        vals.append(np.mean(np.sum(th * (-v + lam * th), axis=-1), axis=-1))
    per_seed = np.mean(vals, axis=0)  # time average per seed; seeds are independent
    return per_seed.mean(), per_seed.std(ddof=1) / np.sqrt(seeds), 3 * tau


@pytest.mark.parametrize("N", [4, 32])
def test_virial_identity_of_the_gibbs_law_at_every_width(N):
    v1, s1, want = _virial(N, 0.05)
    v2, s2, _ = _virial(N, 0.025)
    extrapolated, se = 2 * v2 - v1, np.hypot(2 * s2, s1)
    assert abs(extrapolated - want) < 4 * se + 0.01 * want, (N, v1, v2, extrapolated, se, want)
    # and the O(eta) bias of Euler-Maruyama is visible but small at these steps
    assert abs(v1 - want) < 0.06 * want


def test_bad_dynamics_input_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"dynamics.temperature = -0.1 is out of range"):
        meanfield.Config.from_dict(tiny(**{"dynamics.temperature": -0.1}))
    with pytest.raises(ConfigError, match="dynamics.weight_decay must be finite"):
        meanfield.Config.from_dict(tiny(**{"dynamics.weight_decay": float("inf")}))
    with pytest.raises(ConfigError, match="limit.integrator = 'rk4' cannot integrate: use limit.integrator = "
                                          "'euler_maruyama'"):
        meanfield.Config.from_dict(tiny(**{"dynamics.temperature": 0.1}))
    with pytest.raises(ConfigError, match="not for deep runs"):
        meanfield.Config.from_dict(tiny(**{"dynamics.weight_decay": 0.1, "model.depth": 2, "limit.method": "ntk",
                                           "train.algorithm": "gd"}))
    # from the command line: exit 2, nothing written
    from meanfield.cli import main
    from meanfield.config import to_toml

    p = tmp_path / "c.toml"
    p.write_text(to_toml(meanfield.Config.from_dict(tiny())) + "")
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out), "--set", "dynamics.temperature=0.2", "-q"]) == 2
    assert not out.exists()


def test_free_energy_is_recorded_where_the_entropy_is_reliable():
    noisy = {"dynamics.temperature": 0.05, "dynamics.weight_decay": 0.5, "limit.integrator": "euler_maruyama",
             "task.d": 2, "time.t_max": 3.0}
    res = meanfield.run(tiny(**noisy, **{"limit.particles": 2048}))
    H, F = res["entropy_mf"], res["free_energy_mf"]
    # at t = 0 the particles are exactly Gaussian: a ~ N(0, 1), w ~ N(0, I/2): H = 1/2 log det(2 pi e Sigma)
    exact0 = 0.5 * np.log((2 * np.pi * np.e) ** 3 * 1.0 * 0.5 * 0.5)
    assert abs(H[0] - exact0) < 0.08, (H[0], exact0)
    # F = E - tau H falls along the flow (up to the estimator's error, ~0.02 nats times tau)
    assert np.all(np.diff(F) < 0.05 * 0.03) and F[-1] < F[0] - 0.1
    assert np.allclose(F, res["energy_mf"] - 0.05 * H)
    # too few particles for the dimension: NaN, and the summary says why
    small = meanfield.run(tiny(**noisy))
    assert np.all(np.isnan(small["free_energy_mf"]))
    assert any("entropy and free energy of the limit not reported" in m for m in small.summary["messages"])
