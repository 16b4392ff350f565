r"""One memory estimator for every run path, evaluated before anything large is allocated.

:func:`estimate` takes a resolved config dict and returns the run's predicted peak bytes as a sum
of named terms, each tagged with the config keys that drive it. :func:`memory_problems` (called
by :func:`meanfield.config.from_dict` for every config, so ``meanfield run``, ``meanfield scan``
and the Python API all refuse in validation, exit 2, nothing written) compares the total with
``run.max_memory_gb`` and names the keys of the largest terms. :mod:`meanfield.scan.estimate`
uses the same estimate for ``scan --dry-run``, and :mod:`meanfield.run` uses :func:`result_bytes`
to check the output location's free space before computing.

The model (float64 = 8 bytes; ``dtype = float32`` halves the state terms, which we ignore: the
estimate is for refusing, so it errs on the large side only by such factors)
------------------------------------------------------------------------------------------------
Two-layer / particle models (p = d + 1 + bias columns per particle):

* limit state: :math:`P\,p\,(\text{stages} + 3)` (positions, stage velocities, snapshot buffer);
* Monte Carlo sample (``expectation = mc``): :math:`M(d + 1)`;
* network state of the largest width: :math:`S N p \cdot 3`; data of one step:
  :math:`S\,B\,(d + 1)` (online_sgd, sgd) and the training set :math:`n_\text{train}(d+1)` (sgd, gd);
* test set :math:`n_\text{test}(d + 1)`;
* pairwise / sample temporaries: the backends evaluate :math:`n\times m` matrices in blocks of at most
  64 MiB, so :math:`2\min(64\text{ MiB}, 8 n m)` with :math:`n m` the largest of
  :math:`P\max(E, n_\text{test})` and :math:`S N \max(E_N, n_\text{test})`;
* results (twice: in memory and the ``.npz`` buffer): records :math:`T(3+Q)` of the limit and
  :math:`W S T (4 + Q)` of the networks, snapshots :math:`(K + 1)\min(P, \text{max\_snapshot})\,p` and
  :math:`K S N p` per width.

Deep muP networks (depth L, input dimension D, n = P + Q points, n_k = min(n, 256) kernel points):

* network state of the largest width: :math:`S\,(N D + (L - 1) N^2 + N)\cdot(\text{stages} + 3)`;
* forward/backward fields on the points: :math:`4 S L N n`;
* results (twice): kernels :math:`(W + 1)\,T\,(2L + 1)\,n_k^2`, outputs :math:`W S T n`, records;
* the limit: the DMFT's own estimate (:mod:`meanfield_solvers.dmft.memory`); deep-linear DMFT
  :math:`(12L + 6)(T + 1)^2 n^2`; NTK :math:`4 n_k^2 + T n^2`.

The interpreter itself (numpy, the simulator: ~150 MB) is added as a fixed baseline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["MemoryEstimate", "estimate", "result_bytes", "memory_limit_bytes", "memory_problems",
           "machine_memory_bytes", "BASELINE"]

_F = 8
_BLOCK = 64 * 2**20
_STAGES = {"euler": 1, "heun": 2, "rk4": 4, "euler_maruyama": 1}
#: Resident size of an interpreter with numpy and the simulator imported (measured: ~150 MB).
BASELINE = 150e6


@dataclass
class MemoryEstimate:
    """Predicted peak bytes of a run as named terms ``(what, keys, bytes)``; ``result`` = the .npz size."""

    terms: list = field(default_factory=list)
    result: float = 0.0

    def add(self, what, keys, nbytes):
        self.terms.append((what, tuple(keys), float(nbytes)))

    @property
    def total(self) -> float:
        return BASELINE + sum(b for _, _, b in self.terms)

    def largest(self, n=3) -> list:
        return sorted(self.terms, key=lambda t: -t[2])[:n]

    def describe(self) -> str:
        return " + ".join(f"{what} {b / 1e9:.3g} GB ({', '.join(keys)})" for what, keys, b in self.largest(4))


def _dataset_shape(task):
    """(P, d, Q_test) of a dataset task, read from the array headers only (no data loaded)."""
    import numpy as np

    with np.load(task["path"], allow_pickle=False) as z:
        P, d = z["X"].shape
        Q = z["X_test"].shape[0] if "X_test" in z.files else 0
    return int(P), int(d), int(Q)


def estimate(c: dict) -> MemoryEstimate:
    """Peak memory and result size of a run from its resolved config dict (nothing allocated)."""
    from ..deep.checks import is_deep

    return (_deep if is_deep(c) else _particle)(c)


def _records(c):
    return int(c["time"]["records"])


def _particle(c) -> MemoryEstimate:
    est = MemoryEstimate()
    task, model, lim, tr, tm, ev = (c[k] for k in ("task", "model", "limit", "train", "time", "eval"))
    if task["kind"] == "dataset":
        P_data, d, Q_test = _dataset_shape(task)
        est.add("dataset", ("task.path",), P_data * (d + 1) * _F * 2)
    else:
        d = int(task["d"])
    p = d + 1 + int(bool(model.get("bias", False)))
    k = task["teacher_width"] if task["kind"] == "teacher_student" else 0
    T, Q, K = _records(c), int(ev["n_points"]), int(tm["snapshots"])
    nm = 0.0
    result = 0.0
    if lim["method"] != "none":
        P = int(lim["particles"])
        est.add("limit particles", ("limit.particles", "task.d"),
                P * p * _F * (_STAGES.get(lim["integrator"], 4) + 3))
        mc = lim["expectation"] == "mc" or (lim["expectation"] == "auto" and task["kind"] == "dataset")
        E = int(lim["mc_samples"]) if mc else P + k
        if mc and task["kind"] != "dataset":
            est.add("Monte Carlo sample", ("limit.mc_samples", "task.d"), lim["mc_samples"] * (d + 1) * _F)
        nm = max(nm, P * max(E, ev["n_test"]))
        result += T * (3 + Q) * _F + (K + 1) * min(P, ev["max_snapshot_particles"]) * p * _F
    S, W = int(tr["seeds"]), len(tr["widths"])
    if S:
        Nmax = max(tr["widths"])
        est.add("network neurons", ("train.widths", "train.seeds", "task.d"), S * Nmax * p * _F * 3)
        alg = tr["algorithm"]
        if alg in ("online_sgd", "sgd"):
            est.add("minibatches", ("train.batch", "train.seeds", "task.d"), S * tr["batch"] * (d + 1) * _F * 2)
        if alg in ("sgd", "gd") and task["kind"] != "dataset":
            est.add("training set", ("train.n_train", "task.d"), tr["n_train"] * (d + 1) * _F)
        for N in tr["widths"]:
            E = {"online_sgd": tr["batch"], "sgd": tr["batch"], "gd": tr["n_train"]}.get(alg, N + k)
            nm = max(nm, S * N * max(E, ev["n_test"]))
            result += K * S * N * p * _F
        result += W * S * T * (4 + Q) * _F
    if task["kind"] != "dataset":
        est.add("test set", ("eval.n_test", "task.d"), ev["n_test"] * (d + 1) * _F)
    est.add("block temporaries", ("limit.particles", "train.widths", "eval.n_test"), 2 * min(_BLOCK, nm * _F))
    est.add("results", ("time.records", "time.snapshots", "eval.n_points", "train.seeds", "train.widths"),
            2 * result)
    est.result = result
    return est


def _deep(c) -> MemoryEstimate:
    from ..deep.checks import point_counts

    est = MemoryEstimate()
    task, model, lim, tr, ev = (c[k] for k in ("task", "model", "limit", "train", "eval"))
    L = int(model["depth"])
    if task["kind"] == "dataset":
        _, D, _ = _dataset_shape(task)
    else:
        D = int(task["d"])
    P, Q = point_counts(c)
    n = P + Q
    nk = min(n, 256)
    T = _records(c)
    S, W = int(tr["seeds"]), len(tr["widths"])
    result = 0.0
    if S:
        Nmax = max(tr["widths"])
        stages = _STAGES.get(tr["integrator"], 4) if tr["algorithm"] == "flow" else 1
        est.add("network weights", ("train.widths", "train.seeds", "model.depth", "task.d"),
                S * (Nmax * D + (L - 1) * Nmax**2 + Nmax) * _F * (stages + 3))
        est.add("network fields", ("train.widths", "train.seeds", "train.n_train", "eval.n_points"),
                4 * S * L * Nmax * n * _F)
        result += W * T * (2 * L + 1) * nk * nk * _F + W * S * T * (n + 5) * _F
    if lim["method"] == "dmft_linear":
        Tl = int(round(c["time"]["t_max"] / lim["dt"]))
        est.add("deep-linear DMFT", ("time.t_max", "limit.dt", "train.n_train", "eval.n_points", "model.depth"),
                (12 * L + 6) * ((Tl + 1) * n) ** 2 * _F)
    elif lim["method"] == "dmft":
        try:
            from meanfield_solvers.dmft import estimate_memory
            from meanfield_solvers.dmft.sampled import response_samples

            Tl = int(round(c["time"]["t_max"] / lim["dt"]))
            resp = "tangent" if c["model"].get("residual") else lim.get("dmft_response_estimator", "auto")
            resp, S_resp = response_samples(resp, lim["dmft_samples"],
                                            min(lim["dmft_tangent_samples"], lim["dmft_samples"]), P, n, Tl, L,
                                            lim["dmft_max_memory_gb"] * 1e9)
            e = estimate_memory(Tl, n, P, L, lim["dmft_samples"], S_resp, response=resp,
                                probes=lim.get("dmft_probes", 1))
            est.add("DMFT solve", ("limit.dmft_samples", "limit.dmft_tangent_samples", "time.t_max", "limit.dt",
                                   "train.n_train", "eval.n_points", "limit.dmft_response_estimator"), e.total)
        except ImportError:  # pragma: no cover - solver not installed: its own check reports it
            pass
    elif lim["method"] == "ntk":
        est.add("NTK flow", ("train.n_train", "eval.n_points"), 4 * nk * nk * _F + T * n * n * _F)
    if lim["method"] != "none":
        result += T * (2 * L + 1) * nk * nk * _F + T * (2 * n + 5) * _F
    est.add("results", ("time.records", "train.n_train", "eval.n_points", "model.depth", "train.widths"), 2 * result)
    est.result = result
    return est


def result_bytes(c: dict) -> float:
    """Predicted size of the run's ``result.npz`` (bytes)."""
    return estimate(c).result


def machine_memory_bytes() -> float:
    """Physical memory of this machine, or the cgroup (v2 or v1) limit when smaller."""
    total = float("inf")
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(f) as fh:
                v = fh.read().strip()
            if v.isdigit():
                total = min(total, float(v))
        except OSError:
            pass
    return total


def memory_limit_bytes(c: dict) -> float:
    """``run.max_memory_gb`` in bytes ('auto': 90 % of :func:`machine_memory_bytes`)."""
    v = c["run"].get("max_memory_gb", "auto")
    return 0.9 * machine_memory_bytes() if v == "auto" else float(v) * 1e9


def memory_problems(c: dict) -> list:
    """One problem naming the keys of the largest terms when the estimate exceeds the limit ([] else)."""
    try:
        est = estimate(c)
    except (OSError, KeyError, ValueError):
        return []  # an unreadable dataset is reported by the dataset checks
    limit = memory_limit_bytes(c)
    if est.total <= limit:
        return []
    weight = {}  # a key is named by the bytes of the terms it drives
    for _, ks, b in est.terms:
        for k in ks:
            weight[k] = weight.get(k, 0.0) + b
    keys = sorted(weight, key=lambda k: -weight[k])
    setting = c["run"].get("max_memory_gb", "auto")
    return [f"the run needs about {est.total / 1e9:.3g} GB of memory, more than run.max_memory_gb = {setting!r} "
            f"({limit / 1e9:.3g} GB): {est.describe()}. Lower {', '.join(keys[:5])}, or raise run.max_memory_gb"]
