"""Deep runs through the product: config validation, orchestration, result keys, plots."""
import os

import numpy as np
import pytest

from meanfield import config as C
from meanfield.cli import main
from meanfield.deep.checks import gamma0_of, is_deep
from meanfield.run import load, run, run_to_dir

from helpers import tiny


def deep(**over):
    base = {"model.depth": 2, "model.activation": "tanh", "limit.method": "ntk", "train.algorithm": "gd",
            "train.n_train": 5, "eval.n_points": 2, "limit.dt": 0.1, "train.lr": 0.1, "train.widths": [16, 64],
            "train.seeds": 3, "time.t_max": 1.0}
    base.update(over)
    return tiny(**base)


def problems(d):
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(d)
    return "\n".join(e.value.problems)


def test_defaults_keep_two_layer_path_and_roundtrip(tmp_path):
    cfg = C.from_dict(tiny())
    assert cfg.model.depth == 1 and cfg.model.gamma0 == "auto" and not is_deep(cfg)
    dcfg = C.from_dict(deep(**{"model.gamma0": 2.0}))
    assert is_deep(dcfg) and dcfg.model.alpha == 0.5 and gamma0_of(dcfg) == 2.0
    p = tmp_path / "c.toml"
    p.write_text(C.to_toml(dcfg))
    assert C.load(p) == dcfg


def test_alpha_and_gamma0_are_one_knob():
    assert gamma0_of(C.from_dict(deep(**{"model.alpha": 4.0}))) == 0.25
    assert C.from_dict(tiny(**{"model.gamma0": 0.5})).model.alpha == 2.0  # two-layer path too
    assert C.from_dict(deep(**{"model.alpha": 0.5, "model.gamma0": 2.0})).model.alpha == 0.5
    msg = problems(deep(**{"model.alpha": 1.0, "model.gamma0": 2.0}))
    assert "conflict" in msg and "alpha = 1/gamma0" in msg
    assert "gamma0" in problems(deep(**{"model.gamma0": -1.0}))
    assert 'a number or "auto"' in problems(deep(**{"model.gamma0": "big"}))


def test_unsupported_combinations_refused_with_reasons():
    assert "two-layer mean-field limit" in problems(deep(**{"limit.method": "particles"}))
    assert "deep *linear*" in problems(deep(**{"limit.method": "dmft_linear"}))
    msg = problems(deep(**{"limit.method": "dmft", "model.activation": "relu"}))
    assert "relu" in msg and "Dirac" in msg
    assert "square loss" in problems(deep(**{"task.loss": "logistic", "task.kind": "gaussians"}))
    assert "two-layer option" in problems(deep(**{"model.w_std": 2.0}))
    assert "two-layer option" in problems(deep(**{"model.bias": True}))
    assert "population" in problems(deep(**{"train.algorithm": "population_gd"}))
    assert "deep runs only" in problems(tiny(**{"train.algorithm": "flow"}))
    msg = problems(deep(**{"limit.method": "dmft", "train.n_train": 100, "time.t_max": 10.0}))
    assert "GB" in msg and "dmft_max_memory_gb" in msg
    assert "dmft_error_batches" in problems(deep(**{"limit.method": "dmft", "limit.dmft_samples": 6,
                                                     "limit.dmft_error_batches": 4}))
    assert "dmft_damping" in problems(deep(**{"limit.dmft_damping": 0.0}))


def test_ntk_run_keys_shapes_and_plots(tmp_path):
    out = tmp_path / "r"
    res = run_to_dir(C.from_dict(deep()), str(out))
    a = res.arrays
    T, W, S, L, n = len(a["t"]), 2, 3, 2, 7
    assert res.summary["kind"] == "deep" and res.status == "completed"
    assert a["loss_inf"].shape == (T,) and a["f_inf"].shape == (T, n)
    assert a["Phi_inf"].shape == (T, L, n, n) and a["G_inf"].shape == (T, L, n, n) and a["K_inf"].shape == (T, n, n)
    assert a["loss_nn"].shape == (W, S, T) and a["f_nn"].shape == (W, S, T, n)
    assert a["Phi_nn"].shape == (W, T, L, n, n) and a["K_nn"].shape == (W, T, n, n)
    assert a["align_nn"].shape == (W, S, T) and a["K_dev_nn"].shape == (W, S, T)
    # the NTK limit has frozen kernels; f(0) = 0; the wider networks sit closer to it
    np.testing.assert_allclose(a["K_inf"][0], a["K_inf"][-1])
    assert np.all(a["f_inf"][0] == 0)
    d = res.summary["f_rms_dev_final"]
    assert d["64"] < d["16"]
    loaded = load(str(out))
    assert set(loaded.arrays) == set(a)
    assert main(["plot", str(out)]) == 0
    for name in ("loss", "outputs", "kernels", "alignment"):
        assert os.path.isfile(out / f"{name}.png")


def test_dataset_task_and_flow_and_online_sgd(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    Xt = rng.standard_normal((3, 3))
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=np.tanh(X[:, 0]), X_test=Xt, y_test=np.tanh(Xt[:, 0]))
    base = {"task.kind": "dataset", "task.path": str(path), "eval.n_points": 2}
    res = run(deep(**base, **{"train.algorithm": "flow", "train.integrator": "heun"}))
    assert res.arrays["x_train"].shape == (4, 3) and res.arrays["x_test"].shape == (2, 3)
    np.testing.assert_array_equal(res.arrays["x_test"], Xt[:2])
    assert np.all(np.isfinite(res.arrays["loss_inf_test"]))
    assert any("full-batch GD" in m for m in res.summary["messages"]) is False  # ntk: no exactness claim
    res = run(deep(**{"train.algorithm": "online_sgd", "train.batch": 4}))
    assert np.all(np.isfinite(res.arrays["loss_nn"]))


def test_depth_one_deep_run_is_the_two_layer_model():
    """depth 1 + an NTK limit: the networks are TwoLayer particle arrays; f from the deep fields agrees."""
    from meanfield.deep.network import DeepNet, MuP

    res = run(deep(**{"model.depth": 1, "train.widths": [8], "train.seeds": 2, "model.gamma0": 0.5}))
    assert res.status == "completed" and res.arrays["Phi_nn"].shape[2] == 1
    net = DeepNet("tanh", 3, 8, 1, MuP(0.5))
    assert net.two_layer is not None and net.state_shape(2) == (2, 8, 4)


def test_divergence_is_reported():
    res = run(deep(**{"train.lr": 5.0, "limit.method": "none", "time.t_max": 500.0, "model.activation": "linear",
                      "model.gamma0": 4.0, "train.widths": [16]}))
    msg = res.summary["diverged"][0]["message"]
    assert "non-finite" in msg or "divergence_factor" in msg  # overflow, or the loss criterion first
    assert res.status == "diverged"


@pytest.mark.parametrize("alg", ["gd", "sgd", "online_sgd", "flow"])
def test_float32_follows_float64(alg):
    r32 = run(deep(**{"run.dtype": "float32", "train.algorithm": alg, "train.widths": [16], "train.seeds": 2}))
    r64 = run(deep(**{"train.algorithm": alg, "train.widths": [16], "train.seeds": 2}))
    assert r32.status == "completed"
    np.testing.assert_allclose(r32.arrays["f_nn"], r64.arrays["f_nn"], atol=1e-5)


def test_kernels_capped_on_large_point_sets(tmp_path):
    from meanfield.deep.wing import KERNEL_MAX_POINTS

    rng = np.random.default_rng(1)
    X = rng.standard_normal((KERNEL_MAX_POINTS + 20, 3))
    np.savez(tmp_path / "big.npz", X=X, y=np.tanh(X[:, 0]))
    res = run(deep(**{"task.kind": "dataset", "task.path": str(tmp_path / "big.npz"), "train.widths": [8],
                      "model.activation": "erf",  # closed-form NTK kernels (tanh quadrature is slow here)
                      "train.seeds": 2, "time.t_max": 0.2}))
    nk = KERNEL_MAX_POINTS
    assert res.arrays["f_nn"].shape[-1] == nk + 20 and res.arrays["K_nn"].shape[-1] == nk
    assert res.arrays["Phi_inf"].shape[-1] == nk and np.all(np.isfinite(res.arrays["align_nn"]))


def test_numba_backend_trains_deep_networks_like_numpy():
    """run.backend = numba at depth 2 uses the fused step; the recorded trajectories equal numpy's."""
    r_nb = run(deep(**{"run.backend": "numba", "train.seeds": 2}))
    r_np = run(deep(**{"train.seeds": 2}))
    assert r_nb.summary["backend"] == "numba" and r_np.summary["backend"] == "numpy"
    for key in ("f_nn", "loss_nn"):
        np.testing.assert_allclose(r_nb.arrays[key], r_np.arrays[key], rtol=0, atol=1e-12)
