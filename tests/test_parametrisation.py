"""Parametrisations of the deep network (muP, NTK, standard): forward pass, gradients, the practitioner's
standard-parametrisation GD, depth 1, and the config's refusal of a limit the parametrisation lacks."""
import math

import numpy as np
import pytest

from meanfield import config as C
from meanfield.cli import main
from meanfield.deep.network import DeepNet
from meanfield.deep.parametrisation import PARAMETRISATIONS, MuP, NTKParam, Standard, make_parametrisation
from meanfield.deep.train import make_step
from meanfield_solvers.gaussian import get_activation
from tests.helpers import tiny

NAMES = sorted(PARAMETRISATIONS)


def _rngs(S, L, base=0):
    return [[np.random.default_rng([base, s, l]) for l in range(L + 1)] for s in range(S)]


def _data(P=5, D=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D))
    return X, np.tanh(X[:, 0]) + 0.3 * X[:, 1]


def _explicit_forward(name, g0, Ws, X, act, residual=False, branch=1.0):
    """f written from the README's formulas, one network, no DeepNet code."""
    phi = get_activation(act).fn
    D, N, L = X.shape[1], Ws[0].shape[0], len(Ws) - 1
    h = X @ Ws[0].T / math.sqrt(D)
    for l in range(1, L):
        z = branch * phi(h) @ Ws[l].T / math.sqrt(N)
        h = h + z if residual else z
    readout = {"mup": 1 / (g0 * N), "ntk": 1 / (g0 * math.sqrt(N)), "standard": 1 / (g0 * math.sqrt(N))}[name]
    return readout * phi(h) @ Ws[L]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("residual", [False, True])
def test_forward_pass_is_the_documented_formula(name, residual):
    S, D, N, L, g0 = 2, 3, 7, 3, 0.7
    X, _ = _data(D=D)
    p = make_parametrisation(name, g0, residual=residual, branch_exponent=0.5, branch_scale=1.3)
    net = DeepNet("tanh", D, N, L, p)
    theta = net.init(_rngs(S, L))
    f = net.output(theta, X)
    Ws = net.weights(theta)
    for s in range(S):
        want = _explicit_forward(name, g0, [W[s] for W in Ws], X, "tanh", residual,
                                1.3 / math.sqrt(L) if residual else 1.0)
        np.testing.assert_allclose(f[s], want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("act", ["erf", "relu"])
def test_velocity_is_minus_rate_times_finite_difference_gradient(name, L, act):
    """v = -c_l dL/dW^l for every weight group of every parametrisation (central differences)."""
    S, D, N = 2, 4, 6
    X, y = _data(D=D)
    net = DeepNet(act, D, N, L, make_parametrisation(name, 0.8))
    theta = net.init(_rngs(S, L, base=4))
    vW = net.weights(net.velocity(theta, X, y)[1])
    Ws = net.weights(theta)
    rng = np.random.default_rng(3)
    eps = 1e-6
    for l in range(L + 1):
        for _ in range(3):
            idx = (1,) + tuple(int(rng.integers(0, n)) for n in Ws[l].shape[1:])
            Wp = [W.copy() for W in Ws]
            Wm = [W.copy() for W in Ws]
            Wp[l][idx] += eps
            Wm[l][idx] -= eps
            grad = (net.loss(net.pack(Wp), X, y)[1] - net.loss(net.pack(Wm), X, y)[1]) / (2 * eps)
            want = -net.sc.lr[l] * grad
            assert abs(vW[l][idx] - want) <= 2e-6 * max(1.0, abs(want)), (name, l, idx, vW[l][idx], want)


def test_rates_and_scales_of_the_table():
    D, N, L, g0 = 5, 64, 3, 0.5
    mup, ntk, sp = (cls(gamma0=g0).scales(L, D, N) for cls in (MuP, NTKParam, Standard))
    assert mup.forward[-1] == pytest.approx(1 / (g0 * N)) and mup.lr == (g0 * g0 * N,) * (L + 1)
    assert ntk.forward[-1] == pytest.approx(1 / (g0 * 8)) and ntk.lr == pytest.approx((g0 * g0,) * (L + 1))
    assert sp.lr == (D, N, N, N) and sp.forward[:L] == mup.forward[:L]
    # the NTK parametrisation is muP with gamma = gamma0 / sqrt(N): every scale and rate agrees
    eq = MuP(gamma0=g0 / math.sqrt(N)).scales(L, D, N)
    np.testing.assert_allclose(ntk.forward, eq.forward, rtol=1e-15)
    np.testing.assert_allclose(ntk.lr, eq.lr, rtol=1e-15)
    assert ntk.g_scale == pytest.approx(eq.g_scale)
    assert MuP.limit_methods == ("dmft", "dmft_linear", "ntk") and NTKParam.limit_methods == ("ntk",)
    assert Standard.limit_methods == ()


def test_standard_is_plain_gd_on_fan_in_scaled_weights():
    """The practitioner's SP: stored weights V ~ N(0, 1/fan_in), f = V_L.phi(...)/gamma0, GD at one rate eta
    on V, written out by hand with its own finite-difference-free backprop = DeepNet('standard') + gd."""
    S, D, N, L, g0, eta = 1, 3, 9, 3, 1.0, 0.01
    X, y = _data(D=D)
    P = X.shape[0]
    net = DeepNet("tanh", D, N, L, Standard(gamma0=g0))
    theta = net.init(_rngs(S, L, base=2))
    Ws = net.weights(theta)
    fan = [D] + [N] * L
    V = [W[0] / math.sqrt(fan[l]) for l, W in enumerate(Ws)]  # stored weights, variance 1/fan_in
    assert abs(np.var(V[1]) * N - 1) < 0.5
    act = get_activation("tanh")
    step = make_step(net, "gd", eta, train=(X, y))
    th = theta
    for k in range(5):
        # hand-written SP: h1 = V0 x, h(l+1) = V_l tanh(h_l), f = V_L . tanh(h_L) / g0
        hs = [X @ V[0].T]
        for l in range(1, L):
            hs.append(act.fn(hs[-1]) @ V[l].T)
        f = act.fn(hs[-1]) @ V[L] / g0
        d = (f - y) / P  # dL/df
        grads = [None] * (L + 1)
        grads[L] = act.fn(hs[-1]).T @ d / g0
        e = d[:, None] * V[L][None, :] / g0 * act.d1(hs[-1])
        for l in range(L - 1, -1, -1):
            a = X if l == 0 else act.fn(hs[l - 1])
            grads[l] = e.T @ a
            if l:
                e = (e @ V[l]) * act.d1(hs[l - 1])
        V = [v - eta * g for v, g in zip(V, grads)]
        th = step(th, k)
    got = net.weights(th)
    for l in range(L + 1):
        np.testing.assert_allclose(got[l][0] / math.sqrt(fan[l]), V[l], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_depth_one_dispatch_equals_the_generic_deep_equations(name):
    """At L = 1 every parametrisation runs on the two-layer particle code; its trajectory equals the generic
    deep backprop on (W0, w). For muP this is the two-layer mean-field model (alpha = 1/gamma0)."""
    S, D, N, g0, lr = 2, 4, 10, 0.7, 0.05
    X, y = _data(D=D)
    net = DeepNet("erf", D, N, 1, make_parametrisation(name, g0))
    if name == "mup":
        assert net.two_layer.alpha == pytest.approx(1 / g0)
    theta = net.init(_rngs(S, 1))
    Ws = [W.copy() for W in net.weights(theta)]
    step = make_step(net, "gd", lr, train=(X, y))
    th = theta
    for k in range(10):
        th = step(th, k)
        _, vs = net.velocity_weights(Ws, X, y)
        Ws = [W + lr * v for W, v in zip(Ws, vs)]
    np.testing.assert_allclose(net.pack(Ws), th, rtol=0, atol=1e-11)


def _deep(**over):
    base = {"model.depth": 2, "model.activation": "tanh", "limit.method": "ntk", "train.algorithm": "gd",
            "train.n_train": 4, "eval.n_points": 2, "train.widths": [8], "train.seeds": 1, "time.t_max": 0.2}
    base.update(over)
    return tiny(**base)


@pytest.mark.parametrize("param, method, ok", [
    ("mup", "dmft", True), ("mup", "ntk", True), ("ntk", "ntk", True), ("ntk", "dmft", False),
    ("standard", "ntk", False), ("standard", "none", True), ("ntk", "none", True)])
def test_config_admits_only_the_parametrisations_limits(param, method, ok):
    c = _deep(**{"model.parametrisation": param, "limit.method": method})
    if ok:
        C.Config.from_dict(c)
    else:
        with pytest.raises(C.ConfigError, match="model.parametrisation") as e:
            C.Config.from_dict(c)
        assert f"limit.method = {method!r}" in str(e.value)


def test_two_layer_path_refuses_other_parametrisations_and_residual():
    with pytest.raises(C.ConfigError, match="model.parametrisation = 'ntk'"):
        C.Config.from_dict(tiny(**{"model.parametrisation": "ntk"}))
    with pytest.raises(C.ConfigError, match="model.residual"):
        C.Config.from_dict(tiny(**{"model.residual": True}))


def test_cli_refuses_a_mismatch_with_exit_2_and_writes_nothing(tmp_path, capsys):
    cfgp = tmp_path / "c.toml"
    cfgp.write_text('[model]\ndepth = 2\nactivation = "tanh"\nparametrisation = "ntk"\n[limit]\nmethod = "dmft"\n')
    out = tmp_path / "out"
    assert main(["run", str(cfgp), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.parametrisation = 'ntk'" in err and "limit.method = 'dmft'" in err
    assert not out.exists()


def test_ntk_parametrised_run_end_to_end():
    """An NTK-parametrised deep run with its ntk limit trains and records; summary names the parametrisation."""
    import meanfield

    res = meanfield.run(C.Config.from_dict(_deep(**{"model.parametrisation": "ntk", "train.widths": [16],
                                                     "train.seeds": 2})), progress=False)
    assert res.summary["parametrisation"] == "ntk"
    assert np.all(np.isfinite(res.arrays["risk_nn_train"]))
    # same init NTK as muP at t = 0 (the same K, only the readout and rates move)
    assert res.arrays["K_mf"].shape[-1] == res.arrays["K_nn"].shape[-1]
