r"""Config validation of deep runs (called by :func:`meanfield.config.from_dict` for every config).

A config is a *deep run* when ``model.depth >= 2`` or ``limit.method`` is one of ``dmft``,
``dmft_linear``, ``ntk``; :func:`meanfield.run.run` then hands it to :mod:`meanfield.deep.run`.
Depth-1 configs with ``limit.method = 'particles'`` or ``'none'`` stay on the two-layer path, unchanged.

``model.alpha`` and ``model.gamma0`` are one knob, :math:`\alpha = 1/\gamma_0`: ``gamma0 = "auto"``
means :math:`1/\alpha`; a numeric ``gamma0`` sets ``alpha = 1/gamma0`` in the resolved config (so a
stored config round-trips), and giving both explicitly with :math:`\alpha\gamma_0\ne1` is refused.
"""
from __future__ import annotations

import math
import os

__all__ = ["is_deep", "gamma0_of", "check_deep", "point_counts", "check_dmft_supported", "size_problems",
           "parametrisation_problems", "optimizer_problems"]

# two-layer-only model options and the value a deep muP network implies for each
_TWO_LAYER_ONLY = {
    "bias": (False, "deep networks have no biases"),
    "a_init": ("gaussian", "every weight, the readout included, is drawn N(0,1)"),
    "a_std": (1.0, "every weight, the readout included, is drawn N(0,1)"),
    "w_std": (1.0, "every weight is drawn N(0,1) and scaled by 1/sqrt(fan-in) in the forward pass"),
    "b_std": (0.0, "deep networks have no biases"),
    "train_a": (True, "every layer is trained"),
    "lr_w": (1.0, "learning rates come from model.parametrisation (muP: gamma0^2 N on every weight; at depth 1 "
                  "this is the two-layer lr_w = 1/D)"),
    "antithetic": (False, "the deep initialisation is plain iid"),
}


def _get(c, sec, key):
    return c[sec][key] if isinstance(c, dict) else getattr(getattr(c, sec), key)


def is_deep(c) -> bool:
    """Whether a (resolved) config dict or :class:`~meanfield.config.Config` is a deep run."""
    from ..core.registry import LIMIT_METHODS

    method = LIMIT_METHODS.get(_get(c, "limit", "method"))
    return _get(c, "model", "depth") >= 2 or (method is not None and method.family == "deep")


def gamma0_of(c) -> float:
    r""":math:`\gamma_0` of a config (``"auto"`` resolves to ``1/alpha``)."""
    g = _get(c, "model", "gamma0")
    return 1.0 / _get(c, "model", "alpha") if g == "auto" else float(g)


def point_counts(c):
    """``(P, Q)``: training and test points of a deep run (reads a dataset's array shapes)."""
    task, train, ev = c["task"], c["train"], c["eval"]
    if task["kind"] != "dataset":
        return int(train["n_train"]), int(ev["n_points"])
    import numpy as np

    with np.load(task["path"], allow_pickle=False) as z:
        P = int(z["X"].shape[0])
        Q = min(int(ev["n_points"]), int(z["X_test"].shape[0])) if "X_test" in z.files else 0
    return P, Q


def _register():
    from ..core.registry import register_config_check

    register_config_check(check_deep)


def check_deep(c: dict, given: dict) -> list:
    """Problems of the deep-run options of the resolved config dict ``c`` (may set ``model.alpha``)."""
    p = []
    model, limit, train, task = c["model"], c["limit"], c["train"], c["task"]
    # ---- alpha and gamma0: one knob
    if model["gamma0"] != "auto":
        g0 = float(model["gamma0"])
        explicit_alpha = isinstance(given.get("model"), dict) and "alpha" in given["model"]
        if explicit_alpha and not math.isclose(model["alpha"] * g0, 1.0, rel_tol=1e-12):
            p.append(f"model.alpha = {model['alpha']!r} and model.gamma0 = {g0!r} conflict: they are one knob, "
                     f"alpha = 1/gamma0 (here 1/gamma0 = {1 / g0:.6g}); set only one of them")
        else:
            model["alpha"] = 1.0 / g0
    method, L, act = limit["method"], model["depth"], model["activation"]
    if not is_deep(c):
        if train["algorithm"] == "flow":
            p.append("train.algorithm = 'flow' is implemented for deep runs only (model.depth >= 2 or limit.method "
                     "in 'dmft', 'dmft_linear', 'ntk'); two-layer runs use 'gd' (or limit.integrator for the limit)")
        if model["parametrisation"] != "mup":
            p.append(f"model.parametrisation = {model['parametrisation']!r} applies to the built-in deep network; this "
                     f"is a two-layer run (model.depth = 1, limit.method = {method!r}), whose scaling is set by "
                     "model.alpha: set model.parametrisation = 'mup', or use a deep limit method (ntk) or depth >= 2")
        if model["residual"]:
            p.append("model.residual = true needs residual blocks: set model.depth >= 2")
        if train["optimizer"] != "sgd":
            p.append(f"train.optimizer = {train['optimizer']!r} trains the built-in deep networks (model.depth >= 2, "
                     "or a deep limit method); two-layer runs take the plain step: set train.optimizer = 'sgd'")
        return p
    p += parametrisation_problems(c)
    p += optimizer_problems(c)
    # ---- deep runs (the limit method's own problems come from its adapter, meanfield.deep.limits)
    if model["kind"] != "network":
        p.append(f"model.kind = {model['kind']!r} is a particle model; deep runs (model.depth >= 2 or a deep limit "
                 "method) are built-in muP networks: set model.kind = 'network'")
    if task["loss"] != "square":
        p.append(f"task.loss = {task['loss']!r}: deep runs (and their DMFT) use the square loss "
                 "(1/P) sum 1/2 (y - f)^2; set task.loss = 'square'")
    if train["algorithm"] == "population_gd":
        p.append("train.algorithm = 'population_gd' needs closed-form population expectations (two-layer only); "
                 "deep runs train on a fixed set of P points: use 'gd' (what the DMFT describes), 'flow', 'sgd' "
                 "or 'online_sgd'")
    for key, (want, why) in _TWO_LAYER_ONLY.items():
        if model[key] != want:
            p.append(f"model.{key} = {model[key]!r} is a two-layer option; deep runs need {want!r} ({why})")
    if train["coupling"] is True:
        p.append("train.coupling = true is a two-layer (particles) option; deep networks draw their own weights. "
                 "Set train.coupling = 'auto' or false")
    return p


def parametrisation_problems(c) -> list:
    """Whether ``model.parametrisation`` admits ``limit.method`` and the residual options fit the method and depth.

    A parametrisation declares the limit methods whose limit it has
    (:attr:`meanfield.deep.parametrisation.Parametrisation.limit_methods`); a deep limit method
    declares whether it solves residual networks (``supports_residual``).
    """
    from ..core.registry import LIMIT_METHODS
    from .parametrisation import get_parametrisation_class

    model, method = c["model"], c["limit"]["method"]
    p = []
    try:
        cls = get_parametrisation_class(model["parametrisation"])
    except ValueError:
        return p  # reported by the schema's choices
    if method != "none" and method not in cls.limit_methods:
        admits = ", ".join(repr(m) for m in cls.limit_methods) or "none"
        p.append(f"limit.method = {method!r} is not a limit of model.parametrisation = {cls.name!r} (it admits: "
                 f"{admits}); set limit.method to one of those or 'none', or choose another model.parametrisation "
                 "(mup: dmft, dmft_linear, ntk; ntk: ntk; standard: none)")
    if model["residual"]:
        if model["depth"] < 2:
            p.append("model.residual = true needs residual blocks: set model.depth >= 2")
        m = LIMIT_METHODS.get(method)
        if m is not None and not getattr(m, "supports_residual", False):
            takers = sorted(n for n, k in LIMIT_METHODS.items() if getattr(k, "supports_residual", False))
            p.append(f"model.residual = true: limit.method = {method!r} has no residual version; use one of "
                     f"{takers + ['none']} or set model.residual = false")
    elif (model["branch_exponent"], model["branch_scale"]) != (0.5, 1.0):
        p.append("model.branch_exponent and model.branch_scale set the residual branches: they need "
                 "model.residual = true")
    return p


def optimizer_problems(c) -> list:
    """``train.optimizer = 'adam'`` is a step rule: not for ``flow``, and no limit method solves it."""
    train, method = c["train"], c["limit"]["method"]
    if train["optimizer"] == "sgd":
        return []
    p = []
    if train["algorithm"] == "flow":
        p.append("train.optimizer = 'adam' is a step rule; train.algorithm = 'flow' integrates the gradient flow. "
                 "Use train.algorithm = 'gd' (or 'sgd', 'online_sgd') with Adam, or train.optimizer = 'sgd'")
    if method != "none" and train["seeds"] > 0:
        p.append(f"train.optimizer = 'adam': limit.method = {method!r} solves gradient descent, not Adam, so the "
                 "networks would be compared with the limit of another dynamics. Set limit.method = 'none' (or "
                 "train.optimizer = 'sgd')")
    return p


def check_dmft_supported(c) -> list:
    """Whether the sampled DMFT covers this activation at this depth (one problem, or none)."""
    act, L = c["model"]["activation"], c["model"]["depth"]
    try:
        from meanfield_solvers.dmft import check_supported

        check_supported(act, L)
    except ImportError as e:  # pragma: no cover - solver not installed
        return [f"limit.method = 'dmft' is not available in this installation ({e})"]
    except ValueError as e:
        return [f"limit.method = 'dmft' with model.activation = {act!r} at model.depth = {L}: {e}"]
    return []


def size_problems(c) -> list:
    """The estimated peak memory of a dmft / dmft_linear solve against ``limit.dmft_max_memory_gb``."""
    limit, model, task = c["limit"], c["model"], c["task"]
    if task["kind"] == "dataset" and not os.path.isfile(task["path"]):
        return []  # the dataset problem is already reported
    p = []
    try:
        P, Q = point_counts(c)
    except Exception as e:  # noqa: BLE001 - reported by the dataset checks
        return [f"task.path: cannot read the point counts ({e})"]
    T = int(round(c["time"]["t_max"] / limit["dt"]))
    n = (T + 1) * (P + Q)
    max_bytes = limit["dmft_max_memory_gb"] * 1e9
    if limit["method"] == "dmft":
        S, B = limit["dmft_samples"], limit["dmft_error_batches"]
        S_tan = min(limit["dmft_tangent_samples"], S)
        resp = limit.get("dmft_response_estimator", "auto")
        if model["residual"] and resp == "probe":
            p.append("limit.dmft_response_estimator = 'probe': the sampled residual DMFT estimates its responses by "
                     "exact tangents only; set it to 'tangent' or 'auto' (or model.residual = false)")
            resp = "tangent"
        if B >= 2 and (S // B < 2 or (model["depth"] >= 2 and S_tan // B < 1)):
            p.append(f"limit.dmft_error_batches = {B} leaves too few samples per batch (dmft_samples = {S}, "
                     f"dmft_tangent_samples = {S_tan}); lower it or raise the samples")
        try:
            if model["residual"]:  # the causal sweep of meanfield_solvers/dmft/residual_sampled.py
                from meanfield_solvers.dmft.residual_sampled import residual_sampled_bytes

                total = residual_sampled_bytes(model["depth"], T, P + Q, P, S, S_tan)
                what = ("the sampled residual DMFT: tangents ~ L^2 T^2 (P+Q)^2 dmft_tangent_samples doubles, "
                        "lower limit.dmft_tangent_samples first")
            else:
                from meanfield_solvers.dmft import estimate_memory
                from meanfield_solvers.dmft.sampled import response_samples

                resp, S_resp = response_samples(resp, S, S_tan, P, P + Q, T, model["depth"], max_bytes)
                est = estimate_memory(T, P + Q, P, model["depth"], S, S_resp, response=resp,
                                      probes=limit.get("dmft_probes", 1))
                total = est.total
                what = est.describe()
        except ImportError:  # pragma: no cover
            return p
    elif model["residual"]:
        L = model["depth"]
        total = (4 * L * L + 2 * L) * n * n * 8.0
        what = f"about (4 L^2 + 2 L) n^2 doubles (residual one-pass solver) with n = (T+1)(P+Q) = {n}"
    else:
        total = (12 * model["depth"] + 6) * n * n * 8.0
        what = f"about (12 L + 6) n^2 doubles with n = (T+1)(P+Q) = {n}"
    if total > max_bytes:
        p.append(f"the {limit['method']} solve needs about {total / 1e9:.3g} GB ({what}) > limit.dmft_max_memory_gb = "
                 f"{limit['dmft_max_memory_gb']}: T = {T} steps (time.t_max / limit.dt), P = {P} training and Q = {Q} "
                 "test points. Lower t_max, raise dt, use fewer points (train.n_train, eval.n_points) or samples, "
                 "or raise the limit")
    return p


_register()
