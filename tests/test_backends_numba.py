"""The numba CPU backend against the numpy reference.

float64: every output within 1e-10 relative (norm-wise; measured ≤ 1e-15), and 100-step
integrations (Euler, Heun, RK4) of the population and Monte Carlo flows within 1e-10.
float32: within ``F32_TOL`` = 2e-6 relative (measured ≤ 5e-7 at these sizes: float32 inputs,
float32 arithmetic, float64 accumulation across source blocks in the pairwise kernel).
Sizes are tiny (compile time dominates; kernels are cached in NUMBA_CACHE_DIR).
"""
import numpy as np
import pytest

pytest.importorskip("numba")

from meanfield_solvers.particles import field, integrators  # noqa: E402
from meanfield_solvers.particles.backends import (  # noqa: E402
    BACKENDS,
    NumpyBackend,
    get_backend,
    resolve_backend,
)
from meanfield_solvers.particles.backends.numba_backend import NumbaBackend  # noqa: E402

F64_TOL = 1e-10
F32_TOL = 2e-6
REF = NumpyBackend()


@pytest.fixture(scope="module")
def nb():
    return NumbaBackend()


# serial_work=0 forces the parallel kernels at these tiny sizes (the default runs them serially)
PARALLEL = NumbaBackend(serial_work=0)


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def tol(dt):
    return F64_TOL if dt == np.float64 else F32_TOL


def test_registered_and_auto():
    assert "numba" in BACKENDS and "cuda" in BACKENDS
    assert get_backend("numba").name == "numba"
    name, reason = resolve_backend("auto")
    assert name in ("numba", "cuda") and reason.startswith("backend auto ->")
    assert resolve_backend("numpy") == ("numpy", "")


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("act", ["erf", "relu", "linear"])
def test_pairwise_self_cross_batched(nb, act, dt):
    rng = np.random.default_rng(1)
    # m = 300 > one source block (256): exercises the strip mining; n = 37 leaves a partial
    # row block
    w = rng.standard_normal((37, 5)).astype(dt)
    w[3] = 0.0  # a vanishing weight vector (relu's q = 0 branch)
    c = rng.standard_normal(37).astype(dt)
    src = rng.standard_normal((300, 5)).astype(dt)
    cs = rng.standard_normal(300).astype(dt)
    for args in ((w, w, c, 1.3), (w, src, cs, 0.7)):
        F0, G0 = REF.pairwise(act, *args)
        for be in (nb, PARALLEL):
            F, G = be.pairwise(act, *args)
            assert F.dtype == dt and G.dtype == dt and F.shape == F0.shape and G.shape == G0.shape
            assert rel(F, F0) <= tol(dt) and rel(G, G0) <= tol(dt)
    # batched seeds: self-interaction, and shared sources with batched weights
    wb = rng.standard_normal((3, 20, 4)).astype(dt)
    cb = rng.standard_normal((3, 20)).astype(dt)
    teacher = rng.standard_normal((2, 4)).astype(dt)
    ct = rng.standard_normal(2).astype(dt)
    for args in ((wb, wb, cb, 1.0), (wb, teacher, ct, 2.0)):
        F, G = nb.pairwise(act, *args)
        F0, G0 = REF.pairwise(act, *args)
        assert F.shape == F0.shape == (3, 20) and G.shape == G0.shape
        assert rel(F, F0) <= tol(dt) and rel(G, G0) <= tol(dt)


@pytest.mark.parametrize("act", ["erf", "relu"])
def test_pairwise_self_full_and_symmetric_paths(act):
    """Self-interaction through the full square and through the upper triangle (default)."""
    rng = np.random.default_rng(8)
    w = rng.standard_normal((2, 301, 4))  # 301: partial row block, two source blocks
    c = rng.standard_normal((2, 301))
    F0, G0 = REF.pairwise(act, w, w, c, 0.8)
    for be in (NumbaBackend(symmetric=False), NumbaBackend(symmetric=True),
               NumbaBackend(block_bytes=1)):  # block_bytes=1: too small for the symmetric path
        F, G = be.pairwise(act, w, w, c, 0.8)
        assert rel(F, F0) <= F64_TOL and rel(G, G0) <= F64_TOL


def test_pairwise_exact_diagonal_relu(nb):
    # duplicated particles: c_ij = q exactly only on i == j; the reference's convention must hold
    rng = np.random.default_rng(2)
    w = rng.standard_normal((9, 3))
    c = rng.standard_normal(9)
    F, G = nb.pairwise("relu", w, w, c)
    F0, G0 = REF.pairwise("relu", w, w, c)
    assert rel(F, F0) <= 1e-13 and rel(G, G0) <= 1e-13


def test_pairwise_unknown_activation_defers_to_reference(nb):
    w = np.ones((2, 2))
    with pytest.raises(ValueError, match="closed-form"):
        nb.pairwise("tanh", w, w, np.ones(2))


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("act", ["erf", "relu", "tanh", "linear"])
def test_mc_forward_backward(nb, act, bias, dt):
    rng = np.random.default_rng(3)
    S, M, N, d = 3, 50, 40, 6
    x = rng.standard_normal((S, M, d)).astype(dt)
    w = rng.standard_normal((S, N, d)).astype(dt)
    b = rng.standard_normal((S, N)).astype(dt) if bias else None
    a = rng.standard_normal((S, N)).astype(dt)
    r = rng.standard_normal((S, M)).astype(dt)
    # batched samples, shared samples, single network
    cases = [(x, w, b, a, r), (x[0], w, b, a, r), (x[0], w[0], None if b is None else b[0], a[0], r[0])]
    for xx, ww, bb, aa, rr in cases:
        f0 = REF.mc_forward(act, xx, ww, bb, aa, 0.3)
        g0 = REF.mc_backward(act, xx, ww, bb, rr)
        for be in (nb, PARALLEL):
            f = be.mc_forward(act, xx, ww, bb, aa, 0.3)
            assert f.shape == f0.shape and f.dtype == dt
            assert rel(f, f0) <= tol(dt)
            g = be.mc_backward(act, xx, ww, bb, rr)
            for p, q in zip(g, g0):
                if q is None:
                    assert p is None
                    continue
                assert p.shape == q.shape and p.dtype == dt
                assert rel(p, q) <= tol(dt)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("act", ["erf", "relu", "tanh", "linear"])
def test_mc_forward_backward_fused_entry(act, bias, dt):
    """mc_forward_backward = mc_forward, residual, mc_backward on all three of its paths."""
    rng = np.random.default_rng(8)
    S, M, N, d = 4, 30, 20, 5
    x = rng.standard_normal((S, M, d)).astype(dt)
    w = rng.standard_normal((S, N, d)).astype(dt)
    b = rng.standard_normal((S, N)).astype(dt) if bias else None
    a = rng.standard_normal((S, N)).astype(dt)
    y = rng.standard_normal((S, M)).astype(dt)
    paths = {"per-seed": NumbaBackend(serial_work=0), "cached": NumbaBackend(serial_work=0, tile_bytes=64),
             "streaming": NumbaBackend(cache_bytes=0), "serial": NumbaBackend()}
    for xx, yy in ((x, y), (x[0], y[0])):  # per-seed samples; samples shared by the seeds
        f0 = REF.mc_forward(act, xx, w, b, a, 0.3)
        g0 = REF.mc_backward(act, xx, w, b, yy - f0)
        for name, be in paths.items():
            for residual, targets in (("square", yy), (lambda f, yy=yy: yy - f, None)):
                out = be.mc_forward_backward(act, xx, w, b, a, 0.3, residual, targets)
                assert rel(out[0], f0) <= tol(dt), name
                assert out[4] is None
                for p, q in zip(out[1:4], g0):
                    if q is None:
                        assert p is None
                        continue
                    assert p.shape == q.shape and p.dtype == dt, name
                    assert rel(p, q) <= tol(dt), (name, residual)
            # velocity rows assembled in the kernel where the path can (= TwoLayer.assemble)
            model = field.TwoLayer(act, d, alpha=1.7, bias=bias, lr_w=0.6, lr_b=0.3)
            theta = np.concatenate([a[..., None], w] + ([b[..., None]] if bias else []), axis=-1)
            want = model.assemble(theta, *g0)
            out = be.mc_forward_backward(act, xx, w, b, a, 0.3, "square", yy, velocity=model.velocity_scales())
            got = out[4] if out[4] is not None else model.assemble(theta, *out[1:4])
            assert got.shape == theta.shape and rel(got, want) <= tol(dt), name
    with pytest.raises(ValueError, match="square"):
        NumbaBackend().mc_forward_backward(act, x, w, b, a, 0.3, "square")


def test_mc_chunking(nb):
    """Tiny tiles and blocks: many particle chunks and seed groups must give the same sums."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 30, 3))
    w = rng.standard_normal((7, 25, 3))
    a = rng.standard_normal((7, 25))
    r = rng.standard_normal((7, 30))
    small = NumbaBackend(tile_bytes=1000, block_bytes=1000, serial_work=0)
    assert rel(small.mc_forward("erf", x, w, None, a, 1.0), REF.mc_forward("erf", x, w, None, a, 1.0)) <= 1e-12
    for p, q in zip(small.mc_backward("erf", x, w, None, r), REF.mc_backward("erf", x, w, None, r)):
        if q is not None:
            assert rel(p, q) <= 1e-12


def test_activation_without_numba_code_is_refused(nb):
    """A registered activation without a numba implementation is refused (no silent fallback)."""
    from meanfield_solvers import activations

    activations.register_activation("cube", lambda z: z**3, lambda z: 3 * z**2, lambda z: 6 * z, odd=True)
    try:
        rng = np.random.default_rng(5)
        x, w, a = rng.standard_normal((6, 2)), rng.standard_normal((4, 2)), rng.standard_normal(4)
        with pytest.raises(activations.MissingImplementation, match="'cube' has no numba implementation of act_d1"):
            nb.mc_forward("cube", x, w, None, a, 1.0)
        assert REF.mc_forward("cube", x, w, None, a, 1.0).shape == (6,)
    finally:
        activations.unregister_activation("cube")


def _population(d, rng):
    tw = rng.standard_normal((2, d)) / np.sqrt(d)
    return field.GaussianPopulation(
        weights=np.array([1.0]), scales=np.array([1.0]), offsets=np.array([0.0]),
        teacher_w=tw, teacher_c=np.array([[1.0, -0.5]]), activation="erf",
    )


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4"])
def test_population_integration_100_steps(nb, integrator):
    rng = np.random.default_rng(6)
    d, N = 4, 24
    model = field.TwoLayer("erf", d)
    pop = _population(d, rng)
    theta0 = np.concatenate([rng.standard_normal((N, 1)), rng.standard_normal((N, d)) / np.sqrt(d)], axis=1)
    step = integrators.get_integrator(integrator)
    out = []
    for be in (REF, nb):
        v = lambda th, be=be: field.population_risk_velocity(model, be, th, pop)[1]  # noqa: E731
        th = theta0
        for _ in range(100):
            th = step(v, th, 0.05)
        out.append(th)
    assert np.max(np.abs(out[0] - theta0)) > 1e-3  # it moved
    assert rel(out[1], out[0]) <= F64_TOL


@pytest.mark.parametrize("integrator", ["euler", "heun", "rk4"])
def test_mc_integration_100_steps_batched(nb, integrator):
    rng = np.random.default_rng(7)
    S, d, N, M = 2, 3, 16, 40
    model = field.TwoLayer("erf", d, bias=True)
    x = rng.standard_normal((M, d))
    y = np.tanh(x @ rng.standard_normal(d))
    theta0 = rng.standard_normal((S, N, model.p))
    step = integrators.get_integrator(integrator)
    out = []
    for be in (REF, nb):
        v = lambda th, be=be: field.mc_risk_velocity(model, be, th, x, y)[1]  # noqa: E731
        th = theta0
        for _ in range(100):
            th = step(v, th, 0.05)
        out.append(th)
    assert np.max(np.abs(out[0] - theta0)) > 1e-3
    assert rel(out[1], out[0]) <= F64_TOL


def test_float32_mc_rows_have_no_float64():
    """The fused MC middles compile to pure float32 code (no float64 constant or promotion)."""
    import numba

    from meanfield_solvers.particles.backends import numba_backend as nbm

    zt = np.ones((4, 3), dtype=np.float32)
    b = np.zeros(4, dtype=np.float32)
    f = np.zeros(3, dtype=np.float32)
    fwd = numba.njit(fastmath=nbm.KFLAGS, error_model="numpy")(nbm._forward_block.py_func)
    fwd(1, zt, b, b, f)
    bwd = numba.njit(fastmath=nbm.KFLAGS, error_model="numpy")(nbm._backward_block.py_func)
    bwd(1, zt, b, f, b.copy(), b.copy(), np.empty(3, dtype=np.float32))
    for disp in (fwd, bwd):
        ir = disp.inspect_llvm(disp.signatures[0])
        native = [blk for blk in ir.split("\ndefine ")[1:] if not any(t in blk.split("\n", 1)[0] for t in ("cpython", "cfunc"))]
        leaks = [ln for blk in native for ln in blk.splitlines() if "double" in ln]
        assert not leaks, leaks[:5]
