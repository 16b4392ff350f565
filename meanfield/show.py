"""``meanfield show DIR``: a run on one screen — what was run, how it ended, the final numbers, and
what produced it.

Sections (each a few lines, so the whole fits a terminal):

* the run: directory, model family, status, wall time;
* config highlights: the keys that define the experiment for its family (a deep run's depth,
  richness and DMFT samples; a two-layer run's particles, expectation and integrator), the task,
  the training and the time grid;
* final numbers: the limit's final risk (± its Monte Carlo error for the DMFT), each width's seed
  mean with its seed standard error, the sup-in-time gap to the limit, the limit solver's status;
* provenance: package version and git commit, command line, backend and thread counts, host CPU,
  when it finished, library versions;
* notices the run recorded (divergence, a comparison the limit does not describe exactly).
"""
from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["summary_text", "register"]


def _g(x, digits=4):
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


def _config_lines(cfg, summary) -> list:
    from .config import family_of

    fam = family_of(cfg)
    t, m, lim, tr, tm = cfg.task, cfg.model, cfg.limit, cfg.train, cfg.time
    task = f"{t.kind}, d = {t.d}" + (f", teacher k = {t.teacher_width}" if t.kind == "teacher_student" else "") \
        + (f", {t.path}" if t.kind == "dataset" else "") + f", {t.loss} loss"
    if fam == "deep":
        g0 = summary.get("gamma0", m.gamma0)
        model = f"deep muP, L = {m.depth}, {m.activation}, gamma0 = {_g(g0)}"
        limit = f"{lim.method}, dt = {lim.dt}" + (f", {lim.dmft_samples} samples ({lim.dmft_tangent_samples} "
                                                  "for the responses)" if lim.method == "dmft" else "")
    else:
        model = f"{m.kind if m.kind != 'network' else 'two-layer network'}, {m.activation}, alpha = {_g(m.alpha)}" \
            + (", bias" if m.bias else "")
        limit = "none" if lim.method == "none" else (
            f"{lim.method}, M = {lim.particles}, {summary.get('expectation', lim.expectation)} expectations, "
            f"{lim.integrator} dt = {lim.dt}")
    train = (f"{tr.algorithm}, lr = {tr.lr}" + (f", batch {tr.batch}" if tr.algorithm in ("sgd", "online_sgd") else "")
             + f"; widths {list(tr.widths)} x {tr.seeds} seeds" if tr.seeds else "none (train.seeds = 0)")
    dyn = []
    if fam != "deep":
        d = cfg.dynamics
        for key, label in (("temperature", "tau"), ("weight_decay", "lambda"), ("reaction_rate", "kappa")):
            if getattr(d, key):
                dyn.append(f"{label} = {getattr(d, key)}")
    lines = [f"  task      {task}", f"  model     {model}", f"  limit     {limit}", f"  train     {train}",
             f"  time      t_max = {tm.t_max}, "
             + (f"{len(tm.ts)} records at time.ts" if getattr(tm, "ts", None) else f"{tm.records} {tm.spacing} records")
             + (f", {tm.snapshots} snapshots" if fam != "deep" and tm.snapshots else "")]
    if dyn:
        lines.append(f"  dynamics  {', '.join(dyn)}")
    lines.append(f"  seed {cfg.run.seed}, {cfg.run.dtype}, backend {cfg.run.backend}"
                 + (f" -> {summary.get('backend')}" if summary.get("backend") not in (None, cfg.run.backend) else ""))
    return lines


def _final_lines(res) -> list:
    s, a = res.summary, res.arrays
    lines = []
    if "risk_mf" in a and np.size(a["risk_mf"]):
        r = np.asarray(a["risk_mf"], float)
        err = a.get("risk_mf_err")
        pm = f" ± {_g(np.asarray(err)[-1], 2)} (MC s.e.)" if err is not None and np.asarray(err)[-1] > 0 else ""
        lines.append(f"  limit     risk {_g(r[0])} at t = 0 -> {_g(r[-1])}{pm} at t = {_g(a['t'][-1])}")
    lim = s.get("limit")
    if isinstance(lim, dict) and lim.get("status"):
        lines.append(f"  solver    {lim.get('method')}: {lim['status']}, {lim.get('iterations')} iterations"
                     + (f", residual {_g(lim.get('final_residual'), 3)}" if lim.get("final_residual") is not None else ""))
    if "risk_nn" in a and np.size(a["risk_nn"]):
        rn = np.asarray(a["risk_nn"], float)[:, :, -1]
        gaps = s.get("risk_gap_sup", {})
        cells = []
        for i, N in enumerate(np.asarray(a["widths"]).astype(int)):
            x = rn[i][np.isfinite(rn[i])]
            se = f" ± {_g(x.std(ddof=1) / np.sqrt(x.size), 2)}" if x.size > 1 else ""
            gap = f" (sup gap {_g(gaps[str(N)], 3)})" if str(N) in gaps else ""
            cells.append(f"N = {N}: {_g(x.mean()) if x.size else 'nan'}{se}{gap}")
        lines.append("  networks  final risk, seed mean ± s.e.:")
        lines += [f"            {c}" for c in cells]
    return lines


def _provenance_lines(summary) -> list:
    p = summary.get("provenance", {}) or {}
    commit = p.get("git_commit")
    head = f"  {p.get('package', 'meanfield')} {p.get('version', '?')}" + (f", git {commit[:12]}"
                                                                          + ("+dirty" if commit.endswith("+dirty") else "")
                                                                          if commit else ", not from a git checkout")
    lines = [head]
    if p.get("command_line"):
        cmd = p["command_line"]  # in full in summary.json; one line here
        lines.append(f"  command   {cmd if len(cmd) <= 140 else cmd[:139] + '…'}")
    lines.append(f"  backend   {p.get('backend') or summary.get('backend')}, numba threads {p.get('numba_threads')}, "
                 f"BLAS threads {p.get('blas_threads')}")
    host = p.get("host_cpu")
    lines.append(f"  host      {host or '?'}" + (f", {p['cpu_count']} logical CPUs" if p.get("cpu_count") else "")
                 + (f"; {p['platform']}" if p.get("platform") else ""))
    libs = ", ".join(f"{k} {p[k]}" for k in ("python", "numpy", "scipy", "numba") if p.get(k))
    lines.append(f"  versions  {libs}" + (f"; finished {p['finished_utc']}" if p.get("finished_utc") else ""))
    return lines


def summary_text(path) -> str:
    """The one-screen summary of the run directory ``path`` (see the module docstring)."""
    from .core.result import load

    res = load(path)
    s = res.summary
    secs = s.get("seconds_total")
    out = [f"{path}: {res.kind} run, {s['status']}" + (f" in {secs:.1f} s" if secs is not None else "")]
    out += ["config"] + _config_lines(res.config, s)
    out += ["final"] + _final_lines(res)
    out += ["provenance"] + _provenance_lines(s)
    notes = [m for m in s.get("messages", [])] + [d.get("message", "") for d in s.get("diverged", [])]
    if notes:
        import textwrap

        out += ["notices"] + [line for n in notes[:6]
                              for line in textwrap.wrap(n, 110, initial_indent="  - ", subsequent_indent="    ")]
        out += [f"  ... {len(notes) - 6} more"] if len(notes) > 6 else []
    figs = sorted(f for f in os.listdir(path) if f.endswith((".png", ".pdf", ".gif")))
    out.append(f"files     {', '.join(sorted(f for f in os.listdir(path) if f in ('config.toml', 'result.npz', 'summary.json')))}"
               + (f" + {len(figs)} figures" if figs else f"; figures: meanfield plot {path}"))
    return "\n".join(out)


def _cmd_show(args):
    try:
        text = summary_text(args.dir)
    except FileNotFoundError as e:
        print(f"meanfield: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0


def register(sub):
    """Add the ``show`` and ``export`` subcommands."""
    from .cli import common_options
    from .export import FORMATS, cmd_export

    p = sub.add_parser("show", parents=[common_options()], help="one-screen summary of a run directory",
                       description="Summarise a run directory on one screen: config highlights, status, final "
                                   "numbers and provenance.")
    p.add_argument("dir", help="a run directory (written by meanfield run)")
    p.set_defaults(func=_cmd_show)
    e = sub.add_parser("export", parents=[common_options()], help="write a run as a labelled netCDF (or zarr) file",
                       description="Write a run directory's arrays with named dimensions, coordinates, meanings, "
                                   "the resolved config and provenance as one self-describing file "
                                   "(needs the [xarray] extra).")
    e.add_argument("dir", help="a run directory (written by meanfield run)")
    e.add_argument("--format", choices=tuple(FORMATS), default="netcdf", help="file format (default: netcdf)")
    e.add_argument("--out", help="output file (default: DIR/result.nc, or DIR/result.zarr)")
    e.add_argument("--force", action="store_true", help="replace the output file if it exists")
    e.set_defaults(func=cmd_export)
