r"""``meanfield run --extend t_max=T DIR``: continue a finished run to a later time.

A finished run written with ``run.checkpoint_every`` set keeps the checkpoint at its end
(:mod:`meanfield.checkpoint`): every time loop's state and random streams at its last step. An
extension rebuilds the run with the later ``time.t_max`` and continues each loop from there; the
result equals, bit for bit, the run made with the later ``t_max`` from the start — provided that
run records at the same steps and keeps the same snapshots up to the old end. What must match:

* the recording grid: with ``time.spacing = 'linear'`` the recording times are ``t_max·j/(R−1)``,
  so the old grid is the start of the new one when the spacing ``t_max/(R−1)`` is kept: the new
  ``time.records`` is ``1 + (R−1)·T/t_max`` (derived when not given; the new ``t_max`` must be a
  multiple of the spacing). ``time.spacing = 'log'`` places every recording time by ``t_max``: a
  log-spaced run cannot be extended (refused);
* the snapshots (``time.snapshots`` spread evenly over the records): the new count keeps their
  spacing, ``1 + (K−1)·(R_new−1)/(R−1)`` (derived when not given), and every snapshot the new run
  keeps before the old end must be one the old run kept;
* both are checked on the actual step indices (:func:`meanfield.core.grid.time_grid`, per side)
  before anything is computed; anything else refuses with the reason and a ``t_max`` that works.

A deep run's limit (DMFT, deep-linear DMFT, NTK) is a solve over the whole horizon, not a time
loop: an extension solves it again for the new horizon (its result is then that of the from-start
run trivially); the networks continue from their saved states.
"""
from __future__ import annotations

import math
import os

import numpy as np

from . import checkpoint
from . import config as C

__all__ = ["ExtendError", "parse_changes", "extended_config", "extend_problems", "extend_dir"]

_KEYS = {"t_max": "t_max", "time.t_max": "t_max", "records": "records", "time.records": "records",
         "snapshots": "snapshots", "time.snapshots": "snapshots"}


class ExtendError(ValueError):
    """An extension that cannot reproduce the from-start run (or is malformed); the message says why."""


def parse_changes(items) -> dict:
    """``["t_max=20", "records=41"]`` -> ``{"t_max": 20.0, "records": 41}``."""
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS:
            raise ExtendError(f"--extend {item!r}: give t_max=VALUE (and optionally records=R, snapshots=K)")
        name = _KEYS[key]
        try:
            v = float(val) if name == "t_max" else int(val)
        except ValueError:
            raise ExtendError(f"--extend {item!r}: {name} must be a number") from None
        if name == "t_max" and not math.isfinite(v):
            raise ExtendError(f"--extend {item!r}: t_max must be finite")
        out[name] = v
    if "t_max" not in out:
        raise ExtendError("--extend needs t_max=VALUE (the later time to continue to)")
    return out


def _multiple(x, step):
    q = x / step
    return abs(q - round(q)) < 1e-9 * max(1.0, abs(q))


def extended_config(old, changes: dict):
    """The config of the extended run: ``old`` with the new ``t_max`` and the records and snapshots
    that keep their spacing (unless given); :class:`ExtendError` when no such config exists."""
    t = old.time
    T = changes["t_max"]
    if not T > t.t_max:
        raise ExtendError(f"--extend t_max={T:g}: the run already ends at t_max = {t.t_max:g}; give a later time")
    if t.ts:
        raise ExtendError("time.ts lists this run's recording times explicitly, so a later t_max adds none: run the "
                          "later times from the start (time.ts with the times you need)")
    if t.spacing != "linear":
        raise ExtendError(f"time.spacing = {t.spacing!r} places every recording time by t_max, so no earlier grid is "
                          "the start of a later one: a run extends only with time.spacing = 'linear' (run the "
                          "later t_max from the start)")
    R = t.records
    spacing = t.t_max / (R - 1)
    records = changes.get("records")
    if records is None:
        if not _multiple(T, spacing):
            near = sorted({j * spacing for j in (math.floor(T / spacing), math.floor(T / spacing) + 1)
                           if j * spacing > t.t_max})
            raise ExtendError(f"--extend t_max={T:g}: this run records every {spacing:g} (t_max {t.t_max:g}, "
                              f"{R} records): the later t_max must be a multiple of it to keep the earlier "
                              f"recording times, e.g. {' or '.join(f'{x:g}' for x in near)}")
        records = int(round(1 + (R - 1) * T / t.t_max))
    snaps = changes.get("snapshots")
    if snaps is None:
        K = min(t.snapshots, R)
        snaps = K if K <= 1 else 1 + (K - 1) * (records - 1) / (R - 1)
        if abs(snaps - round(snaps)) > 1e-9:
            raise ExtendError(f"--extend t_max={T:g}: the {K} snapshots over {R} records cannot keep their "
                              f"spacing over {records} records; give the count explicitly (--extend snapshots=K, "
                              "keeping the earlier snapshots) or choose another t_max")
        snaps = int(round(snaps))
    data = old.to_dict()
    data["time"].update(t_max=float(T), records=int(records), snapshots=int(snaps))
    try:
        new = C.from_dict(data)
    except C.ConfigError as e:
        raise ExtendError(f"the extended config is invalid: {e}") from None
    problems = extend_problems(old, new)
    if problems:
        raise ExtendError("; ".join(problems))
    return new


def _sides(cfg):
    """``(label, record steps, snapshot record indices)`` of every time loop of a run of ``cfg``."""
    from .core.grid import time_grid
    from .run import WINGS, family_of
    from .twolayer.wing import snapshot_indices

    wing = WINGS[family_of(cfg)]
    g = time_grid(cfg, common=wing.COMMON_GRID)
    snaps = snapshot_indices(cfg, len(g.t)) if family_of(cfg) == "particle" else np.zeros(0, int)
    out = [("the limit", g.steps, snaps)]
    uniq, inv = np.unique(g.steps_nn, return_inverse=True)
    out.append(("the networks", uniq, np.unique(inv[snaps]) if len(snaps) else snaps))
    return out


def extend_problems(old, new) -> list:
    """Why the run of ``new`` would not continue the run of ``old`` bit-identically ([] if it does)."""
    a, b = old.to_dict(), new.to_dict()
    a["time"].pop("t_max"), b["time"].pop("t_max")
    for k in ("records", "snapshots"):
        a["time"].pop(k), b["time"].pop(k)
    if a != b:
        diff = [f"{s}.{k}" for s in a for k in a[s] if a[s][k] != b.get(s, {}).get(k)]
        return [f"an extension changes only time.t_max, time.records and time.snapshots (not {', '.join(diff)})"]
    p = []
    for (label, s0, n0), (_, s1, n1) in zip(_sides(old), _sides(new)):
        if len(s1) < len(s0) or not np.array_equal(s1[:len(s0)], s0):
            p.append(f"{label}: the recording steps up to t_max = {old.time.t_max:g} differ from those of a run "
                     f"to {new.time.t_max:g} (time.records / the step sizes do not keep the earlier grid)")
        extra = sorted(set(int(i) for i in n1 if i < len(s0)) - set(int(i) for i in n0))
        if extra:
            p.append(f"{label}: a run to t_max = {new.time.t_max:g} keeps snapshots at records {extra}, which the run "
                     "to be extended did not keep (choose time.snapshots so that the earlier snapshots are kept: "
                     "snapshots=K)")
    return p


def source_of(run_dir):
    """The checkpoint at the end of the finished run in ``run_dir`` and its config; :class:`ExtendError`."""
    from . import store

    problems = store.verify_run(run_dir)
    if problems:
        raise ExtendError(f"{run_dir} is not a whole finished run: {'; '.join(problems)}")
    if not checkpoint.exists(run_dir):
        raise ExtendError(f"{run_dir} kept no checkpoint at its end (it ran without run.checkpoint_every): run the "
                          "later t_max from the start (and set run.checkpoint_every to make later extensions "
                          "possible)")
    try:
        man = checkpoint.read(run_dir)
    except checkpoint.CheckpointError as e:
        raise ExtendError(str(e)) from None
    with open(os.path.join(run_dir, "config.toml"), encoding="utf-8") as fh:
        same = fh.read() == man["config"]
    if not man.get("complete") or not same:
        raise ExtendError(f"the checkpoint in {run_dir} is not the end of its finished run but of a run interrupted "
                          f"since ({checkpoint.describe(man)}): continue that one first with meanfield run "
                          f"--resume {run_dir}")
    return man, checkpoint.config_of(man)


def extend_dir(run_dir, changes: dict, out=None, overwrite: bool = False, progress: bool = False, log=None,
               sigint: bool = False):
    """Continue the finished run in ``run_dir`` to ``changes["t_max"]``; the extended run replaces it
    (atomically) or, with ``out``, is written there. Returns the :class:`~meanfield.core.result.Result`."""
    from .run import run_to_dir

    man, old = source_of(run_dir)
    new = extended_config(old, changes)
    target = os.fspath(out) if out else os.fspath(run_dir)
    in_place = os.path.realpath(target) == os.path.realpath(run_dir)
    res = run_to_dir(new, target, overwrite=overwrite or in_place, progress=progress, log=log, sigint=sigint,
                     source=man)
    return res
