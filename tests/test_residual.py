"""Residual deep networks h^{l+1} = h^l + (beta/L^kappa) W^l phi(h^l)/sqrt(N): identity when the branches
vanish, backprop against finite differences (numpy and the fused numba step), and a residual run."""
import math

import numpy as np
import pytest

from meanfield import config as C
from meanfield.deep.network import DeepNet
from meanfield.deep.parametrisation import make_parametrisation
from meanfield.deep.train import make_step
from meanfield_solvers.gaussian import get_activation
from tests.helpers import tiny


def _rngs(S, L, base=0):
    return [[np.random.default_rng([base, s, l]) for l in range(L + 1)] for s in range(S)]


def _data(P=5, D=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D))
    return X, np.tanh(X[:, 0]) + 0.3 * X[:, 1]


@pytest.mark.parametrize("name", ["mup", "ntk", "standard"])
def test_zero_branches_are_the_identity_of_the_first_layer(name):
    """beta = 0, or all block weights zero: h^L = h^1, so f = s_L w.phi(W0 x/sqrt D) and the block
    velocities see the skip path only (e^l = e^L for every l)."""
    S, D, N, L, g0 = 2, 3, 11, 5, 0.9
    X, y = _data(D=D)
    act = get_activation("tanh")
    for kw in (dict(branch_scale=0.0), dict(branch_scale=1.0)):
        net = DeepNet("tanh", D, N, L, make_parametrisation(name, g0, residual=True, **kw))
        Ws = net.weights(net.init(_rngs(S, L)))
        if kw["branch_scale"] == 1.0:
            for l in range(1, L):
                Ws[l][...] = 0.0
        theta = net.pack(Ws)
        h1 = np.einsum("pd,snd->spn", X, Ws[0]) / math.sqrt(D)
        want = net.sc.forward[L] * np.einsum("spn,sn->sp", act.fn(h1), Ws[L])
        np.testing.assert_allclose(net.output(theta, X), want, rtol=1e-14, atol=1e-15)
        fl = net.fields(theta, X)
        for l in range(L):
            np.testing.assert_allclose(fl.g[l], fl.g[L - 1], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kappa", [0.5, 0.0])
@pytest.mark.parametrize("act", ["tanh", "erf", "linear"])
def test_residual_velocity_is_minus_rate_times_finite_difference_gradient(kappa, act):
    S, D, N, L = 2, 3, 5, 4
    X, y = _data(D=D)
    net = DeepNet(act, D, N, L, make_parametrisation("mup", 1.3, residual=True, branch_exponent=kappa,
                                                     branch_scale=1.7))
    assert net.sc.forward[1] == pytest.approx(1.7 * L ** -kappa / math.sqrt(N))
    theta = net.init(_rngs(S, L))
    vW = net.weights(net.velocity(theta, X, y)[1])
    Ws = net.weights(theta)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for l in range(L + 1):
        for _ in range(3):
            idx = (0,) + tuple(int(rng.integers(0, n)) for n in Ws[l].shape[1:])
            Wp = [W.copy() for W in Ws]
            Wm = [W.copy() for W in Ws]
            Wp[l][idx] += eps
            Wm[l][idx] -= eps
            grad = (net.loss(net.pack(Wp), X, y)[0] - net.loss(net.pack(Wm), X, y)[0]) / (2 * eps)
            want = -net.sc.lr[l] * grad
            assert abs(vW[l][idx] - want) <= 2e-6 * max(1.0, abs(want)), (l, idx)


def test_fused_numba_residual_step_equals_numpy():
    pytest.importorskip("numba")
    S, D, N, L = 3, 4, 16, 6
    X, y = _data(P=6, D=D)
    p = make_parametrisation("mup", 0.8, residual=True)
    a = DeepNet("tanh", D, N, L, p, backend="numpy")
    b = DeepNet("tanh", D, N, L, p, backend="numba")
    assert b.fused_code is not None
    theta = a.init(_rngs(S, L, base=5))
    sa, sb = make_step(a, "gd", 0.2, train=(X, y)), make_step(b, "gd", 0.2, train=(X, y))
    ta, tb = theta, theta.copy()
    for k in range(5):
        ta, tb = sa(ta, k), sb(tb, k)
    np.testing.assert_allclose(tb, ta, rtol=1e-12, atol=1e-12)


def test_fused_update_is_bitwise_velocity_plus_state():
    """The fused GD step (net.update: the addition done group by group inside the kernel, README "Benchmark")
    is bitwise the velocity kernel's v + theta, for plain and residual nets, float64 and float32, shared and per-seed
    data; and the numpy path's update equals the fused one to rounding."""
    pytest.importorskip("numba")
    S, D, N, L = 3, 4, 16, 5
    X, y = _data(P=6, D=D)
    for residual in (True, False):
        p = make_parametrisation("mup", 0.8, residual=residual)
        a = DeepNet("tanh", D, N, L, p, backend="numpy")
        b = DeepNet("tanh", D, N, L, p, backend="numba")
        for dtype in (np.float64, np.float32):
            theta = a.init(_rngs(S, L, base=7), dtype=dtype)
            Xs = np.repeat(X[None], S, 0).astype(dtype) + 0.1 * np.arange(S, dtype=dtype)[:, None, None]
            for XX, yy in ((X.astype(dtype), y.astype(dtype)), (Xs, np.repeat(y[None], S, 0).astype(dtype))):
                loss_v, v = b.velocity(theta, XX, yy, scale=0.3)
                v += theta
                loss_u, new = b.update(theta, XX, yy, 0.3)
                assert new.dtype == theta.dtype and np.array_equal(new, v) and np.array_equal(loss_u, loss_v)
                tol = 1e-12 if dtype == np.float64 else 2e-5
                np.testing.assert_allclose(new, a.update(theta, XX, yy, 0.3)[1], rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_step_recycles_dropped_states_without_changing_values(backend):
    """make_step writes a new state into the buffer of one the caller has dropped (train.Recycler: no page faults of a
    fresh state each step). A loop that drops its states gives bitwise the trajectory of one that keeps all of them
    (so nothing can be recycled), it does recycle, and a state still referenced — here by a view — is never
    overwritten."""
    if backend == "numba":
        pytest.importorskip("numba")
    S, D, N, L = 3, 4, 16, 4
    X, y = _data(P=6, D=D)
    net = DeepNet("tanh", D, N, L, make_parametrisation("mup", 0.8, residual=True), backend=backend)
    theta = net.init(_rngs(S, L, base=9))
    keep = [theta]
    step = make_step(net, "gd", 0.2, train=(X, y))
    for k in range(6):
        keep.append(step(keep[-1], k))
    assert step.recycler.reused == 0  # every state is still referenced
    step = make_step(net, "gd", 0.2, train=(X, y))
    th = theta
    view, kept_values = None, None
    for k in range(6):
        th = step(th, k)
        if k == 1:
            view = th[:, :5]  # a view keeps its base alive: that state must not be recycled
            kept_values = view.copy()
    assert step.recycler.reused >= 3
    assert np.array_equal(th, keep[-1])
    assert np.array_equal(view, kept_values)


def test_residual_config_keys_and_run():
    import meanfield

    base = {"model.depth": 8, "model.activation": "tanh", "model.residual": True, "limit.method": "none",
            "train.algorithm": "gd", "train.n_train": 4, "eval.n_points": 2, "train.widths": [16],
            "train.seeds": 2, "time.t_max": 0.3}
    res = meanfield.run(C.Config.from_dict(tiny(**base)), progress=False)
    assert res.summary["residual"]["branch_multiplier"] == pytest.approx(1 / math.sqrt(8))
    assert np.all(np.isfinite(res.arrays["risk_nn_train"]))
    with pytest.raises(C.ConfigError, match="model.residual = true needs"):
        C.Config.from_dict(tiny(**dict(base, **{"model.depth": 1, "limit.method": "ntk"})))
    with pytest.raises(C.ConfigError, match="branch_exponent"):
        C.Config.from_dict(tiny(**dict(base, **{"model.residual": False, "model.branch_exponent": 0.0})))


@pytest.mark.parametrize("name, residual", [("mup", True), ("ntk", True), ("standard", False), ("standard", True)])
def test_observer_ntk_from_kernels_equals_the_network_ntk(name, residual):
    """The recorded K (from Phi^l, G^l with the parametrisation's weights) is the network's exact NTK."""
    from meanfield.deep.observe import DeepObserver

    S, D, N, L = 2, 3, 12, 4
    X, y = _data(P=4, D=D)
    net = DeepNet("tanh", D, N, L, make_parametrisation(name, 0.7, residual=residual))
    theta = net.init(_rngs(S, L))
    o = DeepObserver(net, X, y)(theta)
    np.testing.assert_allclose(o["K"], net.ntk(theta, X), rtol=1e-12, atol=1e-12)
