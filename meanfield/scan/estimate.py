"""Dry-run estimates: memory per run and total time, from a work model calibrated by short probes.

Time model
----------
Runs that differ only in their seed (and name) cost the same: they form a *class*. For a class,
two probe runs of the real code (:func:`meanfield.run.run`, after a small warm-up run) with
``time.t_max`` shortened to 1 and 3 steps and 2 records give, by difference, the seconds per
step of the limit and of each width, the seconds per recording (observer), and the fixed setup
time. The full run is then

    setup + steps_limit * t_step_limit + records * t_obs_limit
          + sum over widths (steps_N * t_step_N + records * t_obs_N) + writes

with the step counts and the recording grid of the real config (``t_max / dt``,
:func:`meanfield.core.grid.record_grid`). Classes are probed most expensive first (by the work model
below) until a time budget is spent; the others are scaled from the probed ones by the work
model: limit work = integrator stages × P × (P + teacher units, analytic; or M samples, mc) ×
(d + 2) per step, network work = S × N × (B, n_train, or N + teacher units for population_gd) ×
(d + 2) per step, plus the observer's P × n_test × (d + 2) per recording.

Memory model
------------
Worker baseline (this interpreter after importing the simulator, measured) + the terms of
:mod:`meanfield.core.memory`, the estimator that validation refuses oversized runs by:
particle/neuron state × (integrator stages + 3) + pairwise / Monte Carlo temporaries (2 blocks
of at most the numpy backend's 64 MiB block, less when the n × m matrices are smaller) + data
sets + the result arrays twice (in memory and the .npz buffer); deep runs: weights, fields,
kernels and the DMFT's own estimate. Accelerated backends are approximated by the same model.
Checked on experiments/scan_width.toml: 181 MB peak measured (ru_maxrss), 188 MB predicted.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "estimate_runs", "work_units", "memory_bytes"]

_STAGES = {"euler": 1, "heun": 2, "rk4": 4}
#: Per-run cost of the scan machinery itself (spawn amortised, index writes), measured by
#: benchmarks/scan_overhead.py; added to every run.
SCAN_OVERHEAD_S = 0.05


@dataclass
class Estimate:
    """Dry-run numbers for a set of runs."""

    n_runs: int
    seconds_each: np.ndarray  # predicted compute seconds per run
    memory_each: np.ndarray   # predicted peak bytes per run
    calibrated: int           # classes timed by probes
    classes: int
    probe_seconds: float

    def total_seconds(self) -> float:
        return float(self.seconds_each.sum())

    def wall_seconds(self, workers: int) -> float:
        """Makespan on ``workers`` processes, longest runs first, each to the least loaded worker.

        The executor dispatches in grid order, not longest first, so a scan with a few very
        long runs late in the grid can take longer than this.
        """
        import heapq

        loads = [0.0] * max(1, workers)
        for s in sorted(self.seconds_each.tolist(), reverse=True):
            heapq.heapreplace(loads, loads[0] + s)
        return float(max(loads)) if self.n_runs else 0.0


def _class_key(d):
    d = copy.deepcopy(d)
    d["run"].pop("seed", None)
    d["run"].pop("name", None)
    return repr(sorted((s, sorted(v.items())) for s, v in d.items()))


def _teacher_units(d):
    t = d["task"]
    return t["teacher_width"] if t["kind"] == "teacher_student" else 0


def work_units(d) -> tuple:
    """``(limit units, network units)`` of a resolved config dict (see the module docstring)."""
    lim, tr, tm, ev = d["limit"], d["train"], d["time"], d["eval"]
    dd = d["task"]["d"] + 2
    k = _teacher_units(d)
    t_max, R = tm["t_max"], tm["records"]
    uL = 0.0
    if lim["method"] != "none":
        P = lim["particles"]
        E = P + k if lim["expectation"] in ("analytic", "auto") and d["task"]["kind"] != "dataset" else lim["mc_samples"]
        steps = t_max / lim["dt"]
        uL = steps * _STAGES.get(lim["integrator"], 4) * P * E * dd + R * P * (E + ev["n_test"]) * dd
    uN = 0.0
    S = tr["seeds"]
    if S:
        steps = t_max / tr["lr"]
        for N in tr["widths"]:
            alg = tr["algorithm"]
            E = {"online_sgd": tr["batch"], "sgd": tr["batch"], "gd": tr["n_train"]}.get(alg, N + k)
            uN += steps * S * N * E * dd + R * S * N * (N + k + ev["n_test"]) * dd
    return uL, uN


def memory_bytes(d, baseline: float) -> float:
    """Predicted peak resident bytes of one run: the measured worker ``baseline`` plus the terms
    of the one estimator every run is refused by (:func:`meanfield.core.memory.estimate`)."""
    from ..core.memory import BASELINE, estimate

    return baseline + estimate(d).total - BASELINE


def _rss_bytes() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _probe(d, steps):
    from .. import config as C
    from ..run import run

    d = copy.deepcopy(d)
    h = max(d["limit"]["dt"] if d["limit"]["method"] != "none" else 0.0,
            d["train"]["lr"] if d["train"]["seeds"] else 0.0)
    # linear: two log-spaced records would be [0, h] (np.geomspace with one point is its start), so
    # every probe would take one step whatever `steps` says and the per-step time would be lost
    d["time"].update(t_max=steps * h, records=2, snapshots=0, spacing="linear")
    return run(C.from_dict(d), progress="none").summary, d


def _warm(d):
    """A small run first: one-time costs (imports, JIT, caches) must not enter the step times."""
    d = copy.deepcopy(d)
    d["limit"]["particles"] = min(d["limit"]["particles"], 64)
    d["train"]["widths"] = sorted({min(n, 64) for n in d["train"]["widths"]})
    try:
        _probe(d, 1)
    except Exception:  # noqa: BLE001 - a warm-up is best effort
        pass


def _steps(d):
    from ..core.grid import record_grid

    lim, tr, tm = d["limit"], d["train"], d["time"]
    do_limit = lim["method"] != "none"
    h = lim["dt"] if do_limit else tr["lr"]
    grid = record_grid(tm["t_max"], tm["records"], tm["spacing"], h)
    R = len(grid)
    nL = int(round(tm["t_max"] / lim["dt"])) if do_limit else 0
    nN = int(round(tm["t_max"] / tr["lr"])) if tr["seeds"] else 0
    return nL, nN, R


def _loops_seconds(summary):
    return summary.get("seconds_limit", 0.0) + sum(summary.get("seconds_train", {}).values())


def _best_probe(d, steps, repeats):
    """The fastest of ``repeats`` probes (the least disturbed by other work on the machine)."""
    runs = [_probe(d, steps) for _ in range(max(1, repeats))]
    return min(runs, key=lambda r: r[0]["seconds_total"])


def _calibrate(d, probe_target_s=None, repeats=1):
    """Predicted seconds of a full run of config dict ``d`` from two short probes.

    The probes take 1 and 3 steps; with ``probe_target_s`` the second takes as many steps (3 to 50) as
    fill about ``probe_target_s`` seconds by the first probe's time, so that the difference that gives the
    seconds per step stands well above the timing noise (``meanfield run --dry-run``).
    """
    _warm(d)
    sa, da = _best_probe(d, 1, repeats)
    steps_b = 3
    if probe_target_s:
        steps_b = int(min(50, max(3, probe_target_s / max(1e-6, _loops_seconds(sa)))))
    sb, db = _best_probe(d, steps_b, repeats)
    nLa, nNa, _ = _steps(da)
    nLb, nNb, _ = _steps(db)
    nL, nN, R = _steps(d)
    total = max(0.0, sa["seconds_total"] - sa.get("seconds_limit", 0.0) - sum(sa.get("seconds_train", {}).values()))
    if "seconds_limit" in sa and nLb > nLa:
        t_step = max(0.0, (sb["seconds_limit"] - sa["seconds_limit"]) / (nLb - nLa))
        t_obs = max(0.0, (sa["seconds_limit"] - nLa * t_step) / 2)
        total += nL * t_step + R * t_obs
    for N, ta in sa.get("seconds_train", {}).items():
        tb = sb["seconds_train"][N]
        t_step = max(0.0, (tb - ta) / max(1, nNb - nNa))
        t_obs = max(0.0, (ta - nNa * t_step) / 2)
        total += nN * t_step + R * t_obs
    return total


def estimate_runs(configs, budget_s: float = 15.0, calibrate: bool = True, probe_target_s=None,
                  repeats: int = 1) -> Estimate:
    """Estimate time and memory of runs given as resolved config dicts (``Config.to_dict()``).

    Parameters
    ----------
    configs : list of dict
    budget_s : float
        Seconds allowed for probing (at least one class is always probed).
    calibrate : bool
        False: no probes, a fixed cost per unit of work (fast but rough).
    probe_target_s, repeats : longer probes (about ``probe_target_s`` seconds) and the fastest of ``repeats``
        (see :func:`_calibrate`): steadier numbers for one run (``meanfield run --dry-run``).
    """
    from .. import run as _run  # noqa: F401 - import before measuring the baseline memory

    baseline = _rss_bytes()
    n = len(configs)
    classes = {}
    for i, d in enumerate(configs):
        classes.setdefault(_class_key(d), []).append(i)
    keys = list(classes)
    units = {k: work_units(configs[classes[k][0]]) for k in keys}
    order = sorted(keys, key=lambda k: -sum(units[k]))
    t0 = time.perf_counter()
    measured = {}
    if calibrate:
        for k in order:
            if measured and time.perf_counter() - t0 > budget_s:
                break
            try:
                measured[k] = _calibrate(configs[classes[k][0]], probe_target_s, repeats)
            except Exception:  # noqa: BLE001 - an unprobeable class is estimated from the others
                continue
    probe_s = time.perf_counter() - t0
    # seconds per unit of work from the probed classes (a rough default without any)
    rates = [(measured[k] - 0.05) / max(1.0, sum(units[k])) for k in measured]
    rate = float(np.median(rates)) if rates else 2e-9
    secs = np.zeros(n)
    mem = np.zeros(n)
    for k in keys:
        est = measured.get(k, 0.05 + max(0.0, rate) * sum(units[k]))
        for i in classes[k]:
            secs[i] = est + SCAN_OVERHEAD_S
            mem[i] = memory_bytes(configs[i], baseline)
    return Estimate(n_runs=n, seconds_each=secs, memory_each=mem, calibrated=len(measured), classes=len(keys),
                    probe_seconds=probe_s)
