"""Fluctuation prediction for a deep muP run at L = 1 (docs/fluctuations.md, "Deep networks at L = 1"):
the two-layer adjoint on the mapped particle system predicts the deep networks' seed spread, equals the
prediction of the hand-mapped two-layer config, and what the mapping cannot carry is refused."""
import os

import numpy as np
import pytest

import meanfield
from meanfield import config as C
from meanfield.deep.prediction import mapped_particle_system, predict_deep_fluctuations
from meanfield.twolayer.prediction import predict_fluctuations

from helpers import tiny

G0 = 1.5  # gamma0 != 1, so that alpha = 1/gamma0 is exercised


def _deep(**over):
    base = {"model.depth": 1, "model.activation": "tanh", "model.gamma0": G0, "limit.method": "ntk",
            "limit.dt": 0.1, "train.lr": 0.1, "train.algorithm": "gd", "train.n_train": 4, "eval.n_points": 2,
            "train.widths": [16, 64], "train.seeds": 200, "time.t_max": 3.0, "time.records": 6,
            "time.spacing": "linear", "fluctuations.predict": True, "fluctuations.times": 0,
            "fluctuations.particles": 4096}
    base.update(over)
    return tiny(**base)


def _measured(a, outs, wi, N):
    cols = []
    for name in outs:
        if name.startswith("f["):
            x = a["f_nn"][wi][..., int(name[2:-1])]
        else:
            x = a["risk_nn_train" if name == "risk_train" else "risk_nn_test"][wi]
        cols.append(N * np.var(x, axis=0, ddof=1))
    return np.stack(cols, -1)  # (T, O)


def test_deep_l1_prediction_matches_the_seed_spread_of_200_networks():
    res = meanfield.run(C.Config.from_dict(_deep()), progress=False)
    a = res.arrays
    outs = res.summary["fluct_outputs"]
    assert outs == [f"f[{q}]" for q in range(6)] + ["risk_train", "risk_test"]
    assert list(res.summary["dims"]["fluct_nvar"]) == ["time", "output"]
    pred, se = a["fluct_nvar"], a["fluct_nvar_se"]
    assert np.all(a["fluct_predicted"]) and np.all(np.isfinite(pred))
    np.testing.assert_array_equal(a["fluct_nvar_nn"], np.stack([pred, pred]))  # independent draws: no factor
    S = a["f_nn"].shape[1]
    for wi, N in enumerate(a["widths"]):
        meas = _measured(a, outs, wi, int(N))
        sem = meas * np.sqrt(2.0 / (S - 1))  # SE of a sample variance (Gaussian outputs)
        z = (meas - pred) / np.sqrt(sem ** 2 + se ** 2)
        assert np.mean(np.abs(z) <= 3) >= 0.9, (N, np.round(z, 1))
    # the prediction is not trivially satisfied: a wrong richness (alpha = 1 instead of 1/gamma0) misses
    wrong = res.arrays["fluct_nvar"][0, :6] * G0 ** 2  # at t = 0, N Var f scales as alpha^2
    meas0 = _measured(a, outs, 1, 64)[0, :6]
    assert np.mean(np.abs(meas0 - wrong) <= 3 * meas0 * np.sqrt(2.0 / (S - 1))) < 0.5


def test_deep_prediction_equals_the_hand_mapped_two_layer_prediction(tmp_path):
    cfg = C.Config.from_dict(_deep(**{"train.widths": [8], "train.seeds": 1}))
    from meanfield.deep import wing

    st = wing.setup(cfg, lambda s: None)
    D = st.X.shape[1]
    steps = np.arange(0, 31, 6)
    sysm = mapped_particle_system(cfg, st.X, st.y, st.Xt, st.yt, 512)
    th0 = sysm["particles0"]
    deep = predict_deep_fluctuations(cfg, st.X, st.y, st.Xt, st.yt, steps, particles0=th0)
    # the same system written by hand as a two-layer run on a dataset of the deep run's points
    path = tmp_path / "d.npz"
    np.savez(path, X=st.X, y=st.y, X_test=st.Xt, y_test=st.yt)
    two = C.Config.from_dict(tiny(**{
        "task.kind": "dataset", "task.path": str(path), "model.activation": "tanh", "model.alpha": 1 / G0,
        "model.lr_w": 1 / D, "model.a_std": 1.0, "model.w_std": 1.0, "model.bias": False,
        "limit.expectation": "mc", "limit.particles": 512, "limit.dt": 0.1, "limit.integrator": "euler",
        "eval.n_points": st.Xt.shape[0], "fluctuations.predict": True, "fluctuations.times": 0}))
    ref = predict_fluctuations(two, particles0=th0, steps=steps)
    P = st.X.shape[0]
    # deep outputs: f at the P training points, then the Q test points, risk_train, risk_test
    assert ref.outputs[-2:] == ("risk_train", "risk_test")
    np.testing.assert_allclose(deep.nvar[:, P:P + 2], ref.nvar[:, :2], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(deep.nvar[:, -2:], ref.nvar[:, -2:], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(deep.g[:, P:P + 2], ref.g[:, :2], rtol=1e-9, atol=1e-12)


DEEP_MSG = "Deep networks at L >= 2 need the DMFT propagator"


@pytest.mark.parametrize("over, match", [
    ({"model.depth": 2, "limit.method": "dmft"}, DEEP_MSG),
    ({"model.depth": 3, "limit.method": "ntk"}, DEEP_MSG),
    ({"train.optimizer": "adam"}, "train.optimizer = 'adam'"),
    ({"model.parametrisation": "ntk"}, "model.parametrisation = 'ntk'"),
    ({"train.algorithm": "online_sgd"}, "online_sgd"),
    ({"fluctuations.replicas": 4}, "fluctuations.replicas"),
])
def test_deep_prediction_refusals_at_validation(over, match):
    with pytest.raises(C.ConfigError, match=match):
        C.Config.from_dict(_deep(**over))


def test_residual_deep_run_is_refused():
    with pytest.raises(C.ConfigError, match=DEEP_MSG):
        C.Config.from_dict(_deep(**{"model.depth": 2, "model.residual": True, "limit.method": "dmft"}))


def test_meanfield_plot_draws_the_prediction_over_the_deep_seed_spread(tmp_path):
    from meanfield.plot import plot_dir

    res = meanfield.run(C.Config.from_dict(_deep(**{"train.widths": [16], "train.seeds": 4})), progress=False)
    out = tmp_path / "run"
    res.save(str(out))
    files = [os.path.basename(f) for f in plot_dir(str(out))]
    assert "fluct_bands.png" in files and "fluct_collapse.png" in files


def test_l2_refusal_is_the_two_layer_message_word_for_word():
    from meanfield.twolayer.prediction import prediction_obstacles

    c = _deep(**{"model.depth": 2, "limit.method": "dmft"})
    with pytest.raises(C.ConfigError) as e:
        C.Config.from_dict(c)
    resolved = C.Config.from_dict({**c, "fluctuations": {"predict": False}}).to_dict()
    two_layer_msg = prediction_obstacles(resolved)[0][0]
    assert two_layer_msg in str(e.value) and "Deep networks at L >= 2" in two_layer_msg


def test_deep_memory_estimate_refused_before_work():
    with pytest.raises(C.ConfigError, match="fluctuations.max_memory_gb"):
        C.Config.from_dict(_deep(**{"fluctuations.max_memory_gb": 1e-6}))


def test_minibatch_sgd_is_labelled_initialisation_part_only():
    res = meanfield.run(C.Config.from_dict(_deep(**{"train.algorithm": "sgd", "train.batch": 2, "train.widths": [8],
                                                     "train.seeds": 2})), progress=False)
    assert any("initialisation part only" in m for m in res.summary["fluct_labels"])
