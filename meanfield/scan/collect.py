r"""Results of a scan as a tidy table and as stacked trajectories (numpy only, no pandas).

:func:`collect` reads the index (the grid points of the latest spec) and every finished run
directory. The table has one row per (run, width):

=========================  ===========================================================================
column                     meaning
=========================  ===========================================================================
``id``, ``status``         run id and status (completed or diverged)
*axis names*               the point's axis values (``task.d``, ...; list values as JSON text)
``seed``                   the run's ``run.seed``
``width``                  N (0 for a run without finite-width networks)
``n_nets``                 networks trained at this width in the run (``train.seeds``)
``risk_mf_final``          the limit's final risk
``risk_nn_final``          final risk, mean over the run's networks of this width
``risk_nn_final_var``      its variance over those networks (ddof 1; NaN for one network)
``coupling_factor``        1 - N/M when the networks were coupled to the limit's M particles (every seed
                           variance of that width is smaller by it), 1 for independent draws
``risk_gap``               sup over time of \|R_N(t) - R_inf(t)\| per network, mean over the networks
                           (the typical distance of one width-N network to the limit: ~ N^-1/2)
``risk_gap_sup``           the run summary's sup_t \|mean-over-networks R_N(t) - R_inf(t)\|
``risk_gap_final``         \|risk_nn_final - risk_mf_final\|
``seconds``                the run's own compute time
``n_seeds``                runs in the row's seed group (same parameters but the seed, same width)
``risk_nn_final_seed_mean``, ``risk_nn_final_seed_var``
                           mean and variance (ddof 1) of ``risk_nn_final`` across the seed group
``risk_gap_seed_mean``, ``risk_gap_seed_sem``
                           mean and standard error of ``risk_gap`` across the seed group
=========================  ===========================================================================

Group statistics repeat on every row of their group, so each row is self-contained.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .. import store as _files
from .spec import SEED_PARAM
from .store import Index, index_path, run_dir

__all__ = ["Collected", "Group", "collect", "write_csv", "table_rows", "METRICS"]

#: Per-row metric columns (after the parameters, seed and width).
METRICS = ("n_nets", "risk_mf_final", "risk_nn_final", "risk_nn_final_var", "coupling_factor", "risk_gap", "risk_gap_sup",
           "risk_gap_final", "seconds")
GROUP_METRICS = ("n_seeds", "risk_nn_final_seed_mean", "risk_nn_final_seed_var", "risk_gap_seed_mean",
                 "risk_gap_seed_sem")


@dataclass
class Group:
    """The runs of one parameter combination (all but the seed), trajectories stacked over seeds.

    Attributes
    ----------
    params : dict
        Axis values (seed excluded).
    seeds : ndarray (n,)
    ids : list of str
    arrays : dict
        ``t`` (T,), ``t_nn`` (T,), ``widths`` (W,) from the first run; every stacked key with a
        leading seed axis: ``risk_mf`` (n, T), ``risk_nn`` (n, W, S, T), ...
    """

    params: dict
    seeds: np.ndarray
    ids: list
    arrays: dict = field(default_factory=dict)


@dataclass
class Collected:
    """Output of :func:`collect`.

    Attributes
    ----------
    table : dict of str -> ndarray
        Columns of equal length (see the module docstring).
    columns : list of str
        Column order.
    groups : list of Group
        Trajectories by parameter combination (empty when ``trajectories=False``).
    missing : list of (id, params, status)
        Runs of the spec without results (pending, running, failed).
    param_names : list of str
        Axis names (seed excluded) present as columns.
    damaged : list of (id, problems)
        Runs whose directory holds a summary.json but not a whole run (truncated or altered
        result, garbled summary: :func:`meanfield.store.verify_run`); left out of the table.
        ``meanfield scan`` recomputes them.
    """

    table: dict
    columns: list
    groups: list
    missing: list
    param_names: list
    damaged: list = field(default_factory=list)

    def __len__(self):
        return len(self.table["id"]) if self.table else 0

    def rows(self) -> list:
        """The table as a list of dicts (plain Python values)."""
        return table_rows(self.table, self.columns)

    def to_csv(self, path=None) -> str:
        """Write the table as CSV to ``path`` (atomically) and/or return the text."""
        text = write_csv(self.table, self.columns)
        if path is not None:
            _files.atomic_write_text(path, text)
        return text


def _col(values):
    """A numpy column from Python values: numbers as float/int/bool, anything else as text."""
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    return np.asarray([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=str)


def _nan(x):
    return float("nan") if x is None else float(x)


def _coupling_factor(arrays, i):
    """1 - N/M for a width coupled to the limit's M particles (its seed variance is smaller by it), 1 for
    independent draws, NaN for results written before the factor was recorded."""
    cf = arrays.get("coupling_factor")
    return float(cf[i]) if cf is not None else math.nan


def _per_width(arrays, summary):
    """Metric dicts, one per width of a run (one row with width 0 when it trained no network)."""
    risk_mf = arrays.get("risk_mf")
    mf_final = _nan(summary.get("risk_mf_final"))
    widths = [int(n) for n in arrays.get("widths", [])]
    if not widths:
        return [{"width": 0, "n_nets": 0, "risk_mf_final": mf_final, **{k: math.nan for k in METRICS[2:-1]}}]
    rows = []
    for i, N in enumerate(widths):
        r = np.asarray(arrays["risk_nn"][i], dtype=np.float64)  # (S, T)
        fin = r[:, -1]
        finite = fin[np.isfinite(fin)]
        m = float(finite.mean()) if finite.size else math.nan
        v = float(finite.var(ddof=1)) if finite.size > 1 else math.nan
        if risk_mf is not None:
            with np.errstate(invalid="ignore"):
                g = np.abs(r - np.asarray(risk_mf)[None, :])
            if "t" in arrays and "t_nn" in arrays:  # compare the sides only at common recording times
                same = np.isclose(arrays["t"], arrays["t_nn"], rtol=1e-9, atol=1e-12)
                g = np.where(same[None, :], g, np.nan)
            per_net = [np.nanmax(x) if np.any(np.isfinite(x)) else math.nan for x in g]
            gap = float(np.nanmean(per_net)) if np.any(np.isfinite(per_net)) else math.nan
        else:
            gap = math.nan
        rows.append({"width": N, "n_nets": int(r.shape[0]), "risk_mf_final": mf_final, "risk_nn_final": m,
                     "risk_nn_final_var": v, "coupling_factor": _coupling_factor(arrays, i), "risk_gap": gap,
                     "risk_gap_sup": _nan((summary.get("risk_gap_sup") or {}).get(str(N))),
                     "risk_gap_final": abs(m - mf_final) if math.isfinite(m) and math.isfinite(mf_final) else math.nan})
    return rows


def _group_key(params):
    return json.dumps({k: v for k, v in params.items() if k != SEED_PARAM}, sort_keys=True)


def collect(path, trajectories: bool = True, keys=("risk_mf", "risk_nn")) -> Collected:
    """Tidy table and stacked trajectories of a scan directory.

    Parameters
    ----------
    path : str
        Scan directory (holds ``index.sqlite``).
    trajectories : bool
        Also stack ``keys`` of ``result.npz`` by parameter group (seeds on a new leading axis).
    keys : sequence of str
        Arrays of ``result.npz`` to stack (``f_nn`` and ``f_mf`` are available too).

    Returns
    -------
    Collected
    """
    with Index(index_path(path), readonly=True) as index:
        points = index.points()
        meta = index.meta()
        ids = index.scan_ids()
        runs = index.runs(ids)
    names = json.loads(meta.get("param_names", "[]"))
    param_names = [n for n in names if n != SEED_PARAM]
    first_params = {}
    for params, rid in points:
        first_params.setdefault(rid, params)

    records, missing, loaded, damaged = [], [], {}, []
    for rid in ids:
        row = runs[rid]
        d = run_dir(path, rid)
        summ = os.path.join(d, "summary.json")
        if not os.path.isfile(summ):
            missing.append((rid, first_params[rid], row["status"]))
            continue
        problems = _files.verify_run(d)
        if problems:
            damaged.append((rid, problems))
            continue
        summary = _files.load_json(summ)
        # read only the arrays needed (snapshots and f_nn can dwarf the risks)
        want = {"risk_mf", "risk_nn", "widths", "t", "t_nn", *(keys if trajectories else ())}
        with np.load(os.path.join(d, "result.npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k in want}
        cfg = json.loads(row["config"])
        params = first_params[rid]
        seed = int(cfg["run"]["seed"])
        status = summary.get("status", "completed")
        loaded[rid] = (params, seed, arrays)
        for m in _per_width(arrays, summary):
            rec = {"id": rid, "status": status}
            for n in param_names:
                rec[n] = params.get(n)
            rec["seed"] = seed
            rec.update(m)
            rec["seconds"] = _nan(summary.get("seconds_total"))
            records.append((_group_key(params), rec))

    # statistics across the seeds of each (parameter group, width)
    by = {}
    for gk, rec in records:
        by.setdefault((gk, rec["width"]), []).append(rec)
    for recs in by.values():
        fin = np.array([r["risk_nn_final"] for r in recs], dtype=float)
        gap = np.array([r["risk_gap"] for r in recs], dtype=float)
        fin, gap = fin[np.isfinite(fin)], gap[np.isfinite(gap)]
        stats = {"n_seeds": len(recs),
                 "risk_nn_final_seed_mean": float(fin.mean()) if fin.size else math.nan,
                 "risk_nn_final_seed_var": float(fin.var(ddof=1)) if fin.size > 1 else math.nan,
                 "risk_gap_seed_mean": float(gap.mean()) if gap.size else math.nan,
                 "risk_gap_seed_sem": float(gap.std(ddof=1) / math.sqrt(gap.size)) if gap.size > 1 else math.nan}
        for r in recs:
            r.update(stats)

    columns = ["id", "status", *param_names, "seed", "width", *METRICS, *GROUP_METRICS]
    table = {c: _col([rec[c] for _, rec in records]) for c in columns} if records else \
        {c: np.zeros(0) for c in columns}

    groups = []
    if trajectories:
        order = {}
        for rid, (params, seed, arrays) in loaded.items():
            order.setdefault(_group_key(params), []).append((rid, params, seed, arrays))
        for members in order.values():
            params = {k: v for k, v in members[0][1].items() if k != SEED_PARAM}
            a0 = members[0][3]
            arr = {k: a0[k] for k in ("t", "t_nn", "widths") if k in a0}
            for k in keys:
                if all(k in m[3] for m in members):
                    try:
                        arr[k] = np.stack([m[3][k] for m in members])
                    except ValueError:
                        pass  # shapes differ inside a group (should not happen: only the seed varies)
            groups.append(Group(params=params, seeds=np.array([m[2] for m in members]),
                                ids=[m[0] for m in members], arrays=arr))
    return Collected(table=table, columns=columns, groups=groups, missing=missing, param_names=param_names,
                     damaged=damaged)


def table_rows(table, columns) -> list:
    n = len(table[columns[0]]) if columns else 0
    return [{c: table[c][i].item() for c in columns} for i in range(n)]


def write_csv(table, columns) -> str:
    """CSV text of a table (floats with full precision, NaN as ``nan``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in table_rows(table, columns):
        w.writerow([repr(v) if isinstance(v, float) else v for v in row.values()])
    return buf.getvalue()
