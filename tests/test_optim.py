"""Adam for the deep networks: the update against a hand-written reference (finite-difference gradients,
Adam written out), the muP per-layer rule making update sizes width-independent where the standard
parametrisation's grow, and the run-level wiring (validation, divergence recorded with its step)."""
import math

import numpy as np
import pytest

import meanfield
from meanfield import config as C
from meanfield.deep.coordcheck import coord_data
from meanfield.deep.network import DeepNet
from meanfield.deep.optim import AdamSpec, gradient_units
from meanfield.deep.parametrisation import make_parametrisation
from meanfield.deep.train import make_step

from helpers import tiny


def _loss_of_weights(net, Ws, X, y):
    f = net._forward_weights(Ws, X)[2]
    return 0.5 * np.mean((y - f) ** 2, axis=-1)  # (S,)


def _fd_grad(net, Ws, X, y, h=1e-6):
    """Central finite differences of the loss in every weight entry, per group (independent of backprop)."""
    out = []
    for l, W in enumerate(Ws):
        g = np.zeros_like(W)
        it = np.nditer(W[0], flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            for s in range(W.shape[0]):
                Wp = [w.copy() for w in Ws]
                Wm = [w.copy() for w in Ws]
                Wp[l][(s,) + idx] += h
                Wm[l][(s,) + idx] -= h
                g[(s,) + idx] = (_loss_of_weights(net, Wp, X, y)[s] - _loss_of_weights(net, Wm, X, y)[s]) / (2 * h)
        out.append(g)
    return out


def _reference_adam(net, Ws, X, y, lr, spec, steps):
    """Adam written out on raw gradients with eps_l = eps * sigma_l and per-entry step lr * a_l."""
    sc = net.sc
    sig = gradient_units(sc)
    m = [np.zeros_like(W) for W in Ws]
    v = [np.zeros_like(W) for W in Ws]
    Ws = [W.copy() for W in Ws]
    for t in range(1, steps + 1):
        grads = _fd_grad(net, Ws, X, y)
        for l in range(len(Ws)):
            m[l] = spec.beta1 * m[l] + (1 - spec.beta1) * grads[l]
            v[l] = spec.beta2 * v[l] + (1 - spec.beta2) * grads[l] ** 2
            mh = m[l] / (1 - spec.beta1 ** t)
            vh = v[l] / (1 - spec.beta2 ** t)
            Ws[l] = Ws[l] - lr * sc.adam[l] * mh / (np.sqrt(vh) + spec.eps * sig[l])
    return Ws


@pytest.mark.parametrize("name,L,residual", [("mup", 2, False), ("mup", 3, True), ("standard", 2, False),
                                             ("ntk", 2, False), ("mup", 1, False)])
def test_adam_matches_hand_written_reference(name, L, residual):
    rng = np.random.default_rng(1)
    D, N, P, S = 3, 5, 4, 2
    X = rng.standard_normal((P, D))
    y = np.tanh(X[:, 0])
    param = make_parametrisation(name, 0.7, residual=residual, branch_scale=1.3 if residual else 1.0)
    net = DeepNet("tanh", D, N, L, param)
    theta = net.init([[np.random.default_rng([s, l]) for l in range(L + 1)] for s in range(S)])
    # eps comparable to the normalised gradients, so that its per-layer scaling is tested too
    spec = AdamSpec(beta1=0.8, beta2=0.9, eps=0.3)
    lr = 0.05
    step = make_step(net, "gd", lr, train=(X, y), optimizer="adam", adam=spec)
    th = theta
    for k in range(3):
        th = step(th, k)
    ref = _reference_adam(net, net.weights(theta), X, y, lr, spec, 3)
    got = net.weights(th)
    for l, (a, b) in enumerate(zip(got, ref)):
        scale = lr * net.sc.adam[l]
        assert np.max(np.abs(a - b)) < 1e-6 * scale, (l, np.max(np.abs(a - b)), scale)
    # and the step moved every group by about lr * a_l per entry (the point of the rule)
    moved = [np.max(np.abs(a - b)) for a, b in zip(got, net.weights(theta))]
    assert all(m > 0.3 * lr * a for m, a in zip(moved, net.sc.adam))


def test_adam_rates_of_the_parametrisations():
    L, D, N, g = 4, 7, 64, 0.5
    mup = make_parametrisation("mup", g).scales(L, D, N).adam
    assert np.allclose(mup, [g / math.sqrt(D)] + [g / math.sqrt(N)] * (L - 1) + [g])
    ntk = make_parametrisation("ntk", g).scales(L, D, N).adam
    assert np.allclose(ntk, np.asarray(mup) / math.sqrt(N))  # muP at gamma0 / sqrt(N)
    sp = make_parametrisation("standard", g).scales(L, D, N).adam
    assert np.allclose(sp, [math.sqrt(D)] + [math.sqrt(N)] * L)
    res = make_parametrisation("mup", g, residual=True, branch_scale=2.0).scales(L, D, N).adam
    assert np.isclose(res[1], g * 2.0 * L ** -0.5 / math.sqrt(N)) and np.isclose(res[0], mup[0])


def _points():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 5))
    return X, np.tanh(X[:, 0])


def test_mup_adam_updates_are_width_independent_standard_adam_grow():
    """The coordinate check under Adam: muP's per-layer rule keeps every update size flat in width (fitted
    exponent ~ 0); one global Adam rate on standard-parametrised weights makes the hidden updates grow
    ~ N (each entry moves by O(lr) and N of them add up coherently); the NTK rule shrinks them."""
    X, y = _points()
    ps = {n: make_parametrisation(n, 1.0) for n in ("mup", "standard", "ntk")}
    cd = coord_data("tanh", X, y, 3, [64, 128, 256, 512], ps, lr=0.01, steps=3, seeds=3, optimizer="adam")
    for t in (1, 2, 3):
        e = cd.exponent("mup", "upd", t)
        assert np.all(np.abs(e) < 0.1), (t, e)
    sp = cd.exponent("standard", "upd", 1)
    assert np.all(sp[1:] > 0.7), sp  # h2, h3, f grow ~ N^1 at the first step
    assert np.all(cd.exponent("ntk", "upd", 1)[:-1] < -0.3)


def _deep(**over):
    base = {"model.depth": 2, "model.activation": "tanh", "train.algorithm": "gd", "train.n_train": 6,
            "eval.n_points": 2, "limit.method": "none", "train.lr": 0.05, "train.widths": [16, 32],
            "train.seeds": 2, "time.t_max": 1.0, "time.records": 5, "train.optimizer": "adam"}
    base.update(over)
    return tiny(**base)


def test_adam_run_completes_and_learns():
    res = meanfield.run(_deep())
    assert res.status == "completed"
    r = res.arrays["risk_nn_train"]  # (W, S, T)
    assert np.all(r[..., -1] < r[..., 0])
    assert res.summary["optimizer"]["name"] == "adam"


def test_adam_divergence_is_recorded_with_its_step():
    res = meanfield.run(_deep(**{"train.lr": 50.0, "model.parametrisation": "standard", "train.widths": [64],
                                 "time.records": 20, "time.spacing": "linear", "time.t_max": 1000.0}))
    assert res.status == "diverged"
    d = res.summary["diverged"][0]
    assert d["status"] == "diverged" and d["step"] > 0 and "step" in d["message"], d


@pytest.mark.parametrize("over,key", [
    ({"train.algorithm": "flow"}, "train.algorithm"),
    ({"limit.method": "ntk"}, "limit.method"),
    ({"model.depth": 1, "limit.method": "particles", "model.activation": "erf"}, "train.optimizer"),
])
def test_adam_refusals_name_the_key(over, key):
    with pytest.raises(C.ConfigError, match=key):
        C.from_dict(_deep(**over))
