r"""The deep limit methods, one small adapter each (registered by name in
:mod:`meanfield.core.registry`):

* ``dmft`` — the sampled DMFT of deep muP networks (:func:`meanfield_solvers.dmft.solve_dmft`; residual
  networks: the causal sweep of :mod:`meanfield_solvers.dmft.residual_sampled`);
* ``dmft_linear`` — the exact DMFT of deep linear networks (:func:`meanfield_solvers.dmft.solve_deep_linear`;
  residual networks: the one-pass solver of :mod:`meanfield_solvers.dmft.residual_linear`);
* ``ntk`` — γ₀ → 0: NNGP/NTK recursions and the kernel flow (:func:`meanfield_solvers.dmft.solve_ntk`;
  residual networks: :mod:`meanfield_solvers.dmft.residual_ntk`).

Each solves on the limit's grid ``dt * arange(T + 1)`` up to the last recording step and returns
the recorded arrays (see :mod:`meanfield.deep.wing` for the keys). The DMFT family is the exact
N → ∞ limit of full-batch GD at step dt (``exact_for_gd``), which the wing uses to warn when the
networks are trained otherwise.
"""
from __future__ import annotations

import inspect
import time

import numpy as np

from .. import checkpoint, seeding
from ..core.registry import LimitMethod, Side, register_limit_method
from ..health import first_unhealthy
from .checks import check_dmft_supported, gamma0_of, size_problems
from .observe import alignment
from .parametrisation import make_parametrisation

__all__ = ["DMFTMethod", "DMFTLinearMethod", "NTKMethod", "DeepLimitMethod", "progress_logger"]


class DeepLimitMethod(LimitMethod):
    """Shared recording of a deep limit's solution; subclasses implement :meth:`solve`."""

    family = "deep"
    exact_for_gd = False

    def solver(self):
        """The solver function whose per-iteration hook reports progress (None: no iterations)."""
        return None

    def solve(self, cfg, X, y, Xt, T, log, hooks=None) -> dict:
        """``f`` (T+1, n), ``loss`` (T+1,), ``loss_err``, ``f_err``, ``Phi``, ``G`` (T+1, L, n, n),
        ``K`` (T+1, n, n), ``residuals``, ``info`` (status, iterations, message, ...).

        ``hooks``: keyword arguments to pass to the solver (its per-iteration progress callback,
        from :func:`iteration_hooks`)."""
        raise NotImplementedError

    def run(self, st, grid, progress, log) -> Side:
        cfg = st.cfg
        P, Q, nk = st.X.shape[0], st.Xt.shape[0], st.nk
        t0 = time.perf_counter()
        T = int(grid.steps[-1])
        hooks, rep = iteration_hooks(self.solver(), self.name, progress)
        try:
            # one unit for checkpoints (meanfield.checkpoint): a resumed run reuses a solve of the same horizon
            sol = checkpoint.unit(self.name, {"T": T}, lambda: self.solve(cfg, st.X, st.y, st.Xt, T, log, hooks))
        finally:
            rep.close()
        side = Side(summary={"seconds_limit": time.perf_counter() - t0})
        info = sol["info"]
        side.summary["limit"] = dict(method=self.name, **info)
        dt = cfg.limit.dt
        bad = None  # (first step not vouched for, status, message)
        if info["status"] in ("diverged", "not_positive_definite"):
            # the solver keeps the state of its last stage that reached its target (good_horizon)
            good = info.get("good_horizon") or 0
            bad = (good + 1, "diverged", f"{self.name}: {info['status']}: {info['message']}; the solution is "
                                         f"kept up to step {good} (t = {good * dt:g}), the last solved stage")
        # the record criteria of every side (meanfield.health), on the loss at every step of the grid
        k, verdict = first_unhealthy(sol["loss"], np.arange(len(sol["loss"])), dt, cfg.train.divergence_factor,
                                     0.5 * float(np.mean(st.y ** 2)))
        if k is not None and (bad is None or k < bad[0]):
            bad = (k, verdict.status, f"{self.name}: {verdict.reason}")
        if bad is not None:
            k, status, msg = bad
            sol = _cut(sol, k)  # nothing from step k on is reported
            note = sol["info"].get("stability", "")
            side.diverged.append({"side": "limit", "status": status, "step": int(k), "time": k * dt,
                                  "kept_step": int(k) - 1, "message": msg + (f" ({note})" if note else "")})
            log(side.diverged[-1]["message"])
        elif info["status"] == "unstable":  # unstable, but the loss has not yet left the criterion's range
            side.messages.append(f"{self.name}: {info['stability']}; the loss has not yet grown past "
                                 "train.divergence_factor within time.t_max")
        elif info["status"] == "not_converged":
            side.messages.append(f"{self.name}: the fixed-point iteration did not reach limit.dmft_tol "
                                 f"(final residual {info['final_residual']:.3g}); the limit arrays are the last iterate")
            log(side.messages[-1])
        sel = grid.steps
        f_inf = sol["f"][sel]
        a = side.arrays
        a.update(
            risk_mf_train=sol["loss"][sel], risk_mf_err=np.asarray(sol["loss_err"])[sel], f_mf=f_inf,
            f_mf_err=np.asarray(sol["f_err"])[sel],
            risk_mf_test=(0.5 * np.mean((st.yt - f_inf[:, P:]) ** 2, axis=1) if Q else np.full(len(sel), np.nan)),
            Phi_mf=np.ascontiguousarray(sol["Phi"][sel][..., :nk, :nk]),
            G_mf=np.ascontiguousarray(sol["G"][sel][..., :nk, :nk]),
            K_mf=np.ascontiguousarray(sol["K"][sel][..., :nk, :nk]), dmft_residuals=sol["residuals"])
        a["align_mf"] = alignment(a["K_mf"], st.y[:nk])
        a["risk_mf"] = a["risk_mf_train"]  # the primary risk of a deep run: the training loss
        return side


def _cut(sol, k):
    """``sol`` with every time-indexed array NaN from step ``k`` on (copies; the solver's arrays stay)."""
    out = dict(sol)
    for key in ("f", "loss", "f_err", "loss_err", "Phi", "G", "K"):
        a = np.array(sol[key], dtype=float, copy=True)
        a[k:] = np.nan
        out[key] = a
    return out


def progress_logger(log, name, min_interval=5.0, clock=time.perf_counter):
    """A solver progress callback (:class:`meanfield_solvers.dmft.SolveProgress`) writing one line to
    ``log``: always the start (the sweep chosen and why) and the end of a phase, in between at most
    one line every ``min_interval`` seconds (a solve of 2 iterations says little; one of minutes
    says where it is and how long it expects to take)."""
    last = [-np.inf]
    blank = {"iteration": 0, "stage": 1, "n_stages": 1, "horizon": None, "residual": float("nan"), "elapsed": 0.0,
             "remaining": None, "phase": "solve", "reason": ""}

    def report(p):
        if isinstance(p, dict):  # a solver may report plain mappings (meanfield.core.progress accepts both)
            from types import SimpleNamespace

            p = SimpleNamespace(**{**blank, **p})
        now = clock()
        end = p.remaining == 0.0  # the phase is finished
        if p.iteration and not end and now - last[0] < min_interval:
            return
        last[0] = now
        if p.iteration == 0:
            log(f"{name}: {p.reason}")
            return
        eta = "?" if p.remaining is None else f"{p.remaining:.3g}s"
        where = (f"iteration {p.iteration} (stage {p.stage}/{p.n_stages}, T={p.horizon}) residual "
                 f"{p.residual:.2e}" if p.phase == "solve" else "done")
        log(f"{name}: {p.phase}: {where}, {p.elapsed:.3g}s elapsed, about {eta} left [{p.reason}]")

    return report


#: names a solver may give its per-iteration hook (called once per iteration with a record — a mapping
#: or a dataclass — of residual, stage, horizon, phase, ...: see
#: :func:`meanfield.core.progress.iteration_callback`); the first one in the solver's signature is used
HOOK_NAMES = ("progress", "callback", "on_iteration")


def iteration_hooks(solver, name, progress):
    """``(kwargs, reporter)``: the progress callback of a fixed-point solve, as the keyword the solver
    accepts (see :data:`HOOK_NAMES`), and the reporter to close after it. A solver without a hook
    gets no keyword (its solve then runs without iteration feedback)."""
    from ..core.progress import Reporter, iteration_callback

    if solver is None:
        return {}, Reporter()
    params = inspect.signature(solver).parameters
    key = next((k for k in HOOK_NAMES if k in params), None)
    if key is None:
        return {}, Reporter()
    cb, rep = iteration_callback(f"limit ({name})", progress)
    return {key: cb}, rep


def _chain(*callbacks):
    """One progress callback calling each of ``callbacks`` that is not None."""
    live = [c for c in callbacks if c is not None]

    def report(p):
        for c in live:
            c(p)

    return report


def _fixed_point_record(r, log, name):
    info = {"status": r.status, "iterations": int(r.iterations), "message": r.message,
            "final_residual": float(r.residuals[-1]) if len(r.residuals) else float("nan"),
            "good_horizon": r.info.get("good_horizon")}
    # why each iteration was needed and how the solve was organised (sampled DMFT only)
    for key in ("sweep", "sweep_reason", "iterations_minimum", "extra_iterations", "iteration_reasons",
                "error_batches", "error_batch_method", "timings", "response_estimator", "response_reason",
                "probes"):
        if key in r.info:
            info[key] = r.info[key]
    if r.message:
        log(f"{name}: {r.status}: {r.message}")
    return dict(f=r.f, loss=r.loss, f_err=r.f_err, loss_err=r.loss_err, Phi=np.moveaxis(r.Phi, 0, 1),
                G=np.moveaxis(r.G, 0, 1), K=r.K, residuals=np.asarray(r.residuals, dtype=float), info=info)


def _common(cfg, Xt):
    lim = cfg.limit
    return dict(X_test=Xt if Xt.shape[0] else None, tol=lim.dmft_tol, max_iter=lim.dmft_max_iter,
                damping=lim.dmft_damping, stages=lim.dmft_stages or None)


class DMFTMethod(DeepLimitMethod):
    name = "dmft"
    doc = "sampled DMFT of deep muP networks"
    exact_for_gd = True
    #: residual networks: the causal sweep with responses of meanfield_solvers/dmft/residual_sampled.py
    supports_residual = True

    def check(self, c):
        return check_dmft_supported(c) or size_problems(c)

    def solver(self):
        import meanfield_solvers.dmft as dm

        return dm.solve_dmft

    def solve(self, cfg, X, y, Xt, T, log, hooks=None):
        import meanfield_solvers.dmft as dm

        lim = cfg.limit
        noise_seed = int(seeding.stream(cfg.run.seed, "mc").integers(2**63 - 1))
        if cfg.model.residual:
            from meanfield_solvers.dmft.residual_sampled import solve_residual_sampled

            m = cfg.model
            b = make_parametrisation(m.parametrisation, gamma0_of(cfg), residual=True,
                                     branch_exponent=m.branch_exponent, branch_scale=m.branch_scale).branch(m.depth)
            log(f"{self.name}: residual network: one causal sweep with exact response tangents "
                f"({lim.dmft_tangent_samples} tangent samples, {lim.dmft_error_batches} error batches)")
            r = solve_residual_sampled(X, y, m.depth, b, gamma0_of(cfg), lim.dt, T, activation=m.activation,
                                       X_test=Xt if Xt.shape[0] else None, n_samples=lim.dmft_samples,
                                       n_tangent=lim.dmft_tangent_samples, seed=noise_seed,
                                       error_batches=lim.dmft_error_batches,
                                       max_bytes=lim.dmft_max_memory_gb * 1e9)
            return _fixed_point_record(r, log, self.name)
        r = dm.solve_dmft(X, y, cfg.model.depth, gamma0_of(cfg), lim.dt, T, activation=cfg.model.activation,
                          n_samples=lim.dmft_samples, n_tangent=lim.dmft_tangent_samples, seed=noise_seed,
                          error_batches=lim.dmft_error_batches, max_bytes=lim.dmft_max_memory_gb * 1e9,
                          response_estimator=lim.dmft_response_estimator, probes=lim.dmft_probes,
                          progress=_chain(progress_logger(log, self.name), (hooks or {}).get("progress")),
                          **_common(cfg, Xt))
        return _fixed_point_record(r, log, self.name)


class DMFTLinearMethod(DeepLimitMethod):
    name = "dmft_linear"
    doc = "exact DMFT of deep linear networks (linear activation)"
    exact_for_gd = True
    #: residual networks: the single causal pass of meanfield_solvers/dmft/residual_linear.py
    supports_residual = True

    def check(self, c):
        act = c["model"]["activation"]
        if act != "linear":
            return [f"limit.method = 'dmft_linear' is the closed-form DMFT of deep *linear* networks; "
                    f"model.activation is {act!r}. Use model.activation = 'linear' or limit.method = 'dmft'"]
        return size_problems(c)

    def solver(self):
        import meanfield_solvers.dmft as dm

        return dm.solve_deep_linear

    def solve(self, cfg, X, y, Xt, T, log, hooks=None):
        import meanfield_solvers.dmft as dm

        if cfg.model.residual:
            from meanfield_solvers.dmft.residual_linear import solve_residual_linear

            m = cfg.model
            b = make_parametrisation(m.parametrisation, gamma0_of(cfg), residual=True,
                                     branch_exponent=m.branch_exponent, branch_scale=m.branch_scale).branch(m.depth)
            r = solve_residual_linear(X, y, m.depth, b, gamma0_of(cfg), cfg.limit.dt, T,
                                      X_test=Xt if Xt.shape[0] else None,
                                      max_bytes=cfg.limit.dmft_max_memory_gb * 1e9)
            return _fixed_point_record(r, log, self.name)
        r = dm.solve_deep_linear(X, y, cfg.model.depth, gamma0_of(cfg), cfg.limit.dt, T, **_common(cfg, Xt),
                                 **(hooks or {}))
        return _fixed_point_record(r, log, self.name)


class NTKMethod(DeepLimitMethod):
    name = "ntk"
    doc = "gamma0 -> 0: NNGP/NTK recursions and kernel gradient flow"
    #: residual networks: the residual recursion of meanfield_solvers/dmft/residual_ntk.py
    supports_residual = True

    def solve(self, cfg, X, y, Xt, T, log, hooks=None):
        import meanfield_solvers.dmft as dm

        L, n = cfg.model.depth, X.shape[0] + Xt.shape[0]
        dt = cfg.limit.dt
        Xq = Xt if Xt.shape[0] else None
        if cfg.model.residual:
            from meanfield_solvers.dmft.residual_ntk import solve_residual_ntk

            m = cfg.model
            b = make_parametrisation(m.parametrisation, gamma0_of(cfg), residual=True,
                                     branch_exponent=m.branch_exponent, branch_scale=m.branch_scale).branch(L)
            r = solve_residual_ntk(X, y, L, b, dt, T, activation=m.activation, X_test=Xq)
        else:
            r = dm.solve_ntk(X, y, L, dt, T, activation=cfg.model.activation, X_test=Xq)
        ker = r.kernels
        zero = np.zeros
        info = {"status": "exact", "iterations": 0, "message": ""}
        # the Euler kernel flow multiplies each mode of the training residual by 1 - dt lambda: it is
        # stable iff dt lambda_max(K_train / P) <= 2 (docs/dmft.md §5d); beyond, the loss grows as
        # |1 - dt lambda_max|^(2k) and the run's divergence criterion stops it
        P = X.shape[0]
        lam = float(np.linalg.eigvalsh(ker.K[:P, :P] / P)[-1]) if P else 0.0
        info["dt_lambda_max"] = dt * lam
        if dt * lam > 2:
            info["status"] = "unstable"
            info["stability"] = (f"the kernel flow is unstable: limit.dt x lambda_max(K/P) = {dt * lam:.4g} > 2; "
                                 f"limit.dt < {2 / lam:.4g} is stable")
            info["message"] = info["stability"]
            log(f"{self.name}: {info['stability']}")
        return dict(f=r.f, loss=r.loss, f_err=zero(r.f.shape), loss_err=zero(r.loss.shape),
                    Phi=np.broadcast_to(ker.Phi[1:L + 1], (T + 1, L, n, n)),
                    G=np.broadcast_to(ker.G[1:L + 1], (T + 1, L, n, n)),
                    K=np.broadcast_to(ker.K, (T + 1, n, n)), residuals=np.zeros(0), info=info)


for _m in (DMFTMethod(), DMFTLinearMethod(), NTKMethod()):
    register_limit_method(_m)
