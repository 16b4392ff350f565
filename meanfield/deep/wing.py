r"""The deep wing's run: the infinite-width limit (DMFT / deep-linear DMFT / NTK) and finite-width
muP ensembles on the same fixed set of points, recorded at the same times.

:func:`meanfield.run.run` (the one orchestrator) uses this wing whenever
:func:`meanfield.deep.checks.is_deep` holds (``model.depth >= 2`` or a deep limit method): it calls
:func:`setup`, the registered limit method (``dmft``, ``dmft_linear``, ``ntk``:
:mod:`meanfield.deep.limits`), then :func:`train`.

Points
------
DMFT works on a finite set of points. Training points: a dataset's ``X, y`` (all rows), or for a
synthetic task ``train.n_train`` points drawn once from the task (stream ``train_set``). Test points
(carry no loss; their outputs and kernels are recorded): the first ``eval.n_points`` rows of a dataset's
``X_test, y_test`` (none if absent), or ``eval.n_points`` fresh task samples (stream ``eval_points``),
or the rows of ``eval.points`` labelled by the noise-free teacher f*(x) (teacher-student tasks).
Every point-indexed array lists the P training points first, then the Q test points (``n = P + Q``).
Kernels are recorded on the first ``n_k = min(n, KERNEL_MAX_POINTS)`` of them (256; the alignment then
uses the training points among those), so that large datasets without a DMFT limit stay affordable.

Times
-----
The limit is solved on the grid ``t_k = k·limit.dt``; the networks take steps ``train.lr``. Recording
times ``t`` come from ``time.records``/``time.spacing`` snapped to the limit's grid (to ``train.lr``
when there is no limit); the networks record at the nearest step, ``t_nn``. With ``train.algorithm =
'gd'`` and ``train.lr == limit.dt`` the discrete DMFT is the exact N → ∞ limit of the networks
(docs/dmft.md §3.1): no time-discretisation error in the comparison.

Result arrays (``result.npz``)
------------------------------
Shapes: T recording times, W widths, S seeds, L layers, n = P + Q points.

==================  =====================  ====================================================================
key                 shape                  meaning
==================  =====================  ====================================================================
``t``, ``t_nn``     (T,)                   recording times of the limit / of the networks
``depth``           ()                     L
``x_train``         (P, D)                 training inputs;  ``y_train`` (P,)
``x_test``          (Q, D)                 test inputs;  ``y_test`` (Q,)
``Phi0``            (n_k, n_k)             input kernel :math:`XX^\top/D`
``risk_mf_train``   (T,)                   limit's training loss :math:`\frac1P\sum_\mu\frac12(y_\mu-f_\mu)^2`
``risk_mf``         (T,)                   the primary risk of a deep run: the same training loss
``risk_mf_test``    (T,)                   limit's loss on the test points (NaN without test points)
``risk_mf_err``     (T,)                   its Monte Carlo standard error (dmft; 0 for exact methods)
``f_mf``            (T, n)                 limit's outputs; ``f_mf_err`` (T, n) their MC standard error
``Phi_mf``          (T, L, n_k, n_k)       limit's feature kernels :math:`\Phi^\ell(t,t)`, ℓ = 1..L
``G_mf``            (T, L, n_k, n_k)       limit's gradient kernels :math:`G^\ell(t,t)`
``K_mf``            (T, n_k, n_k)          limit's NTK :math:`\sum_{\ell=0}^L G^{\ell+1}\odot\Phi^\ell`
``align_mf``        (T,)                   kernel–target alignment of ``K_mf`` (training block)
``dmft_residuals``  (iterations,)          fixed-point residual per iteration (dmft, dmft_linear)
``widths``          (W,)                   widths N
``risk_nn_train``   (W, S, T)              training loss of every network; ``risk_nn_test`` likewise
``risk_nn``         (W, S, T)              the primary risk: the same training loss
``f_nn``            (W, S, T, n)           outputs of every network
``align_nn``        (W, S, T)              alignment of every network's NTK
``Phi_nn``          (W, T, L, n_k, n_k)    seed-mean feature kernels; ``G_nn`` likewise
``K_nn``            (W, T, n_k, n_k)       seed-mean NTK
``K_dev_nn``        (W, S, T)              :math:`\lVert K_s(t)-K_\infty(t)\rVert_F/\lVert K_\infty(t)\rVert_F`
==================  =====================  ====================================================================

The names are those of every run (:mod:`meanfield.core.result`); the earlier deep names (``loss_inf``,
``f_inf``, ``Phi_inf``, ``loss_nn``, …) stay readable as aliases for one release.

Keys of the limit are absent with ``limit.method = 'none'``; keys of the networks are absent with
``train.seeds = 0``. ``summary.json`` holds ``kind = 'deep'``, the status, the limit's solver status
(``limit.status``: converged / not_converged / diverged / not_positive_definite, iterations, final
residual), timings and final metrics (``loss_inf_final``, ``loss_nn_final_mean``, ``f_rms_dev_final``
(RMS over seeds and points of :math:`f_N - f_\infty` at the last time), ``align_*``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import seeding
from ..core.backend import choose_backend
from ..core.points import points_record, read_points
from ..core.registry import Side, get_limit_method
from ..health import Health
from .checks import gamma0_of
from .network import DeepNet
from .parametrisation import make_parametrisation
from .prediction import predict_deep_fluctuations, record_deep  # registers the deep [fluctuations] check
from .observe import DeepObserver
from .optim import AdamSpec
from .train import make_step, train_ensemble

__all__ = ["DeepSetup", "setup", "train", "final_metrics", "deep_points", "KERNEL_MAX_POINTS", "COMMON_GRID"]

#: kernels are recorded on at most this many points (the first ones: training points first)
KERNEL_MAX_POINTS = 256
#: deep runs record on the limit's own step grid (the networks at their nearest step)
COMMON_GRID = False


@dataclass
class DeepSetup:
    """A prepared deep run: the config, the points, sizes, and the arrays every deep result carries."""

    cfg: object
    task: object
    X: np.ndarray
    y: np.ndarray
    Xt: np.ndarray
    yt: np.ndarray
    nk: int
    kind: str = "deep"
    arrays: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def deep_points(cfg, task):
    """``(X, y, X_test, y_test)`` of a deep run (float64; test arrays have Q = 0 rows when absent)."""
    seed = cfg.run.seed
    D = task.d
    if task.fixed_train is not None:
        X, y = task.fixed_train
        if getattr(task, "X_test", None) is not None:
            Xt, yt = task.X_test[: cfg.eval.n_points], task.y_test[: cfg.eval.n_points]
        else:
            Xt, yt = np.zeros((0, D)), np.zeros(0)
    else:
        X, y = task.sample(seeding.stream(seed, "train_set"), cfg.train.n_train)
        if cfg.eval.points:  # the user's test points, labelled by the noise-free teacher (validated)
            Xt = read_points(cfg.eval.points, D)
            yt = task.target(Xt)
        else:
            Xt, yt = task.sample(seeding.stream(seed, "eval_points"), cfg.eval.n_points)
    return tuple(np.asarray(a, dtype=np.float64) for a in (X, y, Xt, yt))


def setup(cfg, log) -> DeepSetup:
    """The points and the fixed arrays of a validated deep config."""
    from ..tasks import make_task

    m = cfg.model
    task = make_task(cfg)
    X, y, Xt, yt = deep_points(cfg, task)
    P, Q, D = X.shape[0], Xt.shape[0], X.shape[1]
    nk = min(P + Q, KERNEL_MAX_POINTS)
    Xall = np.concatenate([X, Xt])
    arrays = {"depth": np.int64(m.depth), "x_train": X, "y_train": y, "x_test": Xt, "y_test": yt,
              "Phi0": Xall[:nk] @ Xall[:nk].T / D}
    summary = {"depth": m.depth, "gamma0": gamma0_of(cfg), "parametrisation": m.parametrisation,
               "n_train": P, "n_test": Q}
    if cfg.eval.points:
        summary["eval_points"] = points_record(cfg.eval.points)
    if m.residual:
        summary["residual"] = {"branch_exponent": m.branch_exponent, "branch_scale": m.branch_scale,
                               "branch_multiplier": parametrisation_of(cfg).branch(m.depth)}
    return DeepSetup(cfg, task, X, y, Xt, yt, nk, arrays=arrays, summary=summary)


def parametrisation_of(cfg):
    """The parametrisation object of a validated deep config (``model.parametrisation`` and the residual keys)."""
    m = cfg.model
    return make_parametrisation(m.parametrisation, gamma0_of(cfg), residual=m.residual,
                                branch_exponent=m.branch_exponent, branch_scale=m.branch_scale)


def adam_spec_of(cfg):
    """Adam's constants of a config (used only when ``train.optimizer = 'adam'``)."""
    t = cfg.train
    return AdamSpec(t.adam_beta1, t.adam_beta2, t.adam_eps)


def _sampler(task, dtype):
    def sample(rng, n, batch=()):
        x, y = task.sample(rng, n, batch=batch)
        return np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype)

    return sample


def train(st: DeepSetup, grid, limit: Side | None, progress, log) -> Side:
    """Train ``train.seeds`` networks (``model.parametrisation``) of each width on the run's points."""
    cfg = st.cfg
    m = cfg.model
    L, act = m.depth, m.activation
    dtype = np.dtype(cfg.run.dtype)
    X, y, Xt, yt, nk = st.X, st.y, st.Xt, st.yt, st.nk
    n, D = X.shape[0] + Xt.shape[0], X.shape[1]
    TR = len(grid.t)
    side = Side()
    S = cfg.train.seeds
    widths = list(cfg.train.widths) if S > 0 else []
    alg, lr = cfg.train.algorithm, cfg.train.lr
    K_inf = limit.arrays.get("K_mf") if limit is not None else None
    method = get_limit_method(cfg.limit.method) if limit is not None else None
    if widths and method is not None and getattr(method, "exact_for_gd", False):
        if alg != "gd" or not np.isclose(lr, cfg.limit.dt, rtol=1e-12):
            side.messages.append(
                f"the {cfg.limit.method} limit is the exact N -> infinity limit of full-batch GD with step "
                f"limit.dt = {cfg.limit.dt}; these networks use train.algorithm = {alg!r} with lr = {lr} "
                "(differences of O(step) or SGD noise are not finite-width effects)")
            log(side.messages[-1])
    if cfg.fluctuations.predict:
        # depth 1 only (validation refuses deeper): the two-layer adjoint on the mapped particle system,
        # at the networks' own recording steps (docs/fluctuations.md, "Deep networks at L = 1")
        pred = predict_deep_fluctuations(cfg, X, y, Xt, yt, grid.steps_nn, log=log)
        record_deep(pred, cfg, side.arrays, side.summary)
        side.messages += [f"fluctuation prediction: {x}" for x in pred.labels]
    if not widths:
        return side
    backend_name, backend = choose_backend(cfg.run.backend, log)
    if L >= 2 and backend_name == "cuda":
        # the deep networks have CPU kernels only (numpy, and numba's fused step)
        log("run.backend = cuda: networks of depth >= 2 have no CUDA kernel; they train with the numba "
            "CPU backend")
        backend_name, backend = choose_backend("numba", log)
    side.summary["backend"] = backend_name
    if cfg.train.optimizer != "sgd":
        side.summary["optimizer"] = {"name": cfg.train.optimizer, "beta1": cfg.train.adam_beta1,
                                     "beta2": cfg.train.adam_beta2, "eps": cfg.train.adam_eps}
    arrays = side.arrays
    steps_nn = grid.steps_nn
    arrays["t_nn"] = grid.t_nn
    W = len(widths)
    loss_nn = np.full((W, S, TR), np.nan)
    loss_nn_test = np.full((W, S, TR), np.nan)
    f_nn = np.full((W, S, TR, n), np.nan)
    align_nn = np.full((W, S, TR), np.nan)
    K_dev = np.full((W, S, TR), np.nan)
    Phi_nn = np.full((W, TR, L, nk, nk), np.nan)
    G_nn = np.full((W, TR, L, nk, nk), np.nan)
    K_nn = np.full((W, TR, nk, nk), np.nan)
    side.summary["seconds_train"] = {}
    param = parametrisation_of(cfg)
    Xd, yd = X.astype(dtype), y.astype(dtype)
    for wi, N in enumerate(widths):
        net = DeepNet(act, D, N, L, param, backend=backend)
        rngs = [[seeding.stream(cfg.run.seed, "nn_init", N, s, l) for l in range(L + 1)] for s in range(S)]
        theta0 = net.init(rngs, dtype=dtype)
        step = make_step(net, alg, lr, train=(Xd, yd), integrator=cfg.train.integrator, batch=cfg.train.batch,
                         sampler=_sampler(st.task, dtype), rng=seeding.stream(cfg.run.seed, "nn_data", N), dtype=dtype,
                         optimizer=cfg.train.optimizer, adam=adam_spec_of(cfg))
        obs = DeepObserver(net, Xd, yd, Xt.astype(dtype), yt.astype(dtype), kernel_points=nk,
                           seed_mean_kernels=True)
        t0 = time.perf_counter()
        rec, res = train_ensemble(net, theta0, step, steps_nn, lr, obs, desc=f"N={N}", progress=progress,
                                  health=Health.of(obs, cfg.train.divergence_factor))
        side.summary["seconds_train"][str(N)] = time.perf_counter() - t0
        loss_nn[wi] = rec["risk_train"].T
        loss_nn_test[wi] = rec["risk_test"].T
        f_nn[wi] = np.moveaxis(rec["f"], 0, 1)
        align_nn[wi] = rec["align"].T
        with np.errstate(invalid="ignore"):
            Phi_nn[wi] = rec["Phi"]
            G_nn[wi] = rec["G"]
            K_nn[wi] = rec["K"].mean(axis=1)
            if K_inf is not None:
                num = np.linalg.norm(rec["K"] - K_inf[:, None], axis=(-1, -2))
                K_dev[wi] = (num / np.linalg.norm(K_inf, axis=(-1, -2))[:, None]).T
        if res.status != "completed":
            side.diverged.append({"side": f"width {N}", "status": res.status, "step": res.diverged_step,
                                  "time": res.diverged_time, "kept_step": res.kept_step, "message": res.message})
            log(res.message)
    arrays.update(widths=np.asarray(widths, dtype=np.int64), risk_nn_train=loss_nn, risk_nn_test=loss_nn_test,
                  f_nn=f_nn, align_nn=align_nn, Phi_nn=Phi_nn, G_nn=G_nn, K_nn=K_nn, risk_nn=loss_nn)
    if K_inf is not None:
        arrays["K_dev_nn"] = K_dev
    return side


def _last_finite(x):
    x = np.asarray(x, dtype=float)
    fin = x[np.isfinite(x)]
    return float(fin[-1]) if fin.size else float("nan")


def final_metrics(arrays, widths):
    """Summary numbers of a deep run (final losses, alignments, RMS deviation from the limit)."""
    m = {}
    if "risk_mf_train" in arrays:
        m["loss_inf_final"] = m["risk_mf_final"] = _last_finite(arrays["risk_mf_train"])
        m["align_inf_final"] = _last_finite(arrays["align_mf"])
    if widths:
        m["loss_nn_final_mean"] = {}
        m["align_nn_final_mean"] = {}
        if "f_mf" in arrays:
            m["f_rms_dev_final"] = {}
            m["risk_gap_sup"] = {}
        for i, N in enumerate(widths):
            ln = arrays["risk_nn_train"][i]
            key = str(N)
            with np.errstate(invalid="ignore"):
                m["loss_nn_final_mean"][key] = float(np.nanmean(ln[:, -1])) if np.any(np.isfinite(ln[:, -1])) else float("nan")
                al = arrays["align_nn"][i][:, -1]
                m["align_nn_final_mean"][key] = float(np.nanmean(al)) if np.any(np.isfinite(al)) else float("nan")
                if "f_mf" in arrays:
                    d = arrays["f_nn"][i][:, -1] - arrays["f_mf"][-1]
                    m["f_rms_dev_final"][key] = float(np.sqrt(np.mean(d * d)))
                    gap = np.abs(np.nanmean(ln, axis=0) - arrays["risk_mf_train"])
                    m["risk_gap_sup"][key] = float(np.nanmax(gap)) if np.any(np.isfinite(gap)) else float("nan")
        m["risk_nn_final_mean"] = m["loss_nn_final_mean"]
    return m
