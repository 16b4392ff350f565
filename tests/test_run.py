"""End-to-end runs: outputs, reproducibility, divergence, atomic writes, CLI."""
import json
import os

import numpy as np
import pytest

import meanfield
from meanfield import store
from meanfield.cli import main
from helpers import tiny


def test_result_keys_shapes_and_time_mapping():
    res = meanfield.run(tiny())
    a = res.arrays
    T = len(a["t"])
    assert a["risk_mf"].shape == (T,) and a["risk_nn"].shape == (2, 2, T)
    assert a["f_nn"].shape == (2, 2, T, 4) and a["f_mf"].shape == (T, 4)
    assert a["particles_mf"].shape == (2, 32, 4) and a["neurons_nn_N8"].shape == (2, 2, 8, 4)
    assert np.allclose(a["t"], a["t_nn"]) and a["t"][0] == 0 and np.isclose(a["t"][-1], 1.0)
    # coupling: each network's initial neurons are mean-field particles
    p0 = {tuple(r) for r in a["particles_mf"][0]}
    assert all(tuple(r) in p0 for r in a["neurons_nn_N16"][0, 1])
    idx = a["coupling_index_N16"]
    assert idx.shape == (2, 16) and np.array_equal(a["particles_mf"][0][idx[1]], a["neurons_nn_N16"][0, 1])
    assert res.status == "completed" and res.summary["coupling"] is True
    # risks decrease on this task
    assert a["risk_mf"][-1] < a["risk_mf"][0]


def test_same_config_bitwise_identical():
    a = meanfield.run(tiny(**{"train.algorithm": "online_sgd"})).arrays
    b = meanfield.run(tiny(**{"train.algorithm": "online_sgd"})).arrays
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_other_seed_differs():
    a = meanfield.run(tiny()).arrays
    b = meanfield.run(tiny(**{"run.seed": 2})).arrays
    assert not np.array_equal(a["risk_nn"], b["risk_nn"])


@pytest.mark.parametrize("alg", ["sgd", "gd", "population_gd"])
def test_algorithms_record_their_risks(alg):
    a = meanfield.run(tiny(**{"train.algorithm": alg, "train.n_train": 50})).arrays
    assert np.all(np.isfinite(a["risk_nn_pop"]))
    assert np.all(np.isfinite(a["risk_nn_test"]))
    assert np.all(np.isfinite(a["risk_nn_train"])) == (alg in ("sgd", "gd"))


def test_antithetic_starts_at_zero_output():
    a = meanfield.run(tiny(**{"model.antithetic": True})).arrays
    # zero up to the round-off of summing +-a_i sigma_i in BLAS order; without antithetic, O(1/sqrt N)
    assert np.max(np.abs(a["f_mf"][0])) < 1e-15 and np.max(np.abs(a["f_nn"][:, :, 0])) < 1e-15
    b = meanfield.run(tiny()).arrays
    assert np.max(np.abs(b["f_nn"][:, :, 0])) > 1e-2


def test_population_gd_at_width_n_equals_euler_particles():
    """population_gd on the coupled subsample is the Euler particle flow of those neurons."""
    cfg = tiny(**{"train.algorithm": "population_gd", "limit.integrator": "euler", "limit.particles": 8,
                  "train.widths": [8], "train.seeds": 1, "train.coupling": True})
    a = meanfield.run(cfg).arrays
    # the width-8 network is a permutation of the 8 particles, stepped by the same Euler map
    assert np.allclose(a["risk_nn"][0, 0], a["risk_mf"], rtol=1e-12)


def test_divergence_is_reported_with_step_and_last_finite_state(tmp_path, capsys):
    cfg = tiny(**{"train.lr": 0.5, "train.algorithm": "gd", "model.activation": "linear", "model.a_std": 30.0,
                  "time.t_max": 200.0, "limit.method": "none", "train.coupling": False})
    out = tmp_path / "div"
    p = tmp_path / "c.toml"
    from meanfield.config import from_dict, to_toml

    p.write_text(to_toml(from_dict(cfg)))
    assert main(["run", str(p), "--out", str(out), "-q"]) == 3
    summ = json.loads((out / "summary.json").read_text())
    assert summ["status"] == "diverged"
    dv = summ["diverged"][0]
    assert dv["step"] >= 1 and np.isclose(dv["time"], dv["step"] * 0.5)
    arr = store.load_arrays(out / "result.npz")
    snaps = arr["neurons_nn_N8"]
    # recorded risks are finite before the divergence and NaN after it
    r = arr["risk_nn"][0, 0]
    assert np.isfinite(r[0]) and np.isnan(r[-1])
    assert "diverged" in capsys.readouterr().err


def test_interrupted_write_leaves_no_result_and_keeps_old(tmp_path, monkeypatch):
    out = tmp_path / "r"
    meanfield.run_to_dir(tiny(), out)
    before = (out / "result.npz").read_bytes()
    res = meanfield.run(tiny(**{"run.seed": 5}))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        res.save(out)
    assert (out / "result.npz").read_bytes() == before
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        res.save(fresh)
    assert not (fresh / "result.npz").exists() and not (fresh / "summary.json").exists()


def test_finished_run_is_not_overwritten(tmp_path):
    out = tmp_path / "r"
    meanfield.run_to_dir(tiny(), out)
    from meanfield.run import RunDirError

    with pytest.raises(RunDirError, match="already holds"):
        meanfield.run_to_dir(tiny(), out)


def test_cli_run_and_plot(tmp_path):
    from meanfield.config import from_dict, to_toml

    p = tmp_path / "c.toml"
    p.write_text(to_toml(from_dict(tiny())))
    out = tmp_path / "o"
    assert main(["run", str(p), "--out", str(out), "--set", "train.seeds=3", "-q"]) == 0
    res = meanfield.load(out)
    assert res.arrays["risk_nn"].shape[1] == 3 and res.config.train.seeds == 3
    with np.load(out / "result.npz", allow_pickle=False) as z:
        assert "risk_mf" in z.files
    assert main(["plot", str(out)]) == 0
    for f in ("risk.png", "particles.png"):
        assert (out / f).stat().st_size > 10_000


def test_dataset_task_runs_mc(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.sign(X[:, 0])
    np.savez(tmp_path / "d.npz", X=X, y=y, X_test=X[:10], y_test=y[:10])
    res = meanfield.run(tiny(**{"task.kind": "dataset", "task.path": str(tmp_path / "d.npz"), "task.loss": "logistic",
                                "limit.expectation": "mc", "train.algorithm": "gd"}))
    a = res.arrays
    assert res.summary["expectation"] == "mc"
    assert np.all(np.isnan(a["risk_nn_pop"])) and np.all(np.isfinite(a["risk_nn_train"]))
    assert a["risk_mf"][-1] < a["risk_mf"][0]


def test_float32_within_documented_tolerance_of_float64():
    """README: float32 risk curves agree with float64 to ~1e-6 relative (asserted at 1e-4)."""
    a = meanfield.run(tiny()).arrays
    b = meanfield.run(tiny(**{"run.dtype": "float32"})).arrays
    for k in ("risk_mf", "risk_nn", "f_mf", "f_nn"):
        rel = np.max(np.abs(a[k] - b[k])) / np.max(np.abs(a[k]))
        assert 0 < rel < 1e-4, (k, rel)


@pytest.mark.parametrize("over", [{"model.activation": "tanh"}, {"task.teacher_activation": "relu"}])
def test_runs_without_closed_forms_use_mc_and_test_risk(over):
    """tanh units or a teacher of another activation: no population risk, MC limit, test-sample risk."""
    res = meanfield.run(tiny(**{"limit.expectation": "auto", **over}))
    a = res.arrays
    assert res.summary["expectation"] == "mc" and res.status == "completed"
    assert np.all(np.isnan(a["risk_nn_pop"])) and np.array_equal(a["risk_nn"], a["risk_nn_test"])
    assert np.all(np.isfinite(a["risk_mf"])) and a["risk_mf"][-1] < a["risk_mf"][0]


def test_commensurate_steps_record_at_common_times():
    """dt = 0.05, lr = 0.1: recording snaps to the 0.1 grid so both sides are compared at equal t."""
    a = meanfield.run(tiny(**{"limit.dt": 0.05, "train.lr": 0.1, "time.records": 8})).arrays
    assert np.allclose(a["t"], a["t_nn"], rtol=0, atol=1e-12)
    assert np.allclose(a["t"] / 0.1, np.round(a["t"] / 0.1))


def test_seed_streams_do_not_depend_on_the_number_of_seeds():
    a = meanfield.run(tiny(**{"train.seeds": 2})).arrays
    b = meanfield.run(tiny(**{"train.seeds": 3})).arrays
    assert np.array_equal(a["risk_nn"], b["risk_nn"][:, :2])


def test_interrupted_overwrite_keeps_the_old_run_whole(tmp_path, monkeypatch):
    # issue 17, defect 9: the old summary.json used to be deleted first, so an interrupted
    # overwrite lost the old run (and could pair the new config.toml with the old result.npz)
    out = tmp_path / "r"
    meanfield.run_to_dir(tiny(), out)
    before = {f: (out / f).read_bytes() for f in store.RUN_FILES}
    res = meanfield.run(tiny(**{"run.seed": 7}))
    real = store.atomic_write_bytes

    def dying(path, data):
        if str(path).endswith("summary.json"):
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", dying)
    with pytest.raises(KeyboardInterrupt):
        res.save(out)
    assert {f: (out / f).read_bytes() for f in store.RUN_FILES} == before
    assert sorted(os.listdir(tmp_path)) == ["r"]  # the staging directory is gone
    assert store.verify_run(out) == []


def test_limit_divergence_keeps_the_last_finite_state():
    cfg = tiny(**{"model.activation": "linear", "model.a_std": 30.0, "limit.integrator": "euler", "limit.dt": 0.5,
                  "time.t_max": 200.0, "train.seeds": 0, "time.snapshots": 3})
    res = meanfield.run(cfg)
    a = res.arrays
    dv = res.summary["diverged"][0]
    assert res.status == "diverged" and dv["side"] == "limit" and dv["step"] >= 1
    assert np.all(np.isfinite(a["particles_mf_final"]))
    assert np.isfinite(a["risk_mf"][0]) and np.isnan(a["risk_mf"][-1])
    assert np.all(np.isnan(a["particles_mf"][-1]))  # snapshot times after the divergence were never reached
