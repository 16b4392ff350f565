r"""Fluctuations predicted for a deep muP run at depth L = 1, by the two-layer particle prediction.

At L = 1 the muP network *is* the two-layer mean-field model (:mod:`meanfield.deep.network`, "Depth 1
*is* the two-layer model"): neurons :math:`[a_i, w_i] = [w^1_i, W^0_i/\sqrt D]`, :math:`\alpha = 1/\gamma_0`,
rates :math:`\lambda_a = 1`, :math:`\lambda_w = 1/D`, no bias, every weight :math:`N(0,1)` at
initialisation, and one network step of size ``train.lr`` is one Euler step (``gd``) or one
``train.integrator`` step (``flow``) of the TwoLayer flow on the run's P training points. So the
fluctuations of the deep networks are those of that particle system, and
:func:`meanfield.twolayer.prediction.predict_particle_system` (the one adjoint sweep) predicts them: the
model is :attr:`DeepNet.two_layer` itself, the reference particles are drawn by :meth:`DeepNet.init`, the
expectation is the training set, the map is the networks' own step at ``dt = train.lr``, and the outputs
are the deep run's: f at its n = P + Q points (training points first), ``risk_train``, ``risk_test``
(README "Fluctuations predicted from the limit", docs/fluctuations.md §"Deep networks at L = 1").

Depth L ≥ 2 needs the DMFT propagator, which is not built: refused at validation, as are the
features the mapping cannot carry (other parametrisations, residual blocks, Adam, online SGD).
"""
from __future__ import annotations

import numpy as np

from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.models import Samples
from meanfield_solvers.particles import get_backend

from .. import seeding
from ..core.prediction import (PredictionRefused, drift_field, predict_particle_system, prediction_memory_bytes,
                               record)

__all__ = ["deep_prediction_obstacles", "check_deep_fluctuations", "mapped_particle_system", "predict_deep_fluctuations",
           "record_deep"]

#: the refusal for L >= 2: word for word what the two-layer check says of a deep run (and said before L = 1)
DEEP_REFUSAL = ("fluctuations.predict needs the two-layer particle limit (limit.method = 'particles', depth 1); "
                "got method {method!r}, depth {depth}. Deep networks at L >= 2 need the DMFT propagator (linear "
                "response of the DMFT fixed point), which is not built; set fluctuations.predict = false")


def deep_prediction_obstacles(c) -> tuple[list, list]:
    """``(refusals, labels)`` of a resolved deep config dict: what the L = 1 mapping cannot carry."""
    m, tr, lim = c["model"], c["train"], c["limit"]
    if m["depth"] >= 2:
        return [DEEP_REFUSAL.format(method=lim["method"], depth=m["depth"])], []
    no, lab = [], []
    if m["parametrisation"] != "mup":
        no.append(f"fluctuations.predict for a deep run at depth 1 maps the muP network onto the two-layer "
                  f"mean-field particle system; model.parametrisation = {m['parametrisation']!r} has no such "
                  "limit: use parametrisation = 'mup' or set fluctuations.predict = false")
    if m["residual"]:
        no.append("fluctuations.predict: model.residual = true has no depth-1 particle mapping; set residual = false")
    if tr["optimizer"] != "sgd":
        no.append(f"fluctuations.predict: train.optimizer = {tr['optimizer']!r} (Adam's normalised step is not "
                  "the mean-field particle flow the prediction differentiates); use optimizer = 'sgd'")
    if tr["algorithm"] == "online_sgd":
        no.append("fluctuations.predict: a deep run with train.algorithm = 'online_sgd' has no fixed training "
                  "set to map onto the particle expectation; use 'gd', 'flow' or 'sgd'")
    if tr["algorithm"] == "flow" and tr["integrator"] not in ("euler", "heun", "rk4"):
        no.append(f"fluctuations.predict needs an explicit Runge-Kutta step with a discrete adjoint; "
                  f"train.integrator = {tr['integrator']!r}")
    if c["fluctuations"]["replicas"]:
        no.append("fluctuations.replicas > 0 is not built for deep runs (the adjoint prediction is); set replicas = 0")
    if tr["algorithm"] == "sgd":
        lab.append("initialisation part only: train.algorithm = 'sgd' adds minibatch gradient noise that the "
                   "prediction (of full-batch GD's map) does not include")
    return no, lab


def mapped_particle_system(cfg, X, y, Xt, yt, n):
    r"""The two-layer particle system of a deep muP run at L = 1.

    Returns
    -------
    dict with ``model`` (:attr:`DeepNet.two_layer` of a width-n reference network), ``backend``,
    ``data`` (Samples of the P training points, square loss), ``points`` ((P + Q, D): training then test),
    ``risks`` ([('risk_train', ...), ('risk_test', ...) when Q > 0]), ``particles0`` ((n, 1 + D), drawn by
    :meth:`DeepNet.init` from stream ``init`` (sub-keys n, layer; deep runs draw no other ``init`` particles)), ``dt`` (= train.lr) and ``integ`` (euler for gd and
    sgd, ``train.integrator`` for flow).
    """
    from .network import DeepNet
    from .wing import parametrisation_of

    X, y, Xt, yt = (np.asarray(a, float) for a in (X, y, Xt, yt))
    net = DeepNet(cfg.model.activation, X.shape[1], n, 1, parametrisation_of(cfg), backend="numpy")
    rngs = [[seeding.stream(cfg.run.seed, "init", n, l) for l in range(2)]]
    th0 = net.init(rngs)[0]
    data = Samples(X, y, "square")
    risks = [("risk_train", data)] + ([("risk_test", Samples(Xt, yt, "square"))] if Xt.shape[0] else [])
    alg = cfg.train.algorithm
    integ = get_integrator(cfg.train.integrator if alg == "flow" else "euler")
    return dict(model=net.two_layer, backend=get_backend("numpy"), data=data, points=np.concatenate([X, Xt]),
                risks=risks, particles0=th0, dt=float(cfg.train.lr), integ=integ)


def predict_deep_fluctuations(cfg, X, y, Xt, yt, steps, particles0=None, log=None):
    """Predicted N·Var of a deep muP L = 1 run's outputs at its networks' recording ``steps`` (step size
    ``train.lr``), by the two-layer adjoint on :func:`mapped_particle_system`. Refuses (
    :class:`PredictionRefused`) what :func:`deep_prediction_obstacles` refuses."""
    no, labels = deep_prediction_obstacles(cfg.to_dict())
    if no:
        raise PredictionRefused("; ".join(no))
    fl = cfg.fluctuations
    sysm = mapped_particle_system(cfg, X, y, Xt, yt, fl.particles)
    if particles0 is not None:
        sysm["particles0"] = np.asarray(particles0, float)
    model, backend, data = sysm["model"], sysm["backend"], sysm["data"]
    field = drift_field(model, backend, data)
    return predict_particle_system(model, backend, data, sysm["points"], sysm["risks"], sysm["particles0"], steps,
                                   sysm["dt"], sysm["integ"], field, fl.times, fl.checkpoint or None,
                                   fl.max_memory_gb, labels)


def record_deep(pred, cfg, arrays, summary):
    """Record a deep prediction under the particle run's names; the deep networks are drawn independently
    of the reference particles, so every width's prediction is the independent one (no coupling factor)."""
    record(pred, cfg, arrays, summary, coupled=False)
    summary["fluct_mapping"] = "deep muP at L = 1 = two-layer particles (alpha = 1/gamma0, lr_a = 1, lr_w = 1/D)"


def check_deep_fluctuations(c, given=None) -> list:
    """Config check (registered) for deep runs: what :func:`deep_prediction_obstacles` refuses, and a
    memory estimate above ``fluctuations.max_memory_gb``, before any work."""
    from .checks import is_deep, point_counts

    fl = c.get("fluctuations") or {}
    if not fl.get("predict") or not is_deep(c):
        return []
    no, _ = deep_prediction_obstacles(c)
    if no:
        return no
    t = c["time"]
    P, Q = point_counts(c)
    K = int(round(t["t_max"] / c["train"]["lr"]))
    times = fl["times"] or t["records"]
    need = prediction_memory_bytes(fl["particles"], 1 + c["task"]["d"], K, (P + Q + 2) * times, 4, P,
                                   fl["checkpoint"] or None, times)
    if need > fl["max_memory_gb"] * 1e9:
        return [f"fluctuations.predict: estimated peak memory {need / 1e9:.2f} GB exceeds "
                f"fluctuations.max_memory_gb = {fl['max_memory_gb']} ({fl['particles']} reference particles, "
                f"{K} steps, {P + Q + 2} outputs at {times} times); lower fluctuations.times or "
                "fluctuations.particles, or raise max_memory_gb"]
    return []


def _register():
    from ..core.registry import register_config_check

    register_config_check(check_deep_fluctuations)


_register()
