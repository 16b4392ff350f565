"""No wrong number reported as completed (issue 17, defects 1, 3, 7, 8, 12): the record criteria of
meanfield.health (README, Reliability), each checked on the run that used to slip through."""
import os

import numpy as np
import pytest

import meanfield
from meanfield import config as C
from meanfield.health import Health
from meanfield.march import march
from meanfield_solvers.state import ParticleState

from helpers import tiny


# ------------------------------------------------------------------ the criteria on the time loop
class Obs:
    """An observer with declared available risks (what the wings' observers declare)."""

    def __init__(self, available, scale=1.0):
        self.available, self.scale = available, scale

    def __call__(self, theta):
        return {"risk_test": np.array(np.nan), "risk_train": np.array(0.5 * float(np.sum(theta ** 2)))}


def test_an_available_risk_nan_from_step_0_fails_the_side():
    """Defect 3: a risk NaN at step 0 used to be taken as 'not available'; an observer that says it
    computes risk_test must deliver it, or the side fails at step 0."""
    res = march(lambda th, k: 0.5 * th, np.ones(3), [0, 2, 4], 0.1, Obs(("risk_test", "risk_train")))
    assert res.status == "failed" and res.diverged_step == 0
    assert "risk_test is not finite at step 0" in res.message
    ok = march(lambda th, k: 0.5 * th, np.ones(3), [0, 2, 4], 0.1, Obs(("risk_train",)))
    assert ok.status == "completed" and ok.records[-1]["risk_train"] == pytest.approx(1.5 * 0.25 ** 4)


def test_a_finite_loss_that_grows_past_the_factor_is_a_divergence():
    """Defect 8: theta <- 1.5 theta stays finite for 600 steps (loss ~ 1e211) and used to be
    'completed'. Loss(k) = 1.5 * 2.25^k, reference max(1.5, scale 1) = 1.5: the first record above
    1e6 * 1.5 is at 2.25^k > 1e6, k >= 18 (records every 5 steps: step 20)."""
    res = march(lambda th, k: 1.5 * th, np.ones(3), list(range(0, 601, 5)), 0.1, Obs(("risk_train",)))
    assert res.status == "diverged" and res.diverged_step == 20 and res.kept_step == 15
    assert np.array_equal(res.theta, 1.5 ** 15 * np.ones(3))  # the last accepted record's state
    assert "divergence_factor" in res.message and "step 15" in res.message
    lax = march(lambda th, k: 1.5 * th, np.ones(3), list(range(0, 601, 5)), 0.1, Obs(("risk_train",)),
                health=Health(("risk_train",), factor=np.inf, scale=1.0))
    assert lax.status == "completed"


def test_a_negative_risk_is_never_reported():
    res = march(lambda th, k: th - 1.0, np.ones(2), [0, 1, 2], 1.0,
                lambda th: {"risk": np.array(float(th[0]))})
    assert res.status == "failed" and res.diverged_step == 2 and "negative" in res.message
    assert res.records[2] is None and res.kept_step == 1


# ------------------------------------------------------------------ whole runs
def test_lazy_relu_closed_form_below_its_rounding_error_is_not_reported():
    """Defect 1: relu, analytic, alpha = 1e6, antithetic init (f = 0 at t = 0, so the true risk is
    E y^2 / 2): the closed form subtracts terms of order alpha^2 and came out at 0.28 (true 0.165),
    then negative. Its rounding bound (4e3) exceeds it: the run fails, exit 3, no risk reported."""
    r = meanfield.run(tiny(**{"model.activation": "relu", "model.alpha": 1e6, "model.antithetic": True,
                              "train.algorithm": "population_gd", "run.backend": "numpy"}))
    assert r.summary["status"] == "failed"
    assert all(d["status"] == "failed" and "rounding error" in d["message"] for d in r.summary["diverged"])
    for k in ("risk_mf", "risk_nn"):
        assert not np.any(np.asarray(r[k]) < 0) and np.all(np.isnan(r[k])), k


def test_the_rounding_bound_covers_the_measured_error_and_keeps_ordinary_runs():
    """At alpha = 1 the same closed form is exact to 1e-13 and its bound (1.7e-8) leaves every
    ordinary risk reported; at alpha = 1e2..1e6 the bound exceeds the measured error."""
    from meanfield import seeding
    from meanfield.twolayer import wing

    for alpha in (1.0, 1e2, 1e4, 1e6):
        cfg = C.from_dict(tiny(**{"model.activation": "relu", "model.alpha": alpha, "model.antithetic": True,
                                  "run.backend": "numpy"}))
        st = wing.setup(cfg, lambda s: None)
        th = st.model.draw(seeding.stream(cfg.run.seed, "init"), 32)
        pop = st.task.population
        risk = st.model.risk_velocity(st.backend, th, pop, velocity=False)[0]
        err = abs(risk - 0.5 * pop.target_second_moment(st.backend))  # f = 0 exactly (antithetic)
        bound = st.model.risk_rounding(st.backend, th, pop)
        assert err <= bound, (alpha, err, bound)
        if alpha == 1.0:
            assert bound < 1e-7
    assert meanfield.run(tiny(**{"model.activation": "relu", "run.backend": "numpy"})).summary["status"] == "completed"


def _gd_blowup(**over):
    # linear two-layer networks, full-batch GD at lr = 1.6: the loss grows super-exponentially and the
    # population risk overflows at step 8, so 7 steps end on a finite loss of 1.8e159
    return tiny(**{"train.algorithm": "gd", "train.lr": 1.6, "train.n_train": 20, "limit.method": "none",
                   "run.backend": "numpy", "time.t_max": 7 * 1.6, "model.activation": "linear",
                   "train.widths": [8], "time.records": 12, "time.spacing": "linear", **over})


def test_gd_whose_loss_explodes_is_diverged_with_its_step_and_last_accepted_state():
    """Defects 8 and 12: the run used to be 'completed' with a final loss of 1.8e159; it is now diverged
    at the first record above train.divergence_factor x max(initial risk, target scale), and the
    networks keep the state of the last accepted record (it used to be an all-NaN snapshot)."""
    r = meanfield.run(_gd_blowup())
    assert r.summary["status"] == "diverged"
    (d,) = r.summary["diverged"]
    assert d["status"] == "diverged" and d["step"] is not None and d["kept_step"] < d["step"]
    assert np.isclose(d["time"], d["step"] * 1.6)
    rec = r["risk_nn"][0, 0]
    assert np.all(np.isfinite(rec[: d["kept_step"] + 1])) and np.all(np.isnan(rec[d["kept_step"] + 1:]))
    assert np.max(rec[np.isfinite(rec)]) <= 1e6 * max(rec[0], 1.0)
    kept = r["neurons_nn_final_N8"]
    assert kept.shape == (2, 8, 4) and np.all(np.isfinite(kept))
    # the kept state is the state at kept_step: a run stopped there ends on the same neurons
    short = meanfield.run(_gd_blowup(**{"time.t_max": d["kept_step"] * 1.6}))
    assert short.summary["status"] == "completed"
    assert np.array_equal(short["neurons_nn_final_N8"], kept)
    # with the criterion relaxed the same run reaches a finite, absurd loss: what used to be 'completed'
    lax = meanfield.run(_gd_blowup(**{"train.divergence_factor": 1e300}))
    assert lax.summary["status"] == "completed" and lax["risk_nn"][0, 0, -1] > 1e100


def test_divergence_factor_is_validated():
    with pytest.raises(C.ConfigError, match="train.divergence_factor"):
        C.from_dict(tiny(**{"train.divergence_factor": 0.5}))


# ------------------------------------------------------------------ datasets refused up front
def _dataset(tmp_path, **arrays):
    p = os.path.join(str(tmp_path), "ds.npz")
    np.savez(p, **arrays)
    cfg = tiny(**{"task.kind": "dataset", "task.path": p, "limit.expectation": "mc", "run.backend": "numpy"})
    del cfg["task"]["d"], cfg["task"]["teacher_width"]
    return cfg, p


@pytest.mark.parametrize("case, want", [
    ("empty_test", "X_test in {p} has 0 rows"),
    ("no_columns", "X in {p} has 0 columns"),
    ("complex_X", "X in {p} is complex"),
    ("complex_y", "y in {p} is complex"),
])
def test_unusable_datasets_are_refused_with_the_file_and_the_problem(tmp_path, case, want):
    """Defects 3 and 7: an empty test split (every risk NaN, exit 0), zero columns, complex values
    (imaginary part dropped) were accepted."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    arrays = {"empty_test": dict(X=X, y=y, X_test=np.zeros((0, 3)), y_test=np.zeros(0)),
              "no_columns": dict(X=np.zeros((20, 0)), y=y),
              "complex_X": dict(X=X + 1j * X, y=y),
              "complex_y": dict(X=X, y=y + 0j)}[case]
    cfg, p = _dataset(tmp_path, **arrays)
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(cfg)
    assert want.format(p=p) in str(e.value)


def test_cli_exits_2_on_a_complex_dataset_and_writes_nothing(tmp_path):
    from meanfield.cli import main

    X = np.random.default_rng(1).standard_normal((10, 2))
    _, p = _dataset(tmp_path, X=X * (1 + 1j), y=X[:, 0])
    conf = tmp_path / "c.toml"
    conf.write_text(f'[task]\nkind = "dataset"\npath = "{p}"\n[limit]\nexpectation = "mc"\n')
    out = tmp_path / "run"
    assert main(["run", str(conf), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()


def test_a_dataset_without_test_split_reports_finite_risks(tmp_path):
    """mc expectations on a dataset: no population risk; the primary risk is the first available one
    (the test risk, here over the training set), never the NaN population risk."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    cfg, _ = _dataset(tmp_path, X=X, y=np.tanh(X[:, 0]))
    r = meanfield.run(cfg)
    assert r.summary["status"] == "completed"
    assert np.all(np.isfinite(r["risk_mf"])) and np.array_equal(r["risk_mf"], r["risk_mf_test"])
    assert np.all(np.isfinite(r["risk_nn"]))


# ------------------------------------------------------------------ scan identity
def test_a_scan_run_id_follows_the_dataset_contents(tmp_path):
    """Defect 6: the id hashed the dataset's path only, so a rewritten file reused old results."""
    from meanfield.scan.identity import run_id

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    cfg, p = _dataset(tmp_path, X=X, y=X[:, 0])
    first = run_id(C.from_dict(cfg))
    assert run_id(C.from_dict(cfg)) == first
    np.savez(p, X=X, y=X[:, 1])  # same path, same size, other targets
    assert run_id(C.from_dict(cfg)) != first
    np.savez(p, X=X, y=X[:, 0])  # the old contents again: the old id
    assert run_id(C.from_dict(cfg)) == first


# ------------------------------------------------------------------ coupling
def test_a_width_equal_to_the_particle_pool_is_not_coupled():
    """Defect 4: with coupling = 'auto' a width equal to limit.particles was 'coupled': each seed took
    the whole pool, so every seed was the same network (seed variance 1e-34)."""
    r = meanfield.run(tiny(**{"limit.particles": 16, "train.widths": [8, 16], "train.algorithm": "population_gd",
                              "run.backend": "numpy"}))
    assert r.summary["coupling"] is False and "coupling_index_N16" not in r
    assert any("not coupled" in m for m in r.summary["messages"])
    fin = r["risk_nn"][1, :, -1]
    assert np.var(fin) > 1e-8 * np.mean(fin) ** 2  # two different networks
    assert np.array_equal(r["coupling_factor"], [1.0, 1.0])
    with pytest.raises(C.ConfigError, match="train.coupling = true needs every width < limit.particles"):
        C.from_dict(tiny(**{"limit.particles": 16, "train.widths": [16], "train.coupling": True}))
    # one seed coupled to the whole pool is the limit's own particles (tests/test_run.py uses it)
    C.from_dict(tiny(**{"limit.particles": 16, "train.widths": [16], "train.coupling": True, "train.seeds": 1}))


def test_coupled_runs_state_their_variance_factor(tmp_path):
    """Every fluctuation table and figure of a coupled run states 1 - N/M: the result array, the summary,
    the scan table's column and the risk figure's legend."""
    from meanfield.scan.collect import _per_width
    from meanfield.twolayer.plot import plot_risk

    r = meanfield.run(tiny(**{"train.algorithm": "population_gd", "run.backend": "numpy"}))  # M = 32, N = 8, 16
    assert r.summary["coupling"] is True
    assert np.allclose(r["coupling_factor"], [1 - 8 / 32, 1 - 16 / 32])
    assert r.summary["coupling_factor"] == {"8": 0.75, "16": 0.5}
    assert any("(1 - N/M)" in m for m in r.summary["messages"])
    rows = _per_width(r.arrays, r.summary)
    assert [row["coupling_factor"] for row in rows] == [0.75, 0.5]
    ax = plot_risk(r)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "N = 8 (mean of 2; coupled: seed var x 0.75)" in labels


# ------------------------------------------------------------------ deep limits
def _deep(**over):
    base = {"model.depth": 2, "model.activation": "tanh", "limit.method": "ntk", "train.algorithm": "gd",
            "train.n_train": 5, "eval.n_points": 2, "limit.dt": 0.1, "train.lr": 0.1, "train.seeds": 0,
            "time.t_max": 1.0}
    base.update(over)
    return tiny(**base)


def test_an_unstable_ntk_kernel_flow_is_diverged_with_its_step():
    """Defect 2: at dt lambda_max(K/P) > 2 the Euler kernel flow blows up; it was recorded 'completed',
    status 'exact', with a final risk of 1e245. Now the stability ratio is reported and the run stops
    at the first step whose loss leaves the criterion's range; nothing after it is reported."""
    lam = meanfield.run(_deep()).summary["limit"]["dt_lambda_max"] / 0.1
    dt = 3.0 / lam  # dt lambda_max = 3: the top mode is multiplied by -2 per step
    r = meanfield.run(_deep(**{"limit.dt": dt, "time.t_max": 400 * dt, "time.records": 401,
                               "time.spacing": "linear"}))
    assert r.summary["status"] == "diverged" and r.summary["limit"]["status"] == "unstable"
    (d,) = r.summary["diverged"]
    assert d["step"] is not None and np.isclose(d["time"], d["step"] * dt) and d["kept_step"] == d["step"] - 1
    assert "dt x lambda_max(K/P) = 3 > 2" in d["message"]
    risk = r["risk_mf"]
    assert np.all(np.isfinite(risk[: d["step"]])) and np.all(np.isnan(risk[d["step"]:]))
    assert np.nanmax(risk) <= 1e6 * max(risk[0], 0.5 * np.mean(r["y_train"] ** 2))
    stable = meanfield.run(_deep(**{"limit.dt": 1.9 / lam, "time.t_max": 100 * 1.9 / lam}))
    assert stable.summary["status"] == "completed" and stable.summary["limit"]["dt_lambda_max"] < 2


def test_a_diverged_dmft_linear_limit_keeps_its_last_solved_stage():
    """Defect 12: a diverged deep-linear solve had no step or time and kept the diverged iterate's
    values. With one step per continuation stage, the stages up to T = 4 are solved and the stage
    T = 5 diverges: steps 0..4 are reported (the exact solution there), step 5 on is NaN."""
    over = {"limit.method": "dmft_linear", "model.activation": "linear", "model.gamma0": 0.5, "limit.dt": 2.0,
            "time.t_max": 80.0, "time.records": 41, "time.spacing": "linear", "limit.dmft_stages": 40}
    r = meanfield.run(_deep(**over))
    assert r.summary["status"] == "diverged" and r.summary["limit"]["status"] == "diverged"
    (d,) = r.summary["diverged"]
    assert (d["step"], d["time"], d["kept_step"]) == (5, 10.0, 4)
    risk = r["risk_mf"]
    assert np.all(np.isfinite(risk[:5])) and np.all(np.isnan(risk[5:]))
    # the kept steps are the converged solution: the same as a run that stops at t = 8
    short = meanfield.run(_deep(**{**over, "time.t_max": 8.0, "time.records": 5, "limit.dmft_stages": 4}))
    assert short.summary["status"] == "completed"
    assert np.allclose(short["risk_mf"], risk[:5], rtol=1e-9, atol=1e-14)


# ------------------------------------------------------------------ tanh kernels
def _quad_pair(a, q1, q2, c):
    """E[a(u)a(v)] by nested adaptive quadrature (scipy.integrate.quad), independent of the rule tested."""
    from scipy import integrate

    s1 = np.sqrt(q1)
    b = c / s1
    g = np.sqrt(max(q2 - b * b, 0.0))
    phi = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    kw = dict(epsabs=1e-14, epsrel=1e-13, limit=200)

    def inner(z1):
        if g == 0:
            return a(b * z1)
        return integrate.quad(lambda z2: a(b * z1 + g * z2) * phi(z2), -np.inf, np.inf, **kw)[0]

    return integrate.quad(lambda z1: a(s1 * z1) * inner(z1) * phi(z1), -np.inf, np.inf, **kw)[0]


@pytest.mark.parametrize("q", [0.5, 2.0, 5.0, 10.0])
def test_tanh_nngp_and_derivative_kernels_match_adaptive_quadrature(q):
    """Defect 5: a fixed 80-point Gauss-Hermite rule was wrong by 4e-6 at |x|^2/D = 2 and 8e-4 at 5
    (sech^2); the rule is now chosen from the variances and checked at h against h/2."""
    from meanfield_solvers.dmft.ntk import init_kernels

    rng = np.random.default_rng(0)
    D = 4
    X = rng.standard_normal((3, D))
    X *= np.sqrt(q * D) / np.linalg.norm(X, axis=1, keepdims=True)  # |x|^2 / D = q for every row
    k = init_kernels(X, 1, "tanh")
    Q = X @ X.T / D
    sech2 = lambda u: 1.0 / np.cosh(u) ** 2  # noqa: E731
    with np.errstate(over="ignore"):
        for i, j in [(0, 0), (0, 1), (1, 2)]:
            assert abs(k.Phi[1][i, j] - _quad_pair(np.tanh, Q[i, i], Q[j, j], Q[i, j])) < 1e-10
            assert abs(k.Phidot[1][i, j] - _quad_pair(sech2, Q[i, i], Q[j, j], Q[i, j])) < 1e-10


def test_a_kernel_quadrature_that_cannot_converge_is_refused():
    """A kink without closed form converges only like h^2: the step check refuses it instead of
    returning a number."""
    import meanfield_solvers.activations as A
    from meanfield_solvers.dmft.ntk import QuadratureNotConverged, init_kernels

    A.register_activation("kink_test", lambda z: np.abs(z), np.sign, lambda z: 0 * z, odd=False, smooth=False)
    try:
        with pytest.raises(QuadratureNotConverged, match="did not converge"):
            init_kernels(np.eye(2), 1, "kink_test")
    finally:
        A.unregister_activation("kink_test")


def test_a_risk_at_its_precision_floor_is_masked_not_a_failure():
    """Criterion 2 after the first record: a closed-form risk that falls inside its rounding bound
    has reached the precision floor: NaN from there on (elementwise, per seed), noted once, the side
    still completed; below minus the bound contradicts the bound and fails; at the first record it
    fails (the closed form cannot resolve the run at all)."""
    from meanfield.health import Health, floor_notes
    from meanfield.march import march

    h = Health(("risk_pop",))
    assert h.check({"risk_pop": np.array([0.5, 0.4]), "risk_pop_rounding": np.array([1e-8, 1e-8])}, 0, 0.0) is None
    obs = {"risk_pop": np.array([2e-9, 0.1]), "risk_pop_rounding": np.array([1e-8, 1e-8])}
    assert h.check(obs, 5, 0.5) is None
    assert np.isnan(obs["risk_pop"][0]) and obs["risk_pop"][1] == 0.1
    assert h.floored["risk_pop"][0] == 5 and "step 5" in floor_notes(h, "limit")[0]
    bad = h.check({"risk_pop": np.array([-3e-8, 0.1]), "risk_pop_rounding": np.array([1e-8, 1e-8])}, 6, 0.6)
    assert bad is not None and bad.status == "failed"
    first = Health(("risk_pop",)).check({"risk_pop": 1e-9, "risk_pop_rounding": 1e-8}, 0, 0.0)
    assert first is not None and first.status == "failed"

    # through the time loop: a risk decaying like e^{-t} below a bound of 1e-6
    def observe(state):
        r = float(np.exp(-state.theta[0, 0]))
        return {"risk_pop": r, "risk_pop_rounding": 1e-6}

    res = march(lambda st, k: st.replace(theta=st.theta + 1.0), ParticleState(np.zeros((1, 1))),
                list(range(21)), 1.0, observe, health=Health(("risk_pop",)))
    r = np.array([rec["risk_pop"] for rec in res.records])
    assert res.status == "completed" and np.all(np.isfinite(r[:14])) and np.all(np.isnan(r[14:]))  # e^-14 < 1e-6
    assert len(res.notes) == 1 and "step 14" in res.notes[0]
