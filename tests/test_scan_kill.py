"""kill -9 of the coordinator midway, then resume: nothing recomputed, nothing duplicated, same table."""
import os
import signal
import subprocess
import sys
import time

from meanfield.scan import collect, run_scan
from test_scan_helpers import comparable, hook_env, snapshot, write_spec

SPEC = 'seeds = 10\n[axes]\n"task.d" = [3, 4]\n"model.alpha" = [1.0, 2.0]\n'  # 40 runs


def _finished(out):
    runs = os.path.join(out, "runs")
    if not os.path.isdir(runs):
        return 0
    return sum(os.path.isfile(os.path.join(runs, d, "summary.json")) for d in os.listdir(runs))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def test_sigkill_coordinator_then_resume(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    out = str(tmp_path / "killed")
    env = dict(os.environ, **hook_env(sleep=0.1))  # slow the runs down so the kill lands midway
    proc = subprocess.Popen([sys.executable, "-m", "meanfield.cli", "scan", spec, "--out", out, "--workers", "2",
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    workers = []
    while _finished(out) < 8 and time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid) or workers
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    # orphaned workers notice and exit (they poll their parent) instead of computing on
    t = time.monotonic()
    while any(_alive(w) for w in workers) and time.monotonic() - t < 5:
        time.sleep(0.05)
    assert workers and not any(_alive(w) for w in workers)
    n_done = _finished(out)
    assert 8 <= n_done < 40, n_done
    # the finished runs (an attempt killed mid-write may also have left a .tmp- file: removed on resume)
    finished = {k.split(os.sep)[0] for k in snapshot(out) if k.endswith("summary.json")}
    before = {k: v for k, v in snapshot(out).items() if k.split(os.sep)[0] in finished}

    rep = run_scan(spec, out, workers=2, progress=False)
    assert rep.exit_code == 0 and rep.counts["completed"] == 40
    assert rep.ran == 40 - n_done  # the finished runs were trusted, the rest computed once
    after = snapshot(out)
    assert {k: after[k] for k in before} == before  # same bytes, same mtimes
    assert len(os.listdir(os.path.join(out, "runs"))) == 40  # no duplicates
    assert not [k for k in after if os.path.basename(k).startswith(".tmp-")]

    ref = str(tmp_path / "ref")
    assert run_scan(spec, ref, workers=2, progress=False).exit_code == 0
    assert sorted(os.listdir(os.path.join(ref, "runs"))) == sorted(os.listdir(os.path.join(out, "runs")))
    a, b = collect(out), collect(ref)
    assert comparable(a.table) == comparable(b.table)
    for ga, gb in zip(a.groups, b.groups):
        assert ga.params == gb.params
        for k in ("risk_mf", "risk_nn"):
            assert (ga.arrays[k] == gb.arrays[k]).all()
