r"""Sample-and-solve DMFT of deep muP networks by alternating Monte Carlo (docs/dmft.md §3).

Each neuron of hidden layer :math:`\ell=1..L` is an independent copy of the discrete single-site
process (left-point rule, strict causality — the exact :math:`N\to\infty` limit of full-batch gradient
descent with step ``dt``, so a finite-width network run with the same ``dt`` differs only by
:math:`O(N^{-1/2})` fluctuations):

.. math::
    h^\ell[k] = u^\ell[k] + \sum_{j<k}\Big(R_A^{\ell-1}[k,j]
        + \frac{\gamma_0 dt}{P}\Phi^{\ell-1}[k,j]\,\mathrm{diag}\,\Delta[j]\Big) g^\ell[j]

    z^\ell[k] = r^\ell[k] + \sum_{j\le k} R_B^{\ell}[k,j]\,\phi(h^\ell[j])
        + \sum_{j<k}\frac{\gamma_0 dt}{P}G^{\ell+1}[k,j]\,\mathrm{diag}\,\Delta[j]\,\phi(h^\ell[j])

    g^\ell[k] = \phi'(h^\ell[k])\,z^\ell[k],\qquad u^\ell\sim GP(0,\Phi^{\ell-1}),\quad
    r^\ell\sim GP(0,G^{\ell+1})

    \Phi^\ell = \langle\phi(h^\ell)\phi(h^\ell)^\top\rangle,\quad G^\ell = \langle g^\ell g^{\ell\top}\rangle,\quad
    R_A^\ell = \langle\partial\phi(h^\ell)/\partial r^\ell\rangle,\quad
    R_B^{\ell-1} = \langle\partial g^\ell/\partial u^\ell\rangle

    f_\mu[k] = \gamma_0^{-1}\langle\partial\phi(h^L_\mu[k])/\partial r^L\rangle
        + \frac{dt}{P}\sum_{j<k}\sum_\nu\Phi^L_{\mu\nu}[k,j]\,\Delta_\nu[j]

with :math:`\Delta = y - f` on training points (test points are extra points with :math:`\Delta = 0`),
:math:`\Phi^0 = XX^\top/D`, :math:`G^{L+1}\equiv1`, :math:`R_A^0 = R_B^L = 0`
(Bordelon & Pehlevan 2022, arXiv:2205.09653, §3–4, in this project's normalisation: every memory
term carries one :math:`\gamma_0` and one :math:`1/P`).

One iteration of the map :math:`\Sigma\mapsto F(\Sigma)` (Jacobi over layers, :class:`SampledMap`): for
every layer build the memory operators from the current state, colour the fixed white noise with the
Cholesky factors of the current kernels (:mod:`~meanfield_solvers.dmft.sources`), march all samples as matrix
columns (:mod:`~meanfield_solvers.dmft.march`), estimate kernels from all samples and responses from exact
tangents on the first ``n_tangent`` samples, then the outputs. :mod:`~meanfield_solvers.dmft.iteration` damps,
continues in the horizon and checks convergence.

Two sweep orders (``sweep``):

* ``'jacobi'`` — docs/dmft.md §3.4 as written: start from the lazy solution, iterate the Jacobi map with
  damping and horizon continuation until the relative change is below ``tol`` (typically 8–10
  iterations per stage).
* ``'causal'`` (default when it fits in memory) — the first iteration is a time-ordered Gauss–Seidel sweep
  (:mod:`~meanfield_solvers.dmft.causal`) which, because the discrete system is causal, lands on the fixed
  point of the same map (same noise, same estimators) in one pass; the following Jacobi iterations
  certify it: their residual is the distance from a fixed point and must reach ``tol`` as before.
  2 iterations in total — the fewest the causal structure allows (one to solve, one to certify);
  needs all tangents in memory at once (stored lower-triangular by seed time,
  :mod:`~meanfield_solvers.dmft.triangular`). Measured (L = 2 tanh, P = 4, T = 50, S = 8000, 500
  tangent samples, 1 BLAS thread, shared 2-core machine): causal 4–6 s, certifying residual ~2e-9;
  Jacobi 48 s (54 iterations in 5 stages); the two differ by 2.5e-7 in f.
* ``'causal_subset'`` (``'auto'`` when the full sweep does not fit but a sweep with fewer tangent
  samples does) — the first iteration is the causal sweep with the largest number of tangent samples
  that fits in ``max_bytes``; its responses carry the Monte Carlo noise of that subset, so it is
  not the fixed point, only close to it on every time at once, and the Jacobi map with all the
  tangent samples (chunked) iterates from there on the full horizon, with no continuation stages.
  Measured on the issue-19 setting at 1/5 tangent size (L = 2 tanh, 8 + 8 points, T = 40, S = 4000,
  100 tangents, 25 in the sweep): 10 iterations instead of the 27 of the continued Jacobi iteration.
* ``'jacobi'`` when not even a small subset fits (``'auto'``), or asked for.

Every iteration is recorded with the reason it was needed (``info['iteration_reasons']``), the
choice of sweep with its reason (``info['sweep_reason']``), and the number of iterations beyond
the minimum of 2 (``info['extra_iterations']``).

Estimators
----------
* Kernels: sample second moments over all ``n_samples`` samples.
* Responses :math:`R_A, R_B` (``response_estimator``, a registry in :mod:`~meanfield_solvers.dmft.responses`):
  ``'probe'`` — one tangent per sample along ``probes`` fixed Rademacher directions on all samples,
  correlated with the directions (unbiased, causal, no inverse; cost ∝ (PT)² per sample against
  (PT)³ per tangent sample; docs/dmft.md §3.3(c), :mod:`~meanfield_solvers.dmft.probes`); ``'auto'``
  takes it from ``n_pts (T+1) >= 500`` on or where the exact tangents' causal sweep does not fit in
  ``max_bytes`` (measured error per second: BENCHMARKS.md, "Cheaper responses"). ``'tangent'``
  (the default and the reference) — exact forward-mode tangents with unit seeds on ``n_tangent``
  samples (docs/dmft.md §3.3(a)). Chosen because it is exactly causal and needs no inverse of the
  (numerically low-rank) kernels; the Stein estimator :math:`\langle F r^\top\rangle G^{-1}`
  amplifies noise through :math:`G^{-1}`, and any truncated pseudo-inverse followed by a causal mask converges to a wrong
  answer with a tiny residual (the 12% trap of docs/dmft.md §3.3(b)). Pathwise derivatives need
  :math:`\phi''` as a function, so relu with :math:`L\ge2` (where :math:`\phi''` is a Dirac delta and
  the pathwise estimator drops the :math:`\delta(h)z` terms) is refused.
* Output term :math:`\gamma_0^{-1}\langle\partial\phi(h^L)/\partial r^L\rangle` (``f_estimator``):
  ``'pathwise'`` — the all-ones tangent seed on all samples (default for smooth φ);
  ``'stein'`` — :math:`\gamma_0^{-1}\langle(\phi(h^L)-\phi(u^L))\,r^L\rangle` (Stein's lemma with the
  exact zero-mean control variate :math:`\phi(u^L)r^L`; exact for :math:`r^L\sim N(0,1)`, default for
  relu, valid for relu at L = 1); ``'empirical'`` — :math:`\gamma_0^{-1}\langle r^L\phi(h^L)\rangle`,
  i.e. :math:`f = \gamma_0^{-1}\langle z^L\phi(h^L)\rangle` over the samples, which makes an L = 1 solve
  fed a width-N network's own initial weights *literally* that network (docs/dmft.md §5a); its noise is
  :math:`O(1/(\gamma_0\sqrt S))`, so do not use it otherwise.

Monte Carlo error
-----------------
Batch sub-solves: the samples are split into ``error_batches`` = B contiguous blocks (tangent
samples likewise), each block is solved on its own, and the standard error of the full solve is
estimated as ``std_b(X_b) / sqrt(B)`` (with probes, each block uses its own samples' directions, so
the spread includes the probe noise; assumes the :math:`S^{-1/2}` law; the :math:`O(1/S)` bias is
not included). The relative uncertainty of that estimate is about :math:`1/\sqrt{2(B-1)}`: ±41 % at
B = 4 (independent solves then scatter up to 2.5× their quoted errors on some outputs), ±27 % at the
default B = 8. A batch is solved by one causal sweep (its exact fixed point for its own noise; the
certifying iteration is the main solve's, the batch values serve only for their spread) when the
sweep fits in memory, else by the Jacobi iteration warm-started from the full solution.
Calibration (tests/test_dmft_sampled.py): over independent seeds, the mean of
:math:`(f_a - f_b)^2/(\sigma_a^2 + \sigma_b^2)` over many outputs is near 1.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .. import gaussian
from .causal import CausalSweep
from .grid import Grid
from ..threads import blas_threads
from .iteration import IterationLog, SolveProgress, iterate, stage_horizons
from .march import PrimalMarch, SeedLayout, gram, tangent_averages
from .memory import MemoryEstimate, check_memory, estimate_memory
from .responses import get_response_estimator
from .ntk import init_kernels
from .result import DMFTResult, result_from_state
from .sources import JITTER, KernelNotPositiveDefinite, NoiseBank
from .state import DMFTState, memory_operators, outputs_from_field_term

__all__ = ["solve_dmft", "SampledMap", "check_supported", "choose_response_estimator", "response_samples"]

F_ESTIMATORS = ("pathwise", "stein", "empirical")


def check_supported(activation: str, L: int, f_estimator: str = "auto") -> str:
    """Validate the (activation, depth, output estimator) combination; return the estimator used.

    Decided by the activation's declared smoothness (:attr:`Activation.smooth`), not its name: for
    an activation whose second derivative has a Dirac part (relu) the pathwise estimators are
    biased, so only L = 1 with the Stein output term is accepted.
    """
    act = gaussian.get_activation(activation)
    if L < 1:
        raise ValueError(f"need at least one hidden layer, got L={L}")
    if not act.smooth and L >= 2:
        raise ValueError(
            f"{activation} with L >= 2 hidden layers is not supported: the response functions are estimated "
            f"by pathwise (tangent) derivatives, and {activation}'s second derivative is a Dirac delta (it has a "
            "kink), so the pathwise estimator silently drops the delta(h)*z terms of B and of dh/dr (a biased "
            "answer, docs/dmft.md §3.3). No causal, well-conditioned Stein estimator is implemented and validated. "
            "Use L = 1 (exact Stein output term), or a smooth activation (tanh, erf)."
        )
    if f_estimator == "auto":
        return "pathwise" if act.smooth else "stein"
    if f_estimator not in F_ESTIMATORS:
        raise ValueError(f"unknown f_estimator {f_estimator!r}; choose one of {F_ESTIMATORS} or 'auto'")
    if f_estimator == "pathwise" and not act.smooth:
        raise ValueError(f"the pathwise output term is biased for {activation} (phi'' is a Dirac delta); "
                         "use f_estimator='stein'")
    return f_estimator


#: ``response_estimator='auto'`` takes the probes from this many rows ``n_pts (T+1)`` on (measured crossover)
AUTO_PROBE_ROWS = 500


def choose_response_estimator(name, T, n_pts, P, L, S, n_tangent, workers=1, max_bytes=None, chunk=None):
    """``(estimator name, reason)`` for ``response_estimator=name`` (see :func:`solve_dmft`).

    ``'auto'``: the probes where ``n_pts (T+1) >= AUTO_PROBE_ROWS`` or the exact tangents' causal
    sweep does not fit in ``max_bytes``; else the exact tangents (the reference). Measured
    (BENCHMARKS.md, "Cheaper responses", whole solves with 8 error batches at S = 4000, error^2 x CPU
    seconds): the probes are 1.1x better at n_pts (T+1) = 84, 1.3-1.5x at 328 (within the +-25 % of
    single runs: the reference, and every earlier result, is kept there), 3.6-4.1x at 656 (the issue-19
    configuration, 500 tangent samples) and 2x at 816 (100 tangent samples). Where the exact sweep
    does not fit, the exact estimator would need a subset warm start and further Jacobi iterations at
    (PT)^3 cost per tangent sample, while the probes still solve in one sweep (P*T = 3200: ~85 GB for
    500 exact tangent samples against ~5 GB with probes).
    """
    if name != "auto":
        get_response_estimator(name)  # a clear error for an unknown name
        return name, "asked for"
    if L < 2:
        return "tangent", "auto: no responses at L = 1"
    rows = n_pts * (T + 1)
    if rows >= AUTO_PROBE_ROWS:
        return "probe", (f"auto: n_pts (T+1) = {rows} >= {AUTO_PROBE_ROWS}, where the probes were measured 2-4x "
                         "better per CPU second than the exact tangents (BENCHMARKS.md)")
    need = estimate_memory(T, n_pts, P, L, S, min(n_tangent, S), chunk=chunk, sweep="causal", workers=workers,
                           response="tangent").total
    if max_bytes is None or need <= max_bytes:
        return "tangent", (f"auto: the exact tangents (the reference; n_pts (T+1) = {rows} < {AUTO_PROBE_ROWS}, "
                           "where the probes were measured at most 1.5x better per CPU second)")
    return "probe", (f"auto: the exact tangents' causal sweep needs {need / 1e9:.3g} GB > max_bytes "
                     f"{max_bytes / 1e9:.3g} GB; randomised probes solve in one sweep at (PT)^2 cost per sample")


def response_samples(name, S, n_tangent, P, n_pts, T, L=2, max_bytes=None, workers=1):
    """``(estimator name, samples it uses)`` for a solve asked with ``response_estimator=name`` (what
    the config checks need for the memory estimate, before any solve)."""
    chosen, _ = choose_response_estimator(name, T, n_pts, P, L, S, n_tangent, workers, max_bytes)
    return chosen, get_response_estimator(chosen).samples(S, n_tangent)


class SampledMap:
    r"""One application of the sampled fixed-point map :math:`\Sigma\mapsto F(\Sigma)`.

    Parameters
    ----------
    activation : str
    gamma0 : float
    bank : NoiseBank (fixed white noise, ``S`` samples)
    Phi0 : (n_pts, n_pts) input kernel
    n_tangent : int, samples (the first ones) used for response tangents
    chunk : int, tangent samples per chunk
    f_estimator : 'pathwise' | 'stein' | 'empirical'
    jitter : float, absolute Cholesky jitter
    block : int, time steps per block of the march
    """

    def __init__(self, activation, gamma0, bank: NoiseBank, Phi0, n_tangent, chunk, f_estimator,
                 jitter=JITTER, block=8, workers=1, responses=None):
        self.act = gaussian.get_activation(activation)
        self.gamma0 = float(gamma0)
        self.bank = bank
        self.n_tangent = int(n_tangent)
        self.chunk = int(chunk)
        self.f_estimator = f_estimator
        self.jitter = jitter
        self.block = block
        self.workers = int(workers)
        self.responses = get_response_estimator("tangent") if responses is None else responses
        # BLAS threads of the large Gram/colouring products: all workers' cores, unless the caller
        # asked to leave BLAS alone (solve_dmft(n_threads=None) sets gemm_threads = None)
        self.gemm_threads = self.workers
        self.u1 = bank.first_layer(Phi0, jitter)
        self.timings = {"primal": 0.0, "tangent": 0.0, "sources": 0.0, "kernels": 0.0}

    def _sources(self, state: DMFTState, l):
        g, S, L = state.grid, self.bank.S, state.L
        shape = (g.n_t, g.n_pts, S)
        if l == 1:
            u = np.broadcast_to(self.u1, shape)
        else:
            u = self.bank.coloured("u", l, state.Phi[l - 1], self.jitter).reshape(shape)
        if l == L:
            r = np.broadcast_to(self.bank.rL, shape)
        else:
            r = self.bank.coloured("r", l, state.G[l + 1], self.jitter).reshape(shape)
        return u, r

    def __call__(self, state: DMFTState) -> DMFTState:
        g, L, act, tm = state.grid, state.L, self.act, self.timings
        Phi = [state.Phi[0]] + [None] * L
        G = [None] * (L + 1) + [state.G[L + 1]]
        RA = [None] * L
        RB = [None] * L
        c_term = None
        for l in range(1, L + 1):
            t0 = time.perf_counter()
            H, Z = memory_operators(state, l, self.gamma0)
            # large square-ish products: BLAS on `workers` threads (the march's small ones stay on one)
            with blas_threads(self.gemm_threads):
                u, r = self._sources(state, l)
            t1 = time.perf_counter()
            pm = PrimalMarch(act, u, r, g).run(H, Z, self.block)
            t2 = time.perf_counter()
            with blas_threads(self.gemm_threads):
                Phi[l] = gram(pm.p)
                G[l] = gram(pm.g)
            t3 = time.perf_counter()
            if L >= 2:  # the layer has response seeds (r if l < L, u if l > 1)
                avg = self.responses.jacobi(self, l, pm, H, Z, g)
                if l <= L - 1:
                    RA[l] = avg["RA"]
                if l >= 2:
                    RB[l - 1] = avg["RB"]
            if l == L:
                c_term = self._output_term(pm, u, H, Z, g)
            t4 = time.perf_counter()
            tm["sources"] += t1 - t0
            tm["primal"] += t2 - t1
            tm["kernels"] += t3 - t2
            tm["tangent"] += t4 - t3
            del pm, u, r
        f = outputs_from_field_term(c_term, Phi[L], g, state.y)
        return DMFTState(g, state.y, Phi, G, RA, RB, f)

    def _output_term(self, pm: PrimalMarch, u, H, Z, g: Grid):
        r"""(n_t, n_pts) array :math:`c = \gamma_0^{-1}\langle\partial\phi(h^L)/\partial r^L\rangle`."""
        S = self.bank.S
        if self.f_estimator == "pathwise":
            seeds = SeedLayout(g.n_t, g.n_pts, g.n_train, r_seeds=False, u_seeds=False, one_seed=True)
            one = tangent_averages(self.act, pm.h, pm.z, H, Z, g, seeds, chunk=S, block=self.block)["one"]
        elif self.f_estimator == "stein":
            one = ((pm.p - self.act.fn(u.reshape(g.n, S))) @ self.bank.rL) / S
        else:  # empirical
            one = (pm.p @ self.bank.rL) / S
        return one.reshape(g.n_t, g.n_pts) / self.gamma0


SWEEPS = ("auto", "causal", "causal_subset", "jacobi")
MIN_ITERATIONS = 2  # one causal sweep solves the causal system, one Jacobi application certifies it
MIN_SUBSET_TANGENTS = 8  # fewer tangent samples in a warm-start sweep: too noisy to be worth it


def choose_sweep(sweep, T, n_pts, P, L, S, S_tan, chunk, workers, max_bytes, responses=None, probes=1):
    """The first map of the solve: ``(sweep, reason, tangent samples of the causal sweep or None)``.

    ``'auto'``: the full causal sweep if its memory estimate fits ``max_bytes``; else the causal
    sweep on the largest number of tangent samples that fits (at least ``MIN_SUBSET_TANGENTS``) as
    a warm start of the chunked Jacobi iteration; else the Jacobi iteration with continuation.
    """
    responses = get_response_estimator("tangent") if responses is None else responses

    def causal_bytes(n):
        return estimate_memory(T, n_pts, P, L, S, n, chunk=chunk, sweep="causal", workers=workers,
                               response=responses.name, probes=probes).total

    gb = lambda b: f"{b / 1e9:.3g} GB"  # noqa: E731
    if sweep == "jacobi":
        return sweep, "asked for (sweep='jacobi')", None
    need = causal_bytes(S_tan)
    if sweep == "causal" or (sweep == "auto" and (max_bytes is None or need <= max_bytes)):
        why = "asked for" if sweep == "causal" else f"fits: {gb(need)} <= max_bytes {gb(max_bytes or np.inf)}"
        return "causal", f"one sweep solves the causal system ({why})", S_tan
    if max_bytes is None:
        raise ValueError("sweep='causal_subset' sizes its sweep to max_bytes; give max_bytes (or use 'causal')")
    if not responses.subset_sweep:  # (the probe estimator uses all samples: no smaller sweep)
        if sweep == "causal_subset":
            raise ValueError(f"sweep='causal_subset' needs the exact tangents (response_estimator='tangent'); "
                             f"the {responses.name!r} estimator's sweep uses all samples")
        return "jacobi", (f"the causal sweep needs {gb(need)} > max_bytes {gb(max_bytes)}: Jacobi iteration with "
                          "horizon continuation; raise max_bytes (limit.dmft_max_memory_gb) or lower the "
                          "samples to solve in 2 iterations"), None
    lo, hi = 0, S_tan  # largest n with causal_bytes(n) <= max_bytes (monotone in n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if causal_bytes(mid) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    short = f"the full causal sweep needs {gb(need)} > max_bytes {gb(max_bytes)}"
    if sweep == "causal_subset" and lo < 1:
        raise ValueError(f"sweep='causal_subset': {short}, and no tangent subset fits")
    if lo >= MIN_SUBSET_TANGENTS or (sweep == "causal_subset" and lo >= 1):
        return "causal_subset", (f"{short}; a sweep with {lo} tangent samples fits, then Jacobi with all (raise "
                                 f"max_bytes, limit.dmft_max_memory_gb, to solve in 2 iterations)"), lo
    return "jacobi", (f"{short}, and a sweep with {MIN_SUBSET_TANGENTS} tangent samples does not fit: "
                      f"Jacobi iteration with horizon continuation; raise max_bytes (limit.dmft_max_memory_gb) "
                      f"or lower the tangent samples to solve in 2 iterations"), None


def _batch_summary(state, log):
    """What the error estimate needs from a batch sub-solve: its equal-time outputs (a few
    (T+1, P, P) arrays), not its (n, n) two-time state, which is dropped here — eight batches'
    states and two-time copies held to the end took 10.4 GB at P = 32, T = 100 (5 times the
    solve's own order parameters)."""
    from types import SimpleNamespace

    r = result_from_state(state, log)
    return SimpleNamespace(f=r.f, loss=r.loss, K=r.K, Phi=r.Phi, G=r.G, iterations=r.iterations)


def _reporting(results, B, progress, t0, grid, b_sweep, b_reason):
    """Pass the batch results through in order (each reduced to :func:`_batch_summary` as it
    arrives), telling ``progress`` after each."""
    for b, (sb, lb) in enumerate(results):
        sb = _batch_summary(sb, lb)
        if progress is not None:
            done = time.perf_counter() - t0
            res_b = float(lb.residuals[-1]) if lb.residuals else float("nan")
            progress(SolveProgress(b + 1, 1, 1, grid.T, res_b, done, done / (b + 1) * (B - b - 1),
                                   f"error batch {b + 1}/{B}",
                                   "causal sweep of the batch" if b_sweep == "causal" else
                                   f"Jacobi iteration of the batch ({b_reason})"))
        yield sb, lb


def _sweep_only(sweep, state, grid):
    """One causal sweep, recorded as status ``'swept'`` (its residual is not measured)."""
    log = IterationLog()
    t0 = time.perf_counter()
    try:
        new = sweep(state if state.grid.n_t == grid.n_t else state.extended(grid))
    except KernelNotPositiveDefinite as e:
        log.status, log.message = "not_positive_definite", str(e)
        return state, log
    log.seconds.append(time.perf_counter() - t0)
    log.reasons.append("causal sweep of an error batch")
    log.status = "swept"
    return new, log


def _error_estimates(results, B):
    """Standard error of the full solve from B batch sub-solves: std_b / sqrt(B)."""
    def se(key):
        a = np.stack([getattr(r, key) for r in results])
        return a.std(axis=0, ddof=1) / np.sqrt(B)
    return {"f": se("f"), "loss": se("loss"), "K": se("K"), "Phi": se("Phi"), "G": se("G")}


def solve_dmft(X, y, L: int, gamma0: float, dt: float, T: int, *, activation: str = "tanh",
               X_test=None, n_samples: int | None = None, n_tangent: int = 500, tol: float = 1e-6,
               stage_tol: float | None = None, max_iter: int = 60, damping: float = 1.0,
               stages: int | None = None, seed: int = 0, jitter: float = JITTER,
               f_estimator: str = "auto", error_batches: int = 8, antithetic: bool = False,
               u1=None, rL=None, tangent_chunk: int | None = None, block: int = 8, sweep: str = "auto",
               max_bytes: float | None = 4e9, n_threads: int | None = 1, workers: int | None = None,
               response_estimator: str = "tangent", probes: int = 1,
               verbose: bool = False, progress=None) -> DMFTResult:
    r"""Solve the infinite-width DMFT of an L-hidden-layer muP network by sample-and-solve.

    Parameters
    ----------
    X : (P, D) array
        Training inputs.
    y : (P,) array
        Targets.
    L : int
        Hidden layers.
    gamma0 : float
        Feature-learning strength (≠ 0; use :func:`~meanfield_solvers.dmft.ntk.solve_ntk` for γ₀ = 0).
    dt : float
        GD step (time advanced per step).
    T : int
        Number of steps.
    activation : str
        A registered activation (one that is not smooth, as relu, only with L = 1).
    X_test : (Q, D) array, optional
        Extra points that carry no loss.
    n_samples : int, optional
        Monte Carlo samples S per layer (default 8000, or the size of ``u1``/``rL``).
    n_tangent : int
        Samples used for the response tangents (≤ n_samples; cost ∝ n_tangent T³ P³).
    tol : float
        Final relative-change tolerance. Reachable down to ~1e-8 for L ≥ 2: the map is
        deterministic, but the Cholesky factor of a numerically low-rank kernel turns rounding into
        a residual floor of ~2e-9 at jitter 1e-10 (measured); L = 1 reaches 1e-13.
    stage_tol : float, optional
        Tolerance of intermediate stages (default ``max(tol, 1e-4)``).
    max_iter : int
        Iterations per continuation stage.
    damping : float
        Initial β (halved automatically when the residual grows).
    stages : int, optional
        Continuation stages (default ``ceil(T / 12)`` for ``sweep='jacobi'``, 1 for ``'causal'``).
    seed : int
        Seed of the white noise.
    jitter : float
        Absolute Cholesky jitter (never raised silently).
    f_estimator : {'auto', 'pathwise', 'stein', 'empirical'}
        Estimator of the output (see module doc).
    error_batches : int
        B ≥ 2 batch sub-solves for the MC error (0 or 1: not estimated, NaN); default 8 (the error
        estimate is then uncertain by about ±27 %, ±41 % at B = 4).
    antithetic : bool
        Pair samples with opposite backward noise (exactly even in γ₀).
    u1 : (P+Q, S) array, optional
        Explicit static first-layer sources, with ``rL``: a network's own initial weights,
        ``u1[μ, i] = W⁰_i·x_μ/√D``.
    rL : (S,) array, optional
        Explicit readout sources, ``rL[i] = w^L_i``.
    tangent_chunk : int, optional
        Tangent samples per chunk (default: fit 512 MB).
    block : int
        Time steps per blocked GEMM of the march.
    sweep : {'auto', 'causal', 'causal_subset', 'jacobi'}
        The first map of each stage (see module doc); 'auto' takes 'causal' when its memory
        estimate fits in ``max_bytes``, else 'causal_subset' when a sweep with at least
        ``MIN_SUBSET_TANGENTS`` tangent samples fits, else 'jacobi' (recorded in ``info['sweep']``
        with ``info['sweep_reason']``).
    max_bytes : float or None
        Refuse (:class:`~meanfield_solvers.dmft.memory.DMFTMemoryError`) above this estimate.
    n_threads : int or None
        BLAS threads during the solve (default 1, see :func:`~meanfield_solvers.threads.blas_threads`;
        None leaves the BLAS setting alone).
    workers : int or None
        Tangent chunks marched at once, in threads (each with one BLAS thread). Default: the
        cores this process may use. The tangent budget (512 MB) is shared among them, so the chunk
        size, and with it the rounding of the result, depends on ``workers``: the same seed and
        the same ``workers`` give bitwise-identical results.
    response_estimator : 'tangent' | 'probe' | 'auto'
        How the responses R_A, R_B are estimated (:mod:`~meanfield_solvers.dmft.responses`): 'tangent',
        exact unit-seed tangents on ``n_tangent`` samples (the reference, cost ∝ (PT)³ per tangent
        sample); 'probe', one tangent per sample along ``probes`` fixed Rademacher directions on all
        ``n_samples`` samples (unbiased, cost ∝ (PT)² per sample; ``n_tangent`` is not used;
        docs/dmft.md §3.3(c)); 'auto' takes 'probe' from ``n_pts (T+1) >= AUTO_PROBE_ROWS`` (500) on
        or where the exact sweep does not fit in ``max_bytes``, else 'tangent'
        (:func:`choose_response_estimator`, from measured error per second). Recorded in
        ``info['response_estimator']`` with ``info['response_reason']``.
    probes : int
        Directions per sample of the 'probe' estimator (default 1).
    verbose : bool, print one line per iteration
    progress : callable, optional
        Receives a :class:`~meanfield_solvers.dmft.iteration.SolveProgress` (iteration, stage,
        residual, elapsed, estimated remaining seconds, phase ``'solve'`` or ``'error batch b/B'``)
        after every iteration of the solve and of the error batches, and once at the start
        (iteration 0, with the sweep chosen as ``reason``).

    Returns
    -------
    DMFTResult
        ``status`` is ``'converged'`` only if the final stage reached ``tol``; otherwise the numbers
        are the last iterate and ``residuals`` shows how far from a fixed point it is.
    """
    if workers is None:
        workers = usable_cores()
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    with blas_threads(n_threads):
        return _solve_dmft(**{k: v for k, v in locals().items()})


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _solve_dmft(X, y, L, gamma0, dt, T, *, activation, X_test, n_samples, n_tangent, tol, stage_tol,
                max_iter, damping, stages, seed, jitter, f_estimator, error_batches, antithetic, u1, rL,
                tangent_chunk, block, sweep, max_bytes, workers, n_threads, response_estimator, probes,
                verbose, progress):
    t_start = time.perf_counter()
    f_estimator = check_supported(activation, L, f_estimator)
    if int(probes) != probes or probes < 1:
        raise ValueError(f"probes must be a positive integer (directions per sample), got {probes!r}")
    probes = int(probes)
    if gamma0 == 0:
        raise ValueError("gamma0 = 0 is the lazy limit: use meanfield_solvers.dmft.solve_ntk")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    Xall = X if X_test is None else np.concatenate([X, np.asarray(X_test, dtype=float)], axis=0)
    P, n_pts = X.shape[0], Xall.shape[0]
    if y.shape != (P,):
        raise ValueError(f"y must have shape {(P,)}, got {y.shape}")
    if (u1 is None) != (rL is None):
        raise ValueError("give both u1 and rL (a network's first-layer fields and readout weights) "
                         "or neither")
    if u1 is not None:
        if antithetic:
            raise ValueError("antithetic sampling cannot be combined with explicit u1/rL")
        S_given = np.shape(rL)[0]
        if n_samples is not None and n_samples != S_given:
            raise ValueError(f"n_samples={n_samples} but u1/rL carry {S_given} samples")
        if L > 1:
            raise ValueError("explicit sources u1/rL are only meaningful for L = 1 (deeper layers' "
                             "sources are coloured from the kernels)")
        n_samples = S_given
    S = 8000 if n_samples is None else int(n_samples)
    n_pts_all = Xall.shape[0]
    resp_name, resp_reason = choose_response_estimator(response_estimator, T, n_pts_all, P, L, S, n_tangent,
                                                       workers, max_bytes, tangent_chunk)
    responses = get_response_estimator(resp_name)
    S_tan = responses.samples(S, n_tangent)
    if L >= 2 and S_tan < 1:
        raise ValueError("L >= 2 needs n_tangent >= 1 samples for the response functions")
    if int(T) != T or T < 1 or not dt > 0:
        raise ValueError(f"need an integer T >= 1 and dt > 0, got T={T}, dt={dt}")
    if S < 2:
        raise ValueError(f"need at least 2 samples, got {S}")
    if not jitter >= 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose one of {SWEEPS}")
    sweep_asked = sweep
    sweep, sweep_reason, S_sweep = choose_sweep(sweep, T, n_pts, P, L, S, S_tan, tangent_chunk, workers,
                                                max_bytes, responses, probes)
    if stages is None:
        stages = int(np.ceil(T / 12)) if sweep == "jacobi" else 1
    stage_tol = max(tol, 1e-4) if stage_tol is None else stage_tol

    mem = dict(response=resp_name, probes=probes)
    est = estimate_memory(T, n_pts, P, L, S, S_tan, chunk=tangent_chunk,
                          sweep="causal" if sweep == "causal" else "jacobi", workers=workers, **mem)
    if sweep == "causal_subset":  # the subset sweep, then the chunked Jacobi map with all tangents
        est_c = estimate_memory(T, n_pts, P, L, S, S_sweep, chunk=tangent_chunk, sweep="causal",
                                workers=workers, **mem)
        if est_c.total > est.total:
            est = MemoryEstimate(est_c.noise, est_c.primal, est_c.tangents, est_c.state, est.chunk)
    check_memory(est, max_bytes)
    chunk = est.chunk

    grid = Grid(T + 1, n_pts, P, float(dt))
    init = init_kernels(Xall, L, activation)
    rng = np.random.default_rng(seed)
    bank = NoiseBank(grid.n, L, S, rng, n_pts, antithetic=antithetic, u1=u1, rL=rL)
    responses.prepare(bank, grid, L, probes, seed)
    grids = [grid.with_steps(Ts) for Ts in stage_horizons(T, stages)]
    settings = dict(activation=activation, L=L, gamma0=gamma0, dt=dt, T=T, n_samples=S,
                    n_tangent=S_tan, tol=tol, stage_tol=stage_tol, max_iter=max_iter, damping=damping,
                    stages=[gg.T for gg in grids], seed=seed, jitter=jitter, f_estimator=f_estimator,
                    error_batches=error_batches, antithetic=antithetic, chunk=chunk, block=block,
                    sweep=sweep, sweep_reason=sweep_reason, sweep_tangents=S_sweep, workers=workers,
                    memory_estimate_bytes=est.total, response_estimator=resp_name,
                    response_reason=resp_reason, probes=probes)
    if progress is not None:
        progress(SolveProgress(0, 1, len(grids), grids[0].T, float("nan"), 0.0, None, "solve",
                               f"{sweep}: {sweep_reason}"))

    log = IterationLog()
    try:
        F = SampledMap(activation, gamma0, bank, init.Phi[0], S_tan, chunk, f_estimator, jitter, block, workers,
                       responses)
        if n_threads is None:
            F.gemm_threads = None
    except KernelNotPositiveDefinite as e:
        log.status, log.message = "not_positive_definite", str(e)
        state = DMFTState.lazy(init, grid, y)
        return result_from_state(state, log, settings, _nan_errors(state, L))

    def first(Fm, n_sweep, threads=workers):  # the causal sweep on the same noise (and estimators) as Fm
        if n_sweep is None:
            return None
        return CausalSweep(activation, gamma0, Fm.bank, Fm.u1, n_sweep, f_estimator, jitter, threads, responses)

    first_reason = ("causal sweep" if sweep == "causal" else
                    f"causal sweep with {S_sweep} of the {S_tan} tangent samples (warm start)")
    state0 = DMFTState.lazy(init, grids[0], y)
    state, log = iterate(F, state0, grids, tol=tol, stage_tol=stage_tol, max_iter=max_iter,
                         damping=damping, log=log, verbose=verbose, F_first=first(F, S_sweep),
                         first_reason=first_reason, first_exact=sweep == "causal", progress=progress,
                         phase="solve")
    t_main = time.perf_counter() - t_start
    settings["timings"] = dict(F.timings, main_solve=t_main)
    settings["iteration_reasons"] = list(log.reasons)
    settings["iterations_minimum"] = MIN_ITERATIONS
    settings["extra_iterations"] = max(0, log.iterations - MIN_ITERATIONS)
    if log.status == "not_converged" and log.residuals and min(log.residuals) < 1e-7:
        log.message += ("; residuals below 1e-7 stall at the rounding floor of the sampled map "
                        "(~1e-9: Cholesky of numerically low-rank kernels), so tol below ~1e-8 is "
                        "not reachable")
    if state.grid.n_t != grid.n_t:  # stopped early on a shorter stage
        state = state.extended(grid)
        stopped = log.good_horizon or 0
        log.message += (f" (solved up to horizon T={stopped}, the last stage that reached its target; later "
                        "times are the extension)")

    B = int(error_batches)
    errors = _nan_errors(state, L)
    if B >= 2 and log.status == "converged":
        if S // B < 2:
            raise ValueError(f"error_batches={B} leaves too few samples per batch (S={S})")
        if antithetic and (S // B) % 2:
            raise ValueError("antithetic sampling needs an even number of samples per error batch")
        subs, sub_status = [], []
        Sb, Sb_tan = S // B, max(1, S_tan // B)
        b_sweep, b_reason, _ = choose_sweep("jacobi" if sweep_asked == "jacobi" else "auto", T, n_pts, P, L,
                                            Sb, Sb_tan, tangent_chunk, workers, max_bytes, responses, probes)
        t_err = time.perf_counter()

        def one_batch(b):  # reads `par`, set below before any batch runs
            sub_bank = bank.subset(slice(b * Sb, (b + 1) * Sb))
            Fb = SampledMap(activation, gamma0, sub_bank, init.Phi[0], Sb_tan, chunk,
                            f_estimator, jitter, block, workers, responses)
            Fb.gemm_threads = F.gemm_threads
            if b_sweep == "causal":  # one sweep: the batch's own fixed point (certified method, see module doc)
                return _sweep_only(first(Fb, Sb_tan, 1 if par > 1 else workers), state, grid)
            return iterate(Fb, state, [grid], tol=tol, max_iter=max_iter, damping=damping, F_first=None)

        # independent sweeps: run `workers` at once (one BLAS thread each) when their memory fits
        b_bytes = estimate_memory(T, n_pts, P, L, Sb, Sb_tan, sweep="causal", workers=1, **mem).total
        par = min(workers, B)
        # the main solve's noise and solution stay alive beside the batches (4 L n^2 order parameters)
        resident = est.noise + 8 * 4 * L * grid.n ** 2
        while par > 1 and max_bytes is not None and resident + par * b_bytes > max_bytes:
            par -= 1
        if b_sweep != "causal":
            par = 1  # the Jacobi sub-solves already march their tangent chunks on `workers` threads
        settings["error_batch_workers"] = par
        if par > 1:
            from concurrent.futures import ThreadPoolExecutor

            with blas_threads(1), ThreadPoolExecutor(max_workers=par) as pool:
                batches = list(_reporting(pool.map(one_batch, range(B)), B, progress, t_err, grid, b_sweep,
                                          b_reason))
        else:
            batches = list(_reporting(map(one_batch, range(B)), B, progress, t_err, grid, b_sweep, b_reason))
        for sb, lb in batches:
            sub_status.append(lb.status)
            subs.append(sb)
        ok = [r for r, st in zip(subs, sub_status) if st in ("converged", "swept")]
        # a failed batch returns the full solution: leaving it in would shrink the spread
        errors = _error_estimates(ok, B) if len(ok) >= 2 else errors
        settings["error_batch_status"] = sub_status
        settings["error_batch_iterations"] = [r.iterations for r in subs]
        settings["error_batch_method"] = "causal sweep" if b_sweep == "causal" else "jacobi from the full solution"
        settings["timings"]["error_batches"] = time.perf_counter() - t_err
        if any(s not in ("converged", "swept") for s in sub_status):
            log.message += f"; MC-error batch sub-solves: {sub_status}"
    settings["timings"]["total"] = time.perf_counter() - t_start
    return result_from_state(state, log, settings, errors)


def _nan_errors(state, L):
    g = state.grid
    nan = lambda *s: np.full(s, np.nan)  # noqa: E731
    return {"f": nan(g.n_t, g.n_pts), "loss": nan(g.n_t), "K": nan(g.n_t, g.n_pts, g.n_pts),
            "Phi": nan(L, g.n_t, g.n_pts, g.n_pts), "G": nan(L, g.n_t, g.n_pts, g.n_pts)}
