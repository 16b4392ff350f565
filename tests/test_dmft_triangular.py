"""The causal sweep's lower-triangular tangents (meanfield_solvers/dmft/triangular.py) against the dense
exact tangents of march.py, and the solver's progress hook."""
import numpy as np
import pytest

from meanfield_solvers import gaussian
from meanfield_solvers.dmft.grid import Grid
from meanfield_solvers.dmft.iteration import remaining_estimate
from meanfield_solvers.dmft.march import SeedLayout, TangentMarch
from meanfield_solvers.dmft.triangular import TriangularTangents, triangular_rows


@pytest.mark.parametrize("activation, r_seeds, u_seeds", [("tanh", True, True), ("erf", True, False),
                                                          ("tanh", False, True)])
def test_triangular_tangents_equal_the_dense_march(activation, r_seeds, u_seeds):
    """Same random memory operators, same primal histories: stepping the seed-time groups gives the
    per-sample tangents of the dense forward-mode march (exact tangents, docs/dmft.md §3.3) to rounding,
    and every group's history before its seed time is not stored (it is zero in the dense march)."""
    rng = np.random.default_rng(0)
    act = gaussian.get_activation(activation)
    g = Grid(7, 3, 2, 0.1)
    n, c = g.n, 5
    H = 0.3 * rng.standard_normal((n, n)) * g.strict_mask()
    Z = 0.3 * rng.standard_normal((n, n)) * (g.strict_mask() + np.kron(np.eye(g.n_t), np.ones((3, 3))))
    h, z = rng.standard_normal((n, c)), rng.standard_normal((n, c))
    seeds = SeedLayout(g.n_t, g.n_pts, g.n_train, r_seeds, u_seeds, one_seed=False)
    dense = TangentMarch(act, h, z, seeds, g).run(H, Z, block=3)
    tri = TriangularTangents(act, h, z, seeds.nr, seeds.nu, g)
    for k in range(g.n_t):
        tri.step_h(k, H[g.rows(k), :k * g.n_pts])
        tri.step_z(k, Z[g.rows(k), :(k + 1) * g.n_pts])
    P, per = g.n_pts, seeds.per_t
    Dp = dense.dp.reshape(g.n_t, P, g.n_t, per, c)  # [k, mu, s, seed, sample]
    Dg = dense.dg.reshape(g.n_t, P, g.n_t, per, c)
    for s in range(g.n_t):
        tp = tri.dp[s].reshape(g.n_t - s, P, per, c)
        tg = tri.dg[s].reshape(g.n_t - s, P, per, c)
        np.testing.assert_allclose(tp, Dp[s:, :, s], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(tg, Dg[s:, :, s], rtol=1e-12, atol=1e-13)
        assert not np.any(Dp[:s, :, s]) and not np.any(Dg[:s, :, s])  # what the triangle leaves out
    assert np.max(np.abs(Dg)) > 0.5
    assert sum(a.shape[0] for a in tri.dp) == triangular_rows(g.n_t) * P
    # the responses read from the groups are the dense march's sample means
    k = g.n_t - 1
    if seeds.nr:
        np.testing.assert_allclose(tri.response_rows(tri.dp, k, "r"), Dp[k, :, :, :seeds.nr].mean(-1), atol=1e-13)
    if seeds.nu:
        np.testing.assert_allclose(tri.response_rows(tri.dg, k, "u"), Dg[k, :, :, seeds.nr:].mean(-1), atol=1e-13)


def test_remaining_estimate_extrapolates_a_geometric_residual():
    """Residuals 10^-k at 2 s per iteration, target 1e-6 after 1e-3: ceil(log(1e-3)/log(0.1)) = 3 more
    iterations, 6 s; after a causal sweep one certification (the last iteration's time); None without
    a basis for a guess."""
    res = [1.0, 1e-1, 1e-2, 1e-3]
    assert remaining_estimate(res, [2.0] * 4, 1e-6) == pytest.approx(6.0)
    assert remaining_estimate(res, [2.0] * 4, 1e-6, stage_costs_left=10.0) == pytest.approx(16.0)
    assert remaining_estimate([1.0], [3.0], 1e-6, certify_next=True) == pytest.approx(3.0)
    assert remaining_estimate([1.0], [3.0], 1e-6) is None and remaining_estimate([], [], 1e-6) is None


def test_progress_hook_sees_every_iteration_and_the_error_batches():
    from meanfield_solvers.dmft import solve_dmft

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((3, 4)), np.array([1.0, -1.0, 0.5])
    seen = []
    r = solve_dmft(X, y, 2, 1.0, 0.2, 8, n_samples=400, n_tangent=16, error_batches=4, progress=seen.append)
    solve = [p for p in seen if p.phase == "solve"]
    assert [p.iteration for p in solve] == list(range(r.iterations + 1))  # the start, then each iteration
    assert solve[0].reason.startswith("causal: ") and np.isnan(solve[0].residual)
    np.testing.assert_array_equal([p.residual for p in solve[1:]], r.residuals)
    assert [p.reason for p in solve[1:]] == r.info["iteration_reasons"]
    assert solve[-1].remaining == 0.0 and all(a.elapsed <= b.elapsed for a, b in zip(solve, solve[1:]))
    batches = [p for p in seen if p.phase.startswith("error batch")]
    assert [p.phase for p in batches] == [f"error batch {b}/4" for b in range(1, 5)]
    assert batches[-1].remaining == 0.0
    # a hook may stop the solve: its exception propagates
    with pytest.raises(KeyboardInterrupt):
        solve_dmft(X, y, 2, 1.0, 0.2, 8, n_samples=400, n_tangent=16, error_batches=0,
                   progress=lambda p: (_ for _ in ()).throw(KeyboardInterrupt) if p.iteration == 1 else None)


def test_sweep_and_error_batches_on_threads_give_identical_bits():
    """The sweep's seed-time groups split over threads, and the error batches run side by side: every
    group's and batch's arithmetic is the same whatever the split, so 1 and 3 workers agree bit for bit
    (the certifying Jacobi map is not compared: its Gram products run on `workers` BLAS threads)."""
    from meanfield_solvers.dmft import solve_dmft
    from meanfield_solvers.dmft.causal import CausalSweep
    from meanfield_solvers.dmft.grid import Grid
    from meanfield_solvers.dmft.ntk import init_kernels
    from meanfield_solvers.dmft.sources import NoiseBank
    from meanfield_solvers.dmft.state import DMFTState

    rng = np.random.default_rng(2)
    X, y, Xt = rng.standard_normal((3, 4)), np.array([1.0, -1.0, 0.5]), rng.standard_normal((2, 4))
    L, g = 3, Grid(13, 5, 3, 0.2)
    init = init_kernels(np.concatenate([X, Xt]), L, "tanh")
    bank = NoiseBank(g.n, L, 300, np.random.default_rng(4), g.n_pts)
    u1 = bank.first_layer(init.Phi[0], 1e-10)
    s0 = DMFTState.lazy(init, g, y)
    one, three = (CausalSweep("tanh", 1.0, bank, u1, 24, "pathwise", workers=w)(s0) for w in (1, 3))
    for l in range(1, L + 1):
        np.testing.assert_array_equal(one.Phi[l], three.Phi[l])
        np.testing.assert_array_equal(one.G[l], three.G[l])
    for l in range(1, L):
        np.testing.assert_array_equal(one.RA[l], three.RA[l])
        np.testing.assert_array_equal(one.RB[l], three.RB[l])
    np.testing.assert_array_equal(one.f, three.f)
    assert np.max(np.abs(one.RB[1])) > 0.01
    kw = dict(n_samples=480, n_tangent=24, error_batches=4, sweep="causal", X_test=Xt)
    a = solve_dmft(X, y, L, 1.0, 0.2, 12, workers=1, **kw)
    b = solve_dmft(X, y, L, 1.0, 0.2, 12, workers=3, **kw)
    assert a.info["error_batch_workers"] == 1 and b.info["error_batch_workers"] == 3
    for key in ("f_err", "loss_err", "K_err", "Phi_err", "G_err"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
