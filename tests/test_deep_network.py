"""Finite-width deep muP networks: backprop vs finite differences, batching, NTK, depth-1 = two-layer."""
import numpy as np
import pytest

from meanfield.deep.network import DeepNet, LayerScales, MuP, make_parametrisation
from meanfield.deep.observe import DeepObserver, alignment, ntk_from_kernels
from meanfield.deep.train import make_step
from meanfield_solvers.particles import TwoLayer, get_backend, mc_risk_velocity

ACTS = ("linear", "relu", "erf", "tanh")


def _rngs(S, L, base=0):
    return [[np.random.default_rng([base, s, l]) for l in range(L + 1)] for s in range(S)]


def _data(P=5, D=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D))
    return X, np.tanh(X[:, 0]) + 0.3 * X[:, 1]


class _Residual(MuP):
    """muP with residual blocks (the slot of the residual variant), for the gradient check."""

    def scales(self, L, D, N):
        s = super().scales(L, D, N)
        fwd = (s.forward[0],) + tuple(x / np.sqrt(L) for x in s.forward[1:L]) + (s.forward[L],)
        return LayerScales(fwd, s.lr, s.g_scale, residual=True)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("L", [1, 2, 3])
def test_velocity_equals_scaled_finite_difference_gradient(act, L):
    """v = -c_l dL/dW^l for every weight group, by central differences on the deep weights."""
    S, D, N = 2, 4, 6
    X, y = _data(D=D)
    net = DeepNet(act, D, N, L, MuP(0.8))
    theta = net.init(_rngs(S, L))
    _, v = net.velocity(theta, X, y)
    vW = net.weights(v)
    Ws = net.weights(theta)
    rng = np.random.default_rng(3)
    eps = 1e-6
    for l in range(L + 1):
        for _ in range(4):
            idx = (1,) + tuple(int(rng.integers(0, n)) for n in Ws[l].shape[1:])
            Wp = [W.copy() for W in Ws]
            Wm = [W.copy() for W in Ws]
            Wp[l][idx] += eps
            Wm[l][idx] -= eps
            grad = (net.loss(net.pack(Wp), X, y)[1] - net.loss(net.pack(Wm), X, y)[1]) / (2 * eps)
            want = -net.sc.lr[l] * grad
            assert abs(vW[l][idx] - want) <= 1e-6 * max(1.0, abs(want)), (l, idx, vW[l][idx], want)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_residual_variant_gradient(act):
    S, D, N, L = 2, 3, 5, 3
    X, y = _data(D=D)
    net = DeepNet(act, D, N, L, _Residual(1.3))
    theta = net.init(_rngs(S, L))
    _, v = net.velocity(theta, X, y)
    vW = net.weights(v)
    Ws = net.weights(theta)
    eps = 1e-6
    for l in range(L + 1):
        idx = (0,) + (1,) * (Ws[l].ndim - 1)
        Wp = [W.copy() for W in Ws]
        Wm = [W.copy() for W in Ws]
        Wp[l][idx] += eps
        Wm[l][idx] -= eps
        grad = (net.loss(net.pack(Wp), X, y)[0] - net.loss(net.pack(Wm), X, y)[0]) / (2 * eps)
        assert abs(vW[l][idx] + net.sc.lr[l] * grad) <= 1e-6 * max(1.0, abs(net.sc.lr[l] * grad))


@pytest.mark.parametrize("L", [1, 2, 3])
def test_batched_ensemble_equals_loop_over_seeds(L):
    """S networks in one batched computation = each network alone (velocity and 5 GD steps)."""
    S, D, N = 4, 3, 8
    X, y = _data(D=D)
    net = DeepNet("tanh", D, N, L, MuP(1.5))
    rngs = _rngs(S, L, base=7)
    theta = net.init(rngs)
    step = make_step(net, "gd", 0.1, train=(X, y))
    th = theta
    for k in range(5):
        th = step(th, k)
    for s in range(S):
        one = net.init(_rngs(S, L, base=7)[s:s + 1])
        np.testing.assert_array_equal(one[0], theta[s])
        for k in range(5):
            one = step(one, k)
        np.testing.assert_allclose(one[0], th[s], rtol=0, atol=1e-13)


def test_minibatch_velocity_batched_equals_loop():
    S, D, N, L = 3, 3, 6, 2
    rng = np.random.default_rng(0)
    Xb = rng.standard_normal((S, 4, D))
    yb = rng.standard_normal((S, 4))
    net = DeepNet("erf", D, N, L, MuP(1.0))
    theta = net.init(_rngs(S, L))
    _, v = net.velocity(theta, Xb, yb)
    for s in range(S):
        _, v1 = net.velocity(theta[s:s + 1], Xb[s], yb[s])
        np.testing.assert_allclose(v1[0], v[s], rtol=0, atol=1e-13)


@pytest.mark.parametrize("act", ACTS)
def test_depth_one_is_the_two_layer_model(act):
    """L = 1 muP: TwoLayer with alpha = 1/gamma0, lr_w = 1/D, w = W0/sqrt(D), a = w^L — same trajectory
    as (i) the particle code driven by hand and (ii) the generic deep backprop on (W0, w)."""
    S, D, N, g0, lr = 3, 4, 10, 0.7, 0.05
    X, y = _data(D=D)
    net = DeepNet(act, D, N, 1, MuP(g0))
    tl = net.two_layer
    assert tl.alpha == pytest.approx(1 / g0) and tl.lr_a == pytest.approx(1.0) and tl.lr_w == pytest.approx(1 / D)
    theta = net.init(_rngs(S, 1))
    W0, w = net.weights(theta)
    # (i) hand-driven TwoLayer particles
    model = TwoLayer(activation=act, d=D, alpha=1 / g0, lr_a=1.0, lr_w=1 / D)
    part = np.concatenate([w[..., None], W0 / np.sqrt(D)], axis=-1)
    np.testing.assert_allclose(part, theta, rtol=0, atol=0)
    be = get_backend("numpy")
    step = make_step(net, "gd", lr, train=(X, y))
    th, Ws = theta, [W0.copy(), w.copy()]
    for k in range(20):
        th = step(th, k)
        part = part + lr * mc_risk_velocity(model, be, part, X, y, "square")[1]
        _, vs = net.velocity_weights(Ws, X, y)  # (ii) deep equations at L = 1
        Ws = [W + lr * v for W, v in zip(Ws, vs)]
    np.testing.assert_allclose(th, part, rtol=0, atol=1e-13)
    np.testing.assert_allclose(net.pack(Ws), th, rtol=0, atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("act", ["tanh", "linear"])
def test_ntk_kernels_and_function_velocity(L, act):
    """K = sum_l G^{l+1} o Phi^l (observer) = sum_theta c (df)^2 (network) and df/dt = K Delta / P."""
    S, D, N = 2, 3, 16
    X, y = _data(P=4, D=D)
    Xt = np.random.default_rng(9).standard_normal((2, D))
    net = DeepNet(act, D, N, L, MuP(0.9))
    theta = net.init(_rngs(S, L))
    obs = DeepObserver(net, X, y, Xt, np.zeros(2))
    o = obs(theta)
    Xall = np.concatenate([X, Xt])
    K = net.ntk(theta, Xall)
    np.testing.assert_allclose(o["K"], K, rtol=1e-12, atol=1e-12)
    # directional derivative of f along the velocity
    _, v = net.velocity(theta, X, y)
    eps = 1e-6
    df = (net.output(theta + eps * v, Xall) - net.output(theta - eps * v, Xall)) / (2 * eps)
    delta = y - o["f"][:, :4]
    np.testing.assert_allclose(df, np.einsum("smp,sp->sm", K[:, :, :4], delta) / 4, rtol=1e-6, atol=1e-8)
    assert o["Phi"].shape == (S, L, 6, 6) and o["G"].shape == (S, L, 6, 6)
    a = alignment(K, y)
    assert a.shape == (S,) and np.all(np.abs(a) <= 1 + 1e-12)


def test_ntk_from_kernels_linear_init_limit():
    """Deep linear at init, wide: K -> (L+1) Phi0 (docs/dmft.md §5d)."""
    D, N, L = 3, 4000, 3
    X, y = _data(P=3, D=D)
    net = DeepNet("linear", D, N, L, MuP(1.0))
    theta = net.init(_rngs(1, L))
    o = DeepObserver(net, X, y)(theta)
    Phi0 = X @ X.T / D
    np.testing.assert_allclose(o["K"][0], (L + 1) * Phi0, atol=0.15 * np.abs(Phi0).max() * (L + 1))
    K = ntk_from_kernels(Phi0, np.stack([Phi0] * L), np.ones((L, 3, 3)))
    np.testing.assert_allclose(K, (L + 1) * Phi0)


def test_flow_integrators_converge_to_each_other():
    """RK4 and Heun flows agree to high order; GD approaches them as O(dt)."""
    S, D, N, L = 2, 3, 8, 2
    X, y = _data(D=D)
    net = DeepNet("tanh", D, N, L, MuP(1.0))
    th0 = net.init(_rngs(S, L))

    def run(alg, dt, integ="rk4"):
        step = make_step(net, alg, dt, train=(X, y), integrator=integ)
        th = th0
        for k in range(int(round(1.0 / dt))):
            th = step(th, k)
        return th

    ref = run("flow", 0.05)
    e_heun = np.abs(run("flow", 0.1, "heun") - ref).max()
    e_gd1 = np.abs(run("gd", 0.1) - ref).max()
    e_gd2 = np.abs(run("gd", 0.05) - ref).max()
    assert e_heun < e_gd1
    assert 1.6 < e_gd1 / e_gd2 < 2.4  # first order


def test_parametrisation_registry_and_errors():
    assert isinstance(make_parametrisation("mup", 2.0), MuP)
    with pytest.raises(ValueError, match="unknown parametrisation"):
        make_parametrisation("ntk_param", 1.0)
    with pytest.raises(ValueError, match="gamma0"):
        MuP(0.0)
    with pytest.raises(ValueError, match="depth"):
        DeepNet("tanh", 2, 3, 0, MuP(1.0))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("L,residual", [(2, False), (3, False), (3, True)])
def test_numba_fused_velocity_equals_numpy(act, L, residual):
    """The numba fused step (backend='numba', depth >= 2) = the numpy backprop, shared and per-seed data."""
    S, D, N = 3, 4, 7
    param = _Residual(1.3) if residual else MuP(0.8)
    ref = DeepNet(act, D, N, L, param)
    fast = DeepNet(act, D, N, L, param, backend="numba")
    assert fast.fused_code is not None and ref.fused_code is None
    theta = ref.init(_rngs(S, L))
    X, y = _data(D=D)
    rng = np.random.default_rng(5)
    Xb, yb = rng.standard_normal((S, 6, D)), rng.standard_normal((S, 6))
    # X and y each shared or per seed, in every combination
    for Xa, ya in ((X, y), (Xb, yb), (X, yb[:, :5]), (Xb[:, :5], y)):
        l0, v0 = ref.velocity(theta, Xa, ya, scale=0.3)
        l1, v1 = fast.velocity(theta, Xa, ya, scale=0.3)
        np.testing.assert_allclose(l1, l0, rtol=1e-12, atol=0)
        np.testing.assert_allclose(v1, v0, rtol=0, atol=1e-12 * np.abs(v0).max())
    # float32: the same step within float32 rounding of the float64 one
    l32, v32 = fast.velocity(theta.astype(np.float32), X.astype(np.float32), y.astype(np.float32), scale=0.3)
    _, v64 = ref.velocity(theta, X, y, scale=0.3)
    assert v32.dtype == np.float32
    assert np.abs(v32 - v64).max() <= 2e-5 * np.abs(v64).max()


def test_numba_fused_velocity_independent_of_threads_and_keeps_nan():
    """Bitwise equal on 1 and 2 threads (one seed = one thread); a NaN weight stays in its own seed."""
    import numba

    S, D, N, L = 5, 4, 9, 3
    X, y = _data(D=D)
    net = DeepNet("relu", D, N, L, MuP(1.0), backend="numba")
    theta = net.init(_rngs(S, L))
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        l1, v1 = net.velocity(theta, X, y)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        l2, v2 = net.velocity(theta, X, y)
    finally:
        numba.set_num_threads(prev)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(l1, l2)
    bad = theta.copy()
    bad[2, 0] = np.nan
    lb, _ = net.velocity(bad, X, y)
    assert np.isnan(lb[2]) and np.isfinite(np.delete(lb, 2)).all()
