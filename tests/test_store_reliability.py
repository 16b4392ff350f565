"""Results on disk (issue 17, defects 9, 10, 11, 15): kills, damage, full or unwritable locations, modes.

Each test here fails on the code before the fix: the old ``--overwrite`` deleted the old
summary first, ``collect`` met a truncated ``result.npz`` with a BadZipFile traceback and a scan
never recomputed it, a corrupt ``index.sqlite`` was a traceback in scan/status/collect, an
unwritable output was found after the computation, and files were 0600 whatever the umask.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

import meanfield
from meanfield import store
from meanfield.cli import main
from meanfield.config import from_dict, to_toml
from helpers import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snapshot(out):
    return {f: (out / f).read_bytes() for f in store.RUN_FILES}


def _config_file(tmp_path, name, **over):
    p = tmp_path / name
    p.write_text(to_toml(from_dict(tiny(**over))))
    return p


@pytest.mark.parametrize("phase", ["staged-result", "staged", "swapped"])
def test_killed_overwrite_leaves_the_old_run_or_the_new_run_whole(tmp_path, phase):
    """SIGKILL of `meanfield run --overwrite` at three points of the write: before the new run is
    complete, when it is complete but not yet published, and after the swap before the old run is
    removed. `out` holds one whole run (the old before the swap, the new after it), every file
    matching the checksums of its own summary; the next run cleans up what the kill left."""
    old_cfg = _config_file(tmp_path, "old.toml")
    new_cfg = _config_file(tmp_path, "new.toml", **{"run.seed": 9})
    out = tmp_path / "r"
    assert main(["run", str(old_cfg), "--out", str(out), "-q"]) == 0
    old = _snapshot(out)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **{store.TEST_KILL_ENV: phase})
    p = subprocess.run([sys.executable, "-m", "meanfield.cli", "run", str(new_cfg), "--out", str(out),
                        "--overwrite", "-q"], env=env, capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    assert store.verify_run(out) == []
    now = _snapshot(out)
    if phase == "swapped":
        assert now != old and json.loads(now["summary.json"])["files"]["config.toml"]["sha256"]
        assert b"seed = 9" in now["config.toml"]
    else:
        assert now == old
    # the next run cleans the leftovers of the killed one and replaces the run whole
    assert main(["run", str(new_cfg), "--out", str(out), "--overwrite", "-q"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["new.toml", "old.toml", "r"]
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]
    assert b"seed = 9" in (out / "config.toml").read_bytes() and store.verify_run(out) == []


def test_tmp_files_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    cfg = _config_file(tmp_path, "c.toml")
    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **{store.TEST_KILL_ENV: "in-place-result"})
    p = subprocess.run([sys.executable, "-m", "meanfield.cli", "run", str(cfg), "--out", str(out), "-q"],
                       env=env, capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    (out / ".tmp-abc-result.npz").write_bytes(b"half a file")  # what a kill mid-write leaves
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    assert sorted(os.listdir(out)) == sorted(store.RUN_FILES)


def test_a_live_writers_tmp_file_is_not_removed(tmp_path):
    import fcntl

    live = tmp_path / ".tmp-live-result.npz"
    fd = os.open(live, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    dead = tmp_path / ".tmp-dead-result.npz"
    dead.write_bytes(b"x")
    try:
        assert store.clean_partial(tmp_path) == [dead.name]
        assert live.exists()
    finally:
        os.close(fd)


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        meanfield.run_to_dir(tiny(), tmp_path / "a")
        os.umask(0o077)
        meanfield.run_to_dir(tiny(), tmp_path / "b")
    finally:
        os.umask(old)
    for f in store.RUN_FILES:
        assert (tmp_path / "a" / f).stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "b" / f).stat().st_mode & 0o777 == 0o600


def test_verify_run_detects_truncation_and_alteration(tmp_path):
    out = tmp_path / "r"
    meanfield.run_to_dir(tiny(), out)
    assert store.verify_run(out) == []
    data = (out / "result.npz").read_bytes()
    (out / "result.npz").write_bytes(data[: len(data) // 2])
    assert "truncated" in store.verify_run(out)[0]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    (out / "result.npz").write_bytes(bytes(flipped))
    assert "sha256" in store.verify_run(out)[0]
    with pytest.raises(ValueError, match="damaged"):
        meanfield.load(out)


def test_unwritable_or_full_output_is_refused_before_computing(tmp_path, monkeypatch, capsys):
    cfg = _config_file(tmp_path, "c.toml")
    afile = tmp_path / "afile"
    afile.write_text("x")
    # under a file: nothing can be created there (root ignores permission bits, so not chmod)
    assert main(["run", str(cfg), "--out", str(afile / "sub"), "-q"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["run", str(cfg), "--out", "/proc/meanfield-test", "-q"]) == 2
    assert "cannot write" in capsys.readouterr().err

    def computed(*a, **k):
        raise AssertionError("the run was computed")

    import importlib

    monkeypatch.setattr(importlib.import_module("meanfield.run"), "run", computed)

    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(os, "statvfs", lambda p: Full())
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "GB free" in err and "--out" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- scans
def _scan(tmp_path):
    spec = tmp_path / "s.toml"
    base = tiny(**{"train.seeds": 1, "train.widths": [8], "limit.particles": 16, "time.records": 3})
    spec.write_text("seeds = 2\n" + "".join(
        f"[base.{sec}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in tab.items()) for sec, tab in base.items()))
    out = tmp_path / "scan"
    assert main(["scan", str(spec), "--out", str(out), "--workers", "1", "-q"]) == 0
    return spec, out


def test_damaged_scan_runs_are_recomputed_and_a_corrupt_index_rebuilt(tmp_path, capsys):
    spec, out = _scan(tmp_path)
    runs = sorted(os.listdir(out / "runs"))
    before = {r: np.load(out / "runs" / r / "result.npz")["risk_mf"] for r in runs}
    first = out / "runs" / runs[0] / "result.npz"
    first.write_bytes(first.read_bytes()[:100])  # truncated beside a valid summary.json
    (out / "runs" / runs[1] / "summary.json").write_text("{garbled")
    capsys.readouterr()
    assert main(["collect", str(out)]) == 2  # was: BadZipFile traceback, forever
    err = capsys.readouterr().err
    assert runs[0] in err and runs[1] in err and "meanfield scan" in err
    (out / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for f in ("index.sqlite-wal", "index.sqlite-shm"):
        if (out / f).exists():
            (out / f).unlink()
    for cmd in (["status", str(out)], ["collect", str(out)]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "index.sqlite" in err and "rebuild it" in err and "Traceback" not in err
    assert main(["scan", str(spec), "--out", str(out), "--workers", "1", "-q"]) == 0
    err = capsys.readouterr().err
    assert "rebuilt the index" in err and "computed again" in err
    assert main(["collect", str(out)]) == 0
    after = {r: np.load(out / "runs" / r / "result.npz")["risk_mf"] for r in runs}
    assert all(np.array_equal(before[r], after[r]) for r in runs)  # recomputed bit for bit
    assert (out / "runs" / runs[1] / "summary.json.corrupt").exists()


def test_sqlite_damage_inside_the_file_is_detected(tmp_path):
    from meanfield.scan.store import Index, IndexCorrupt

    _, out = _scan(tmp_path)
    db = sqlite3.connect(out / "index.sqlite")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    raw = bytearray((out / "index.sqlite").read_bytes())
    assert len(raw) >= 3 * 4096
    raw[4096: 2 * 4096] = b"\xff" * 4096  # the second page (a table's b-tree root)
    (out / "index.sqlite").write_bytes(bytes(raw))
    with pytest.raises(IndexCorrupt):
        Index(out / "index.sqlite", readonly=True)


def test_fallback_swap_killed_between_its_renames_is_repaired(tmp_path, monkeypatch):
    """Without renameat2 the swap is two renames; an interruption between them leaves `out`
    missing and the old run whole in `.r.old-*`, and the next run puts it back before anything."""
    out = tmp_path / "r"
    meanfield.run_to_dir(tiny(), out)
    old = _snapshot(out)
    res = meanfield.run(tiny(**{"run.seed": 3}))
    monkeypatch.setattr(store, "_exchange", lambda a, b: False)
    real = os.rename
    calls = []

    def second_fails(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(a, b)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(KeyboardInterrupt):
        res.save(out)
    monkeypatch.setattr(os, "rename", real)
    assert not out.exists() and any(f.startswith(".r.old-") for f in os.listdir(tmp_path))
    notes = store.recover_run_dir(out)
    assert any("restored" in n for n in notes)
    assert _snapshot(out) == old and sorted(os.listdir(tmp_path)) == ["r"]
    res.save(out)  # and the fallback swap completes when not interrupted
    assert b"seed = 3" in (out / "config.toml").read_bytes() and sorted(os.listdir(tmp_path)) == ["r"]
