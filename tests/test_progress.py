"""Feedback on long steps (meanfield.core.progress): one reporter for the time loop, the scan and the
DMFT iterations; ``auto`` is a bar where a human watches and a periodic plain line elsewhere."""
import io
import re
import subprocess
import sys

import numpy as np
import pytest

from helpers import tiny
from meanfield.core import progress as P
from meanfield.march import march


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_modes_resolve_to_bar_on_a_terminal_and_text_in_a_log():
    assert P.resolve("auto", _Tty()) == "bar"
    assert P.resolve("auto", io.StringIO()) == "text"  # a log file or a pipe
    assert P.resolve(True, io.StringIO()) == "text"     # the old bool API: True is auto
    assert P.resolve(False) == "none"
    assert P.resolve("bar", io.StringIO()) == "bar"
    with pytest.raises(ValueError, match="auto, bar, text, none"):
        P.resolve("sideways")


def _lines(text, desc):
    return [ln for ln in text.splitlines() if ln.startswith(desc + ":")]


def test_time_loop_text_lines_count_every_step(monkeypatch, capsys):
    """With a zero interval every step prints a line: the counts go 1..n of n, then a 'done' line."""
    monkeypatch.setenv("MEANFIELD_PROGRESS_INTERVAL", "0")
    n = 7
    march(lambda th, k: th * 0.5, np.ones(3), [0, n], 0.1, lambda th: {"risk": np.sum(th)}, desc="loop",
          progress="text")
    lines = _lines(capsys.readouterr().err, "loop")
    counts = [int(re.match(r"loop: (\d+)/7 step", ln).group(1)) for ln in lines]
    assert counts[:-1] == list(range(1, n + 1)) and counts[-1] == n
    assert lines[-1].endswith("done") and "(100 %)" in lines[-1]
    assert "left" in lines[2] and "left" not in lines[0]  # an estimate once a few steps are done


def test_short_task_prints_nothing_in_text_mode(capsys):
    """Logs stay clean: a task shorter than the interval (10 s default) prints no line at all."""
    march(lambda th, k: th, np.ones(2), [0, 3], 0.1, lambda th: {"risk": np.sum(th)}, desc="quiet", progress="text")
    assert capsys.readouterr().err == ""


def test_run_reports_the_limit_and_every_width(monkeypatch, capsys):
    import meanfield

    monkeypatch.setenv("MEANFIELD_PROGRESS_INTERVAL", "0")
    res = meanfield.run(tiny(), progress="text")
    err = capsys.readouterr().err
    steps = int(round(1.0 / 0.1))
    for desc in ("limit", "N=8", "N=16"):
        assert _lines(err, desc)[-1].startswith(f"{desc}: {steps}/{steps} step (100 %)"), err
    assert res.summary["status"] == "completed"


def test_run_refuses_a_bad_mode_before_working(capsys):
    import meanfield

    with pytest.raises(ValueError, match="progress = 'loud'"):
        meanfield.run(tiny(), progress="loud")


def test_run_defaults_to_auto():
    import inspect

    import meanfield

    assert inspect.signature(meanfield.run).parameters["progress"].default == "auto"
    assert inspect.signature(meanfield.run_to_dir).parameters["progress"].default == "auto"


def test_iteration_callback_shows_iteration_residual_stage():
    """Mappings and dataclass records (the DMFT solver's) are both understood; every call is one iteration."""
    from dataclasses import dataclass

    @dataclass
    class Rec:
        iteration: int
        stage: int
        n_stages: int
        horizon: int
        residual: float
        elapsed: float
        remaining: float
        phase: str = "solve"

    out = io.StringIO()
    cb, rep = P.iteration_callback("limit (dmft)", "text", stream=out, interval=0)
    cb(Rec(0, 1, 2, 10, float("nan"), 0.0, None))  # the solver's "starting" record: no iteration yet
    assert rep.n == 0 and "residual" not in out.getvalue()
    out.truncate(0), out.seek(0)
    cb({"iteration": 1, "residual": 0.3, "stage": 1, "n_stages": 2, "horizon": 10})
    cb(Rec(2, 1, 2, 10, 2e-3, 0.1, 5.0))
    cb(Rec(1, 2, 2, 20, 4e-9, 0.2, 0.0, phase="error batch 1/4"))
    rep.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("limit (dmft): 1 it") and "stage=1/2 (T=10)" in lines[0]
    assert "residual=3.00e-01" in lines[0]
    assert "2 it" in lines[1] and "residual=2.00e-03" in lines[1] and "left=~5 s" in lines[1]
    assert "3 it" in lines[2] and "phase=error batch 1/4" in lines[2] and "stage=2/2 (T=20)" in lines[2]
    assert lines[-1].startswith("limit (dmft): 3 it") and "done" in lines[-1]


def test_dmft_iterations_reach_the_reporter_through_the_solver_hook(monkeypatch, capsys):
    """The deep adapter hands the solver a per-iteration callback when the solver's signature has one
    (meanfield.deep.limits.HOOK_NAMES); here a solver with a hook replays its real residuals."""
    import meanfield
    import meanfield_solvers.dmft as dm
    from meanfield.deep import limits

    real = dm.solve_dmft

    def hooked(*a, progress=None, **kw):  # the hook's name in the DMFT solver: progress
        r = real(*a, **kw)
        for i, (res, T) in enumerate(zip(r.residuals, r.horizons), start=1):
            progress({"iteration": i, "residual": res, "horizon": int(T)})
        return r

    monkeypatch.setattr(dm, "solve_dmft", hooked)
    monkeypatch.setenv("MEANFIELD_PROGRESS_INTERVAL", "0")
    assert limits.iteration_hooks(lambda X, *, tol=1: None, "x", "text")[0] == {}  # no hook: no keyword
    cfg = tiny(**{"model.depth": 2, "model.activation": "tanh", "train.algorithm": "gd", "train.n_train": 4,
                  "eval.n_points": 2, "limit.method": "dmft", "limit.dt": 0.1, "train.lr": 0.1,
                  "limit.dmft_samples": 200, "limit.dmft_tangent_samples": 40, "limit.dmft_error_batches": 0,
                  "train.widths": [16], "train.seeds": 1, "time.t_max": 0.5, "time.records": 4})
    res = meanfield.run(cfg, progress="text")
    lines = _lines(capsys.readouterr().err, "limit (dmft)")
    n_it = len(res["dmft_residuals"])
    assert n_it >= 1 and lines[-1].startswith(f"limit (dmft): {n_it} it")
    assert f"residual={res['dmft_residuals'][-1]:.2e}" in lines[-1]


def test_scan_text_lines_count_runs(monkeypatch, tmp_path, capsys):
    from meanfield.scan.runner import run_scan

    monkeypatch.setenv("MEANFIELD_PROGRESS_INTERVAL", "0")
    spec = tmp_path / "s.toml"
    spec.write_text('seeds = 2\n[base.task]\nd = 3\nteacher_width = 2\n[base.limit]\nparticles = 16\ndt = 0.1\n'
                    '[base.train]\nwidths = [4]\nseeds = 1\nlr = 0.1\n[base.time]\nt_max = 0.2\nrecords = 2\n'
                    'snapshots = 0\n[base.eval]\nn_test = 50\nn_points = 2\n[base.run]\nbackend = "numpy"\n')
    rep = run_scan(str(spec), tmp_path / "out", workers=1, progress="text", log=lambda s: None)
    assert rep.exit_code == 0
    lines = _lines(capsys.readouterr().err, "scan")
    assert lines[-1].startswith("scan: 2/2 run (100 %)") and "completed=2" in lines[-1]


def test_shipped_backend_default_is_auto_and_resolves_to_numba():
    """The schema ships backend = 'auto' (the suite pins numpy in conftest; a fresh interpreter does
    not), and a run records the backend it resolved to."""
    import meanfield

    out = subprocess.run([sys.executable, "-c", "from meanfield import config; "
                          "print(config.SCHEMA['run']['backend'].default)"], capture_output=True, text=True)
    assert out.stdout.strip() == "auto", out.stderr
    notes = []
    res = meanfield.run(tiny(**{"run.backend": "auto", "train.seeds": 1, "train.widths": [8]}), progress="none",
                        log=notes.append)
    assert res.summary["backend"] == "numba" and res.summary["provenance"]["backend"] == "numba"
    assert any("backend auto -> numba" in n for n in notes)


def test_auto_shows_a_bar_in_a_notebook_kernel(monkeypatch):
    """In Jupyter stderr is not a terminal, yet a human watches the cell: auto must pick the bar
    (tqdm.auto then renders a widget)."""
    import types

    class ZMQInteractiveShell:
        pass

    ipy = types.SimpleNamespace(get_ipython=lambda: ZMQInteractiveShell())
    monkeypatch.setitem(sys.modules, "IPython", ipy)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert P.resolve("auto", io.StringIO()) == "bar"
    monkeypatch.setattr(ipy, "get_ipython", lambda: None)  # plain python with IPython merely imported
    assert P.resolve("auto", io.StringIO()) == "text"
