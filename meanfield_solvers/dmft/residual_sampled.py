r"""Sampled DMFT of residual muP networks with a nonlinear activation: one causal sweep, responses kept.

Network (docs/residual.md §1): :math:`h^1 = W^0x/\sqrt D`, :math:`h^{\ell+1} = h^\ell + bW^\ell\phi(h^\ell)/\sqrt N`
(ℓ = 1..L−1), :math:`f = w\cdot\phi(h^L)/(\gamma_0N)`, every weight trained by GD at step dt with rate
:math:`\gamma_0^2N`. Discrete single-site process (docs/residual.md §5), the exact :math:`N\to\infty` limit of
that GD; one sample = one neuron's whole stream :math:`h^1..h^L, g^L..g^1`:

.. math::
    h^1[k] &= u^1 + \textstyle\sum_{j<k} M^0[k,j]\,g^1[j],\qquad
        M^0[k,j] = \tfrac{\gamma_0dt}{P}\Phi^0\Delta[j]\\
    h^{\ell+1}[k] &= h^\ell[k] + b\,u^{\ell+1}[k] + \textstyle\sum_{j<k} M^\ell[k,j]\,g^{\ell+1}[j],\qquad
        M^\ell[k,j] = b\,R_A^\ell[k,j] + \tfrac{\gamma_0b^2dt}{P}\Phi^\ell[k,j]\Delta[j]\\
    w[k] &= r^L + \tfrac{\gamma_0dt}{P}\textstyle\sum_{j<k}\Delta[j]\cdot\phi(h^L[j]),\qquad
        g^L[k] = \phi'(h^L[k])\,w[k]\\
    \xi^\ell[k] &= r^\ell[k] + \textstyle\sum_{j\le k} Z^\ell[k,j]\,\phi(h^\ell[j]),\qquad
        Z^\ell[k,j] = R_B^\ell[k,j] + [j<k]\,\tfrac{\gamma_0b\,dt}{P}G^{\ell+1}[k,j]\Delta[j]\\
    g^\ell[k] &= g^{\ell+1}[k] + b\,\phi'(h^\ell[k])\,\xi^\ell[k]\\
    f[k] &= \gamma_0^{-1}\langle\partial\phi(h^L[k])/\partial r^L\rangle
        + \tfrac{dt}{P}\textstyle\sum_{j<k}\Phi^L[k,j]\Delta[j]

with :math:`\Delta[j] = \mathrm{diag}(y - f[j])` on training points (0 on test points), sources
:math:`u^1\sim N(0,\Phi^0)` (static), :math:`u^{\ell+1}\sim GP(0,\Phi^\ell)`, :math:`r^\ell\sim GP(0,G^{\ell+1})`,
:math:`r^L\sim N(0,1)`, all independent, and the order parameters averaged over the samples:
:math:`\Phi^\ell[k,j] = \langle\phi(h^\ell[k])\phi(h^\ell[j])^\top\rangle`, :math:`G^\ell = \langle g g^\top\rangle`,
:math:`R_A^\ell[k,j] = \langle\partial\phi(h^\ell[k])/\partial r^\ell[j]\rangle` (j < k, strictly causal),
:math:`R_B^\ell[k,j] = \langle\partial g^{\ell+1}[k]/\partial u^{\ell+1}[j]\rangle` (j ≤ k: the same-step
block is nonzero for nonlinear φ, because :math:`u^{\ell+1}[k]` moves :math:`h^{\ell+1..L}[k]` and hence the
φ′ factors of :math:`g^{\ell+1}[k]`).

**One sweep is the fixed point.** Order within step k: forward ℓ = 1..L (colour :math:`u^{\ell+1}[k]` with the
next block row of the incremental Cholesky of :math:`\Phi^\ell`, whose row k is known once :math:`h^\ell[k]` is),
then f[k] and Δ[k], then backward ℓ = L..1 (:math:`r^\ell[k]` from the Cholesky row k of :math:`G^{\ell+1}`,
:math:`R_B^\ell[k,\le k]` from the tangents of :math:`g^{\ell+1}[k]`, just computed). Every order parameter is
estimated as soon as the quantities it averages exist and is never revised, so the sweep solves the
discrete equations exactly for the given white noise (the same argument as docs/dmft.md §3.4 for the plain
causal sweep); nothing is iterated.

**Responses: exact unit-seed tangents** (docs/residual.md §5). Seeds: :math:`r^\ell[j]` on training points
(a test point's :math:`r` reaches only its own g, which drives nothing) and :math:`u^{\ell+1}[j]` on all points,
ℓ = 1..L−1, j = 0..T: :math:`r_t = (L-1)(P+n)` seeds per time. Their tangents are the linearisation of the
equations above (the operators M, Z are averages, hence constants):
:math:`d h^{\ell+1}[k] = dh^\ell[k] + b\,du^{\ell+1}[k] + \sum_{j<k}M^\ell[k,j]dg^{\ell+1}[j]`,
:math:`dg^L = \phi''(h^L)w\,dh^L + \phi'(h^L)dw`,
:math:`dg^\ell = dg^{\ell+1} + b\phi''(h^\ell)\xi^\ell dh^\ell + b\phi'(h^\ell)d\xi^\ell` with
:math:`d\xi^\ell[k] = dr^\ell[k] + \sum_{j\le k}Z^\ell[k,j]\phi'(h^\ell[j])dh^\ell[j]`. A field at step k
depends only on seeds at times ≤ k, so the tangents of step k are stored for those :math:`(k+1)r_t` seeds only
(triangular storage). They run on the first ``n_tangent`` samples; the output term's tangent (seed
:math:`r^L`, one column) runs on all samples. Cost :math:`O(L\,T^3 n^2 r_t S_{tan}) = O(L^2T^3n^3S_{tan})`
(measured against L: BENCHMARKS.md); memory :func:`residual_sampled_bytes`, checked before anything large is
allocated.

Monte Carlo error: ``error_batches`` = B ≥ 2 independent sweeps on contiguous sample blocks, standard
error ``std_b / sqrt(B)`` of f, the loss, the equal-time kernels Φ, G and the NTK K (as
:mod:`~meanfield_solvers.dmft.sampled`); with B < 2 or a failed sweep no error is estimated and every ``*_err``
is NaN, with the reason in ``info['error_batch_method']``.
"""
from __future__ import annotations

import time

import numpy as np

from .. import gaussian
from .memory import DMFTMemoryError
from .ntk import train_loss
from .result import DMFTResult
from .sampled import check_supported
from .sources import JITTER, IncrementalCholesky, KernelNotPositiveDefinite, NoiseBank
from .triangular import triangular_rows

__all__ = ["solve_residual_sampled", "residual_sampled_bytes"]

_F = 8


def residual_sampled_bytes(L: int, T: int, n_pts: int, n_train: int, n_samples: int, n_tangent: int) -> float:
    r"""Estimated peak memory (bytes) of :func:`solve_residual_sampled`.

    * tangents: histories :math:`\phi'dh` and :math:`dg` of every layer, step k holding :math:`(k+1)r_t` seeds:
      :math:`2L\,n\,r_t\,(T+1)(T+2)/2\;S_{tan}` plus the current step's tangents of every layer and the
      backward temporaries, :math:`(L+4)\,n\,(T+1)r_t S_{tan}`;
    * the output tangent on all samples and the primal histories (h, φ, φ′, g per layer): :math:`(6L+2)(T+1)nS`;
    * white noise: :math:`2(L-1)(T+1)nS + 2nS`;
    * order parameters (two-time Φ, G, R_A, R_B, Cholesky factors, per layer): :math:`8L((T+1)n)^2`.
    """
    n_t = T + 1
    r_t = (L - 1) * (n_train + n_pts)
    tangents = 2 * L * n_pts * r_t * triangular_rows(n_t) * n_tangent + (L + 4) * n_pts * n_t * r_t * n_tangent
    primal = (6 * L + 2) * n_t * n_pts * n_samples
    noise = 2 * (L - 1) * n_t * n_pts * n_samples + 2 * n_pts * n_samples
    state = 8 * L * (n_t * n_pts) ** 2
    return float(_F * (tangents + primal + noise + state))


def solve_residual_sampled(X, y, L: int, branch: float, gamma0: float, dt: float, T: int, *,
                           activation: str = "tanh", X_test=None, n_samples: int = 4000, n_tangent: int = 500,
                           seed: int = 0, error_batches: int = 4, jitter: float = JITTER, u1=None, rL=None,
                           responses: bool = True, max_bytes: float | None = 4e9) -> DMFTResult:
    r"""Sampled DMFT of an L-hidden-layer residual muP network (module doc) on ``t = dt * arange(T+1)``.

    Parameters
    ----------
    X : (P, D), y : (P,), X_test : (Q, D) optional extra points without loss
    L : hidden layers (L − 1 residual blocks);  branch : multiplier b (depth-muP :math:`\beta/\sqrt L`)
    gamma0 : richness (≠ 0);  dt, T : GD step and number of steps
    activation : a registered activation with :math:`\phi\in C^2` (relu is refused for L ≥ 2: its φ″ has a
        Dirac part that pathwise tangents drop, docs/dmft.md §3.3)
    n_samples : S, samples (neurons) for the kernels;  n_tangent : samples carrying the response tangents
    seed : white-noise seed;  error_batches : B sub-sweeps for the MC error (< 2: no error, NaN)
    u1 : (n_pts, S), rL : (S,) optional explicit static sources (a network's own first-layer fields and readout)
    responses : keep R_A, R_B (False: the gradient-independence ablation, which is not the limit;
        docs/residual.md §3 — it exists so that the finite-width test can show the responses matter)
    max_bytes : refuse (:class:`~meanfield_solvers.dmft.memory.DMFTMemoryError`) before allocating when
        :func:`residual_sampled_bytes` exceeds it

    Returns
    -------
    DMFTResult
        status ``'swept'`` (one causal sweep: the discrete system's solution for this noise); ``RA``, ``RB``
        (L−1, T+1, n, T+1, n); ``f_err``/``loss_err`` from the error batches; ``info['seconds']``.
    """
    t0 = time.perf_counter()
    check_supported(activation, L, "pathwise")
    if gamma0 == 0:
        raise ValueError("gamma0 = 0 is the lazy limit: use meanfield_solvers.dmft.residual_ntk.solve_residual_ntk")
    if int(T) != T or T < 1 or not dt > 0:
        raise ValueError(f"need an integer T >= 1 and dt > 0, got T={T}, dt={dt}")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    Xall = X if X_test is None else np.concatenate([X, np.asarray(X_test, dtype=float)], axis=0)
    P, n = X.shape[0], Xall.shape[0]
    if y.shape != (P,):
        raise ValueError(f"y must have shape {(P,)}, got {y.shape}")
    if (u1 is None) != (rL is None):
        raise ValueError("give both u1 and rL or neither")
    S = int(n_samples if rL is None else np.shape(rL)[0])
    S_tan = int(min(n_tangent, S)) if L >= 2 else 0
    if not jitter >= 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    if S < 2 or (L >= 2 and S_tan < 1):
        raise ValueError(f"need n_samples >= 2 and n_tangent >= 1, got {S}, {S_tan}")
    B = int(error_batches)
    need = residual_sampled_bytes(L, T, n, P, S, S_tan)
    if max_bytes is not None and need > max_bytes:
        raise DMFTMemoryError(
            f"the sampled residual DMFT needs about {need / 1e9:.3g} GB > max_bytes {max_bytes / 1e9:.3g} GB "
            f"(L = {L}, T = {T}, {n} points, n_samples = {S}, n_tangent = {S_tan}; the tangents grow like "
            "L^2 T^2 points^2 n_tangent): lower n_tangent, T, L or the number of points, or raise max_bytes")
    Phi0 = Xall @ Xall.T / X.shape[1]
    rng = np.random.default_rng(seed)
    bank = NoiseBank((T + 1) * n, L, S, rng, n, u1=u1, rL=rL)
    u1_all = bank.first_layer(Phi0, jitter)
    act = gaussian.get_activation(activation)
    args = (act, L, float(branch), float(gamma0), float(dt), int(T), y, P, Phi0, jitter, bool(responses))
    main = _sweep(*args, bank, u1_all, S_tan)
    f = main["f"]
    Phi, G, K = _equal_time(main, L, branch, Phi0)
    nan = np.full
    err = dict(f=nan(f.shape, np.nan), loss=nan(T + 1, np.nan), Phi=nan(Phi.shape, np.nan),
               G=nan(G.shape, np.nan), K=nan(K.shape, np.nan))
    status, message, good = "swept", "", T
    err_method = "none: error_batches < 2, no Monte Carlo error estimated (the errors are NaN, not zero)"
    if main["failed"] is not None:
        k_bad, why = main["failed"]
        status, good = "not_positive_definite", k_bad - 1
        message = f"stopped at step {k_bad} (t = {k_bad * dt:g}): {why}"
        B = 0  # no error batches for a failed sweep
        err_method = "none: the sweep failed (no error batches for a failed sweep; the errors are NaN)"
    if B >= 2:
        Sb, Sb_tan = S // B, max(1, S_tan // B)
        if Sb < 2:
            raise ValueError(f"error_batches={B} leaves fewer than 2 samples per batch (S={S})")
        subs = [_sweep(*args, bank.subset(slice(b * Sb, (b + 1) * Sb)), u1_all[:, b * Sb:(b + 1) * Sb], Sb_tan)
                for b in range(B)]
        err = _batch_errors(subs, y, L, branch, Phi0)
        err_method = (f"{B} independent causal sweeps on contiguous sample blocks ({Sb} samples, {Sb_tan} tangent "
                      "samples each): standard error std_b / sqrt(B) of f, loss, Phi, G, K")
    info = dict(activation=activation, L=L, branch=float(branch), gamma0=float(gamma0), dt=dt, T=T, n_samples=S,
                n_tangent=S_tan, seed=seed, error_batches=B, jitter=jitter, memory_estimate_bytes=need,
                seeds_per_time=(L - 1) * (P + n), responses=bool(responses), seconds_main=main["seconds"],
                seconds=time.perf_counter() - t0, causality_max=main["causality_max"], good_horizon=good,
                error_batch_method=err_method)
    return DMFTResult(t=dt * np.arange(T + 1), f=f, loss=train_loss(f, y), Phi=Phi, G=G, K=K, Phi0=Phi0,
                      Phi_two_time=main["Phi2"], G_two_time=main["G2"], RA=main["RA"], RB=main["RB"],
                      f_err=err["f"], loss_err=err["loss"], K_err=err["K"], Phi_err=err["Phi"], G_err=err["G"],
                      residuals=np.zeros(0), horizons=np.zeros(0, dtype=int),
                      status=status, iterations=1, message=message, n_train=P, info=info)


def _equal_time(sweep, L, branch, Phi0):
    r"""Equal-time :math:`\Phi^\ell(t,t)`, :math:`G^\ell(t,t)` (L, T+1, n, n) and the NTK
    :math:`K = \Phi^L + b^2\sum_{\ell<L}G^{\ell+1}\odot\Phi^\ell + G^1\odot\Phi^0` (T+1, n, n) of one sweep."""
    Phi2, G2 = sweep["Phi2"], sweep["G2"]
    idx = np.arange(Phi2.shape[1])
    Phi = Phi2[:, idx, :, idx, :].transpose(1, 0, 2, 3)  # (L, Tn, n, n)
    G = G2[:, idx, :, idx, :].transpose(1, 0, 2, 3)
    b2 = float(branch) ** 2
    K = Phi[L - 1] + G[0] * Phi0[None]
    for l in range(1, L):
        K = K + b2 * G[l] * Phi[l - 1]
    return Phi, G, K


def _batch_errors(subs, y, L, branch, Phi0):
    """Monte Carlo standard errors from B independent sub-sweeps: std_b / sqrt(B) of every reported quantity.

    Every quantity (f, the training loss, the equal-time kernels and the NTK) is a function of one sweep, so its
    batch values are independent draws and their spread is a real batch error (tests/test_residual_sampled.py
    checks that the quoted kernel errors match the spread of independent solves)."""
    B = len(subs)
    vals = {"f": [], "loss": [], "Phi": [], "G": [], "K": []}
    for s in subs:
        Phi, G, K = _equal_time(s, L, branch, Phi0)
        for key, v in (("f", s["f"]), ("loss", train_loss(s["f"], y)), ("Phi", Phi), ("G", G), ("K", K)):
            vals[key].append(v)
    return {key: np.std(v, axis=0, ddof=1) / np.sqrt(B) for key, v in vals.items()}


def _sweep(act, L, b, g0, dt, T, y, P, Phi0, jitter, keep, bank: NoiseBank, u1, S_tan):
    """One causal sweep over k = 0..T (module doc). Returns f, two-time kernels, responses, timing."""
    t0 = time.perf_counter()
    S = bank.S
    n = Phi0.shape[0]
    Tn = T + 1
    nt = Tn * n
    coef = g0 * dt / P
    r_t = (L - 1) * (P + n)  # seeds per time: per block l, r^l on training points then u^{l+1} on all points
    off_r = [None] + [(l - 1) * (P + n) for l in range(1, L)]
    off_u = [None] + [(l - 1) * (P + n) + P for l in range(1, L)]
    pts = np.arange(n)

    # two-time kernels and responses as (nt, nt) matrices, block [k, j] = rows k*n.., cols j*n..
    Phi2 = np.zeros((L + 1, nt, nt))  # l = 1..L
    G2 = np.zeros((L + 1, nt, nt))
    RA = np.zeros((L, nt, nt))  # l = 1..L-1
    RB = np.zeros((L, nt, nt))
    chol_u = [None] + [IncrementalCholesky(Phi2[l], n, jitter, f"Phi^{l} (covariance of u^{l + 1})")
                       for l in range(1, L)]
    chol_r = [None] + [IncrementalCholesky(G2[l + 1], n, jitter, f"G^{l + 1} (covariance of r^{l})")
                       for l in range(1, L)]

    # primal histories per layer l = 1..L: p = phi(h), g; step k at [l, k]
    p = np.zeros((L + 1, Tn, n, S))
    g = np.zeros((L + 1, Tn, n, S))
    # tangents on the first S_tan samples, stored by seed time i from that time on (a field at step k depends on
    # seeds at times <= k only): dq[l][i][k - i] = phi'(h^l[k]) dh^l[k]/d(seeds of time i), dg likewise, each
    # (n, S_tan, r_t); the current step's tangents are (k+1, n, S_tan, r_t) arrays over the seed times
    dq = [[None] * Tn for _ in range(L + 1)]
    dg = [[None] * Tn for _ in range(L + 1)]
    tshape = (n, S_tan, r_t)
    # the output term's tangent (seed r^L) on all samples: the same recursion with one column
    oq = np.zeros((L + 1, Tn, n, S))
    og = np.zeros((L + 1, Tn, n, S))
    f = np.zeros((Tn, n))
    delta = np.zeros((Tn, n))  # Delta[j] = y - f[j] on training points, 0 on test points
    worst = 0.0

    def mem(Mrow, hist, kk):
        """sum_{j<kk} Mrow[:, block j] @ hist[j] for primal histories hist (Tn, n, S): one GEMM."""
        if kk == 0:
            return np.zeros((n, S))
        return Mrow[:, :kk * n] @ hist[:kk].reshape(kk * n, S)

    def tmem(Mrow, hist, kk, k):
        """Tangent version over the seed times i <= k: out[i] = sum_{i<=j<kk} Mrow[:, block j] @ hist[i][j - i],
        one contiguous GEMM per seed time."""
        out = np.zeros((k + 1,) + tshape)
        for i in range(min(kk, k + 1)):
            m = kk - i
            out[i] = (Mrow[:, i * n:kk * n] @ hist[i][:m].reshape(m * n, S_tan * r_t)).reshape(tshape)
        return out

    def store(hist, cur, d_l, k):
        """Append the current step's tangents ``cur`` (k+1, n, S_tan, r_t) to the seed-time histories."""
        if hist[k] is None:
            hist[k] = np.empty((Tn - k,) + tshape)
        for i in range(k + 1):
            hist[i][k - i] = cur[i] if d_l is None else d_l * cur[i]

    def kernel_row(K2, hist, k):
        rows, upto = slice(k * n, (k + 1) * n), slice(0, (k + 1) * n)
        K2[rows, upto] = hist[k] @ hist[:k + 1].reshape((k + 1) * n, S).T / S
        K2[upto, rows] = K2[rows, upto].T

    failed = None  # (step, message) of a source covariance that is not positive definite
    for k in range(Tn):
        try:
            rows, upto, past = slice(k * n, (k + 1) * n), slice(0, (k + 1) * n), slice(0, k * n)
            Dp = delta[:k].reshape(-1)  # Delta over (j < k, points)
            h, dh, oh, d = [None] * (L + 1), [None] * (L + 1), [None] * (L + 1), [None] * (L + 1)
            # ---------------- forward, l = 1..L
            M = coef * Phi0[:, None, :] * delta[None, :k, :]  # M^0[k, j] = coef Phi0 Delta[j], as (n, k n)
            M = M.reshape(n, k * n)
            h[1] = u1 + mem(M, g[1], k)
            dh[1] = tmem(M, dg[1], k, k) if S_tan else None
            oh[1] = mem(M, og[1], k)
            for l in range(1, L + 1):
                p[l, k], d[l] = act.fn(h[l]), act.d1(h[l])
                kernel_row(Phi2[l], p[l], k)
                if S_tan:
                    store(dq[l], dh[l], d[l][:, :S_tan, None], k)
                oq[l, k] = d[l] * oh[l]
                if l == L:
                    break
                if S_tan:  # RA^l[k, j<k]: mean tangent of phi(h^l[k]) on the r^l[j] seeds (training columns)
                    blockA = np.stack([dq[l][i][k - i, :, :, off_r[l]:off_r[l] + P].mean(axis=1)
                                       for i in range(k + 1)], axis=1)  # (n, k+1, P)
                    worst = max(worst, float(np.abs(blockA[:, k, :]).max()))  # r^l[k] acts after h^l[k]
                    RA4 = RA[l][rows, past].reshape(n, k, n)
                    RA4[:, :, :P] = blockA[:, :k, :]
                    RA[l][rows, past] = RA4.reshape(n, k * n)
                u = chol_u[l].append() @ bank.eps_u[l + 1][upto]
                M = (b * keep) * RA[l][rows, past] + (coef * b * b) * Phi2[l][rows, past] * Dp[None, :]
                h[l + 1] = h[l] + b * u + mem(M, g[l + 1], k)
                if S_tan:
                    dh[l + 1] = dh[l] + tmem(M, dg[l + 1], k, k)
                    dh[l + 1][k, pts, :, off_u[l] + pts] += b  # the seed u^{l+1}[k]
                oh[l + 1] = oh[l] + mem(M, og[l + 1], k)
            # ---------------- output f[k], Delta[k]
            fk = oq[L, k].mean(axis=1) / g0
            if k:
                fk = fk + (dt / P) * Phi2[L][rows, past] @ Dp
            f[k] = fk
            delta[k, :P] = y - fk[:P]
            # ---------------- backward: w, g^L, then xi^l, g^l for l = L-1..1
            w = bank.rL + coef * np.einsum("jn,jns->s", delta[:k], p[L, :k])
            ow = 1.0 + coef * np.einsum("jn,jns->s", delta[:k], oq[L, :k])
            dd = act.d2(h[L])
            g[L, k] = d[L] * w
            og[L, k] = dd * w * oh[L] + d[L] * ow
            if S_tan:
                dw = np.zeros((k + 1, 1, S_tan, r_t))
                for i in range(k):
                    dw[i, 0] = coef * np.tensordot(delta[i:k], dq[L][i][:k - i], axes=([0, 1], [0, 1]))
                dgk = (dd * w)[None, :, :S_tan, None] * dh[L] + d[L][None, :, :S_tan, None] * dw
                store(dg[L], dgk, None, k)
            kernel_row(G2[L], g[L], k)
            for l in range(L - 1, 0, -1):
                # RB^l[k, j<=k]: mean tangent of g^{l+1}[k] on the u^{l+1}[j] seeds (same step included)
                blockB = dgk[:, :, :, off_u[l]:off_u[l] + n].mean(axis=2)  # (k+1, n, n): [i, mu, nu]
                RB[l][rows, upto] = blockB.transpose(1, 0, 2).reshape(n, (k + 1) * n)
                r = chol_r[l].append() @ bank.eps_r[l][upto]
                Z = RB[l][rows, upto] * float(keep)
                Z[:, :k * n] += (coef * b) * G2[l + 1][rows, past] * Dp[None, :]
                xi = r + mem(Z, p[l], k + 1)
                dd = act.d2(h[l])
                g[l, k] = g[l + 1, k] + b * d[l] * xi
                og[l, k] = og[l + 1, k] + b * dd * xi * oh[l] + b * d[l] * mem(Z, oq[l], k + 1)
                dxi = tmem(Z, dq[l], k + 1, k)
                dxi[k, pts[:P], :, off_r[l] + pts[:P]] += 1.0  # the seed r^l[k] (training points)
                dgk = dgk + b * (dd * xi)[None, :, :S_tan, None] * dh[l] + b * d[l][None, :, :S_tan, None] * dxi
                store(dg[l], dgk, None, k)
                kernel_row(G2[l], g[l], k)
        except KernelNotPositiveDefinite as err:  # never patched: the solution stops before step k
            failed = (k, str(err))
            f[k:] = np.nan
            for K2 in (Phi2, G2):
                K2[:, k * n:, :] = np.nan
                K2[:, :, k * n:] = np.nan
            break
    Phi2 = Phi2[1:].reshape(L, Tn, n, Tn, n)
    G2 = G2[1:].reshape(L, Tn, n, Tn, n)
    return dict(f=f, Phi2=Phi2, G2=G2, RA=RA[1:].reshape(L - 1, Tn, n, Tn, n),
                RB=RB[1:].reshape(L - 1, Tn, n, Tn, n), causality_max=worst, failed=failed,
                seconds=time.perf_counter() - t0)
