"""Running scans: run directories by id, the index, resume adds only new runs, failures are recorded."""
import json
import os
import sqlite3

import numpy as np
import pytest

from meanfield.cli import main
from meanfield.scan import collect, run_scan
from meanfield.scan.executors import LocalExecutor, threads_per_worker
from meanfield.scan.runner import format_report
from test_scan_helpers import hook_env, snapshot, write_spec


def _index_rows(out):
    db = sqlite3.connect(os.path.join(out, "index.sqlite"))
    db.row_factory = sqlite3.Row
    rows = {r["id"]: dict(r) for r in db.execute("SELECT * FROM runs")}
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    return rows, mode


def test_scan_writes_runs_by_id_and_adding_a_point_runs_one(tmp_path, capsys):
    out = str(tmp_path / "out")
    spec = write_spec(tmp_path, 'seeds = 2\n[axes]\n"task.d" = [3, 4]\n')
    rep = run_scan(spec, out, workers=2, progress=False)
    assert rep.exit_code == 0 and rep.ran == 4 and rep.counts["completed"] == 4
    rows, mode = _index_rows(out)
    assert mode == "wal"
    assert sorted(os.listdir(os.path.join(out, "runs"))) == sorted(rows)
    for rid, r in rows.items():
        d = os.path.join(out, "runs", rid)
        assert {"config.toml", "result.npz", "summary.json"} <= set(os.listdir(d))
        assert r["status"] == "completed" and r["attempts"] == 1 and r["seconds"] > 0
        assert set(json.loads(r["params"])) == {"task.d", "seed"}
        with np.load(os.path.join(d, "result.npz"), allow_pickle=False) as z:
            assert z["risk_nn"].shape[:2] == (1, 2)
    before = snapshot(out)

    # one more axis value with the same seeds: exactly its two runs are computed
    spec2 = write_spec(tmp_path, 'seeds = 2\n[axes]\n"task.d" = [3, 4, 5]\n', "spec2.toml")
    rep = run_scan(spec2, out, workers=2, progress=False)
    assert rep.ran == 2 and rep.counts["completed"] == 6
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before  # untouched, same mtimes
    # and a third identical invocation runs nothing, even with the index lost: the run
    # directories holding summary.json are trusted and re-indexed
    assert run_scan(spec2, out, workers=2, progress=False).ran == 0
    os.remove(os.path.join(out, "index.sqlite"))
    rep = run_scan(spec2, out, workers=2, progress=False)
    assert rep.ran == 0 and rep.counts["completed"] == 6
    assert snapshot(out) == after

    col = collect(out)
    assert len(col) == 6 and col.param_names == ["task.d"]
    assert list(col.table["task.d"]) == [3, 3, 4, 4, 5, 5] and list(col.table["seed"]) == [0, 1] * 3
    assert np.all(col.table["width"] == 8) and np.all(col.table["n_seeds"] == 2)
    assert np.all(np.isfinite(col.table["risk_gap"])) and np.all(col.table["risk_nn_final_seed_var"] >= 0)
    g = col.groups[0]
    assert g.params == {"task.d": 3} and list(g.seeds) == [0, 1]
    assert g.arrays["risk_nn"].shape == (2, 1, 2, len(g.arrays["t"])) and g.arrays["risk_mf"].shape[0] == 2
    # the CLI: status, collect to CSV, plot with a fit
    assert main(["status", out]) == 0
    assert "6 completed" in capsys.readouterr().out
    assert main(["collect", out, "--csv", str(tmp_path / "t.csv")]) == 0
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0].startswith("id,status,task.d,seed,width,") and len(lines) == 7
    assert main(["plot", out, "--x", "task.d", "--y", "risk_gap", "--fit"]) == 0
    fits = json.loads((tmp_path / "out" / "scan_risk_gap_vs_task.d.fits.json").read_text())["fits"]
    assert len(fits) == 1 and np.isfinite(fits[0]["slope"]) and fits[0]["slope_se"] > 0


def test_failures_are_recorded_and_the_scan_goes_on(tmp_path, monkeypatch):
    # good runs, one that raises at runtime, one that diverges (huge lr on a linear net),
    # one that kills its worker every time and one that kills it once
    for k, v in hook_env(**{"raise": ["boom"], "crash": {"crash3": 99, "crash1": 1}}).items():
        monkeypatch.setenv(k, v)
    spec = write_spec(tmp_path, """
seeds = 2
[[zip]]
"run.name" = ["tiny", "boom", "div", "crash3", "crash1"]
"model.activation" = ["erf", "erf", "linear", "erf", "erf"]
"train.lr" = [0.1, 0.1, 3.0, 0.1, 0.1]
"time.t_max" = [0.3, 0.3, 30.0, 0.3, 0.3]
"model.a_std" = [1.0, 1.0, 10.0, 1.0, 1.0]
""")
    out = str(tmp_path / "out")
    rep = run_scan(spec, out, workers=2, progress=False, log=lambda s: None)
    assert rep.counts == {"pending": 0, "running": 0, "completed": 4, "diverged": 2, "failed": 4}
    assert rep.exit_code == 1
    rows, _ = _index_rows(out)
    by = {}
    for r in rows.values():
        by.setdefault(json.loads(r["params"])["run.name"], []).append(r)
    for r in by["boom"]:
        assert r["status"] == "failed" and "test hook: run 'boom' raises" in r["error"] and r["crashes"] == 0
    for r in by["div"]:
        assert r["status"] == "diverged" and "non-finite" in r["error"]
        assert os.path.isfile(os.path.join(out, "runs", r["id"], "summary.json"))
    for r in by["crash3"]:  # killed its worker three times: failed, not retried again
        assert r["status"] == "failed" and r["crashes"] == 3 and r["attempts"] == 3
        assert "SIGKILL" in r["error"]
    for r in by["crash1"]:  # killed once, then completed on the retry
        assert r["status"] == "completed" and r["crashes"] == 1 and r["attempts"] == 2
    text = format_report(rep)
    assert "4 completed, 2 diverged, 4 failed" in text and "boom" in text
    # rerunning retries nothing that failed or diverged; --retry-failed retries the failed ones
    assert run_scan(spec, out, workers=2, progress=False, log=lambda s: None).ran == 0
    monkeypatch.delenv("MEANFIELD_SCAN_TEST_HOOK")
    rep = run_scan(spec, out, workers=2, progress=False, retry_failed=True, log=lambda s: None)
    assert rep.ran == 4 and rep.counts["completed"] == 8 and rep.counts["diverged"] == 2
    col = collect(out)
    assert set(col.table["status"]) == {"completed", "diverged"} and len(col) == 10


class _Events:
    def __init__(self):
        self.results = []

    def started(self, rid, worker):
        pass

    def finished(self, res):
        self.results.append(res)

    def crashed(self, rid, error, final=False):
        raise AssertionError(error)


def test_workers_are_pinned_to_their_share_of_cores(tmp_path):
    from meanfield import config as C
    from meanfield.scan import canonical_json, run_id
    from test_scan_helpers import TINY_BASE
    import tomllib

    base = tomllib.loads(TINY_BASE)["base"]
    tasks = []
    for s in range(3):
        base["run"]["seed"] = s
        cfg = C.from_dict(base)
        tasks.append((run_id(cfg), canonical_json(cfg), str(tmp_path / run_id(cfg))))
    ev = _Events()
    LocalExecutor(workers=2).map(tasks, ev)
    assert len(ev.results) == 3 and {r["status"] for r in ev.results} == {"completed"}
    assert {r["threads"] for r in ev.results} == {threads_per_worker(2)}
    assert len({r["pid"] for r in ev.results}) == 2  # two spawned workers, reused across runs


def test_one_coordinator_per_directory(tmp_path):
    import fcntl

    from meanfield.scan import ScanRefused

    out = tmp_path / "out"
    out.mkdir()
    spec = write_spec(tmp_path, "seeds = 1\n")
    with open(out / ".coordinator.lock", "w") as fh:  # as if another scan process held it
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(ScanRefused, match="another scan process"):
            run_scan(spec, out, workers=1, progress=False)
    assert run_scan(spec, out, workers=1, progress=False).exit_code == 0


def test_worker_recomputes_a_run_whose_summary_is_unreadable(tmp_path):
    """A corrupt summary.json is treated as unfinished by the coordinator and recomputed by the worker."""
    import json as _json

    from meanfield.config import from_dict
    from meanfield.scan.executors import execute_run

    cfg = from_dict({"task": {"d": 3, "teacher_width": 2}, "limit": {"particles": 8, "dt": 0.1},
                     "train": {"widths": [4], "seeds": 1, "lr": 0.1}, "time": {"t_max": 0.3, "records": 3}})
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{not json")
    rep = execute_run("x", _json.dumps(cfg.to_dict()), str(out))
    assert rep["status"] == "completed" and not rep["reused"], rep["error"]
    assert _json.loads((out / "summary.json").read_text())["status"] == "completed"
