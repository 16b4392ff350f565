r"""The deep limit methods, one small adapter each (registered by name in
:mod:`meanfield.core.registry`):

* ``dmft`` — the sampled DMFT of deep muP networks (:func:`meanfield_solvers.dmft.solve_dmft`);
* ``dmft_linear`` — the exact DMFT of deep linear networks (:func:`meanfield_solvers.dmft.solve_deep_linear`);
* ``ntk`` — γ₀ → 0: NNGP/NTK recursions and the kernel flow (:func:`meanfield_solvers.dmft.solve_ntk`).

Each solves on the limit's grid ``dt * arange(T + 1)`` up to the last recording step and returns
the recorded arrays (see :mod:`meanfield.deep.wing` for the keys). The DMFT family is the exact
N → ∞ limit of full-batch GD at step dt (``exact_for_gd``), which the wing uses to warn when the
networks are trained otherwise.
"""
from __future__ import annotations

import inspect
import time

import numpy as np

from .. import seeding
from ..core.registry import LimitMethod, Side, register_limit_method
from .checks import check_dmft_supported, gamma0_of, size_problems
from .observe import alignment

__all__ = ["DMFTMethod", "DMFTLinearMethod", "NTKMethod", "DeepLimitMethod"]


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
        hooks, rep = iteration_hooks(self.solver(), self.name, progress)
        try:
            sol = self.solve(cfg, st.X, st.y, st.Xt, int(grid.steps[-1]), log, hooks)
        finally:
            rep.close()
        side = Side(summary={"seconds_limit": time.perf_counter() - t0})
        info = sol["info"]
        side.summary["limit"] = dict(method=self.name, **info)
        if info["status"] in ("diverged", "not_positive_definite"):
            side.diverged.append({"side": "limit", "step": None, "time": None,
                                  "message": f"{self.name}: {info['status']}: {info['message']}"})
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


def _fixed_point_record(r, log, name):
    info = {"status": r.status, "iterations": int(r.iterations), "message": r.message,
            "final_residual": float(r.residuals[-1]) if len(r.residuals) else float("nan")}
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

    def check(self, c):
        return check_dmft_supported(c) or size_problems(c)

    def solver(self):
        import meanfield_solvers.dmft as dm

        return dm.solve_dmft

    def solve(self, cfg, X, y, Xt, T, log, hooks=None):
        import meanfield_solvers.dmft as dm

        lim = cfg.limit
        noise_seed = int(seeding.stream(cfg.run.seed, "mc").integers(2**63 - 1))
        r = dm.solve_dmft(X, y, cfg.model.depth, gamma0_of(cfg), lim.dt, T, activation=cfg.model.activation,
                          n_samples=lim.dmft_samples, n_tangent=lim.dmft_tangent_samples, seed=noise_seed,
                          error_batches=lim.dmft_error_batches, max_bytes=lim.dmft_max_memory_gb * 1e9,
                          **_common(cfg, Xt), **(hooks or {}))
        return _fixed_point_record(r, log, self.name)


class DMFTLinearMethod(DeepLimitMethod):
    name = "dmft_linear"
    doc = "exact DMFT of deep linear networks (linear activation)"
    exact_for_gd = True

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

        r = dm.solve_deep_linear(X, y, cfg.model.depth, gamma0_of(cfg), cfg.limit.dt, T, **_common(cfg, Xt),
                                 **(hooks or {}))
        return _fixed_point_record(r, log, self.name)


class NTKMethod(DeepLimitMethod):
    name = "ntk"
    doc = "gamma0 -> 0: NNGP/NTK recursions and kernel gradient flow"

    def solve(self, cfg, X, y, Xt, T, log, hooks=None):
        import meanfield_solvers.dmft as dm

        L, n = cfg.model.depth, X.shape[0] + Xt.shape[0]
        r = dm.solve_ntk(X, y, L, cfg.limit.dt, T, activation=cfg.model.activation,
                         X_test=Xt if Xt.shape[0] else None)
        ker = r.kernels
        zero = np.zeros
        return dict(f=r.f, loss=r.loss, f_err=zero(r.f.shape), loss_err=zero(r.loss.shape),
                    Phi=np.broadcast_to(ker.Phi[1:L + 1], (T + 1, L, n, n)),
                    G=np.broadcast_to(ker.G[1:L + 1], (T + 1, L, n, n)),
                    K=np.broadcast_to(ker.K, (T + 1, n, n)), residuals=np.zeros(0),
                    info={"status": "exact", "iterations": 0, "message": ""})


for _m in (DMFTMethod(), DMFTLinearMethod(), NTKMethod()):
    register_limit_method(_m)
