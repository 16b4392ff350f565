"""Every CLI subcommand on a corpus of bad inputs (issue 17, defects 13-15).

For each case: exit status 2, the offending key or file named in the message, no traceback (and
not the last-resort "internal error" line), nothing written in the working folder, and the
command answers in under a second (a FIFO must not hang, an unreachable scheduler must not wait
30 s, an oversized run must be refused by its estimate, not by the allocator).
"""
import json
import os
import time

import numpy as np
import pytest

from meanfield import store
from meanfield.cli import main
from meanfield.config import from_dict, to_toml
from helpers import tiny


def _toml(tmp, name, **over):
    p = tmp / name
    p.write_text(to_toml(from_dict(tiny(**over))))
    return str(p)


def _raw(tmp, name, text):
    p = tmp / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


def _partial_toml(tmp, name, over):
    """A config file from ``tiny()`` with raw (possibly invalid) values, without validating it."""
    data = tiny()
    for k, v in over.items():
        sec, key = k.split(".", 1)
        data.setdefault(sec, {})[key] = v
    return _raw(tmp, name, "".join(f"[{s}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in t.items())
                                   for s, t in data.items()))


def _fifo(tmp, name="fifo.toml"):
    p = tmp / name
    os.mkfifo(p)
    return str(p)


def _dataset(tmp, name, **arrays):
    p = tmp / name
    np.savez(p, **arrays)
    return str(p)


def _spec(tmp, name, base, extra=""):
    return _raw(tmp, name, f"base = {json.dumps(base)}\n{extra}")


HUGE = {  # key -> the config overrides that make the run too large for any machine
    "train.widths": {"train.widths": [10**9]},
    "limit.particles": {"limit.particles": 10**10},
    "limit.mc_samples": {"limit.expectation": "mc", "limit.mc_samples": 10**11},
    "eval.n_test": {"eval.n_test": 10**11},
    "train.batch": {"train.batch": 10**11},
    "task.d": {"task.d": 10**10},
    "time.records": {"time.records": 10**11},
    "train.seeds": {"train.seeds": 10**9},
}


def _cases():
    """(id, build(tmp) -> (argv, [strings the message must contain]))."""
    c = []
    add = lambda name, fn: c.append(pytest.param(fn, id=name))  # noqa: E731
    # ---------------------------------------------------------------- run: the config file
    add("run-missing-file", lambda t: (["run", str(t / "nope.toml")], ["nope.toml"]))
    add("run-directory", lambda t: (["run", str(t)], ["is a directory", str(t)]))
    add("run-fifo", lambda t: (["run", _fifo(t)], ["fifo.toml", "not a regular file"]))
    add("run-not-utf8", lambda t: (["run", _raw(t, "l1.toml", b"[run]\nname = \"caf\xe9\"\n")], ["l1.toml", "UTF-8"]))
    add("run-bad-toml", lambda t: (["run", _raw(t, "bad.toml", "[run\n")], ["bad.toml", "TOML"]))
    add("run-empty", lambda t: (["run", _raw(t, "empty.toml", "# nothing\n")], ["empty.toml", "meanfield template"]))
    add("run-unknown-key", lambda t: (["run", _partial_toml(t, "c.toml", {"train.lrr": 0.1})], ["train.lrr", "train.lr"]))
    add("run-bad-type", lambda t: (["run", _partial_toml(t, "c.toml", {"train.lr": "0.1"})], ["train.lr", "quotes"]))
    add("run-not-finite", lambda t: (["run", _toml(t, "c.toml"), "--set", "train.lr=inf"], ["train.lr", "finite"]))
    add("run-bad-set", lambda t: (["run", _toml(t, "c.toml"), "--set", "lr0.1"], ["--set", "lr0.1"]))
    add("run-name-escapes", lambda t: (["run", _partial_toml(t, "c.toml", {"run.name": "../x"})], ["run.name"]))
    add("run-name-slash", lambda t: (["run", _partial_toml(t, "c.toml", {"run.name": "a/b"})], ["run.name"]))
    add("run-nothing-to-do", lambda t: (["run", _partial_toml(t, "c.toml", {"limit.method": "none", "train.seeds": 0})],
                                        ["limit.method", "train.seeds"]))
    # a per-key problem and a cross-field problem of other keys: both in one message
    add("run-every-problem", lambda t: (["run", _partial_toml(t, "c.toml", {"train.lr": -1.0, "model.antithetic": True,
                                                                             "train.widths": [7]})],
                                        ["train.lr", "antithetic", "[7]", "2 problem"]))
    for key, over in HUGE.items():
        add(f"run-huge-{key}", lambda t, over=over, key=key: (["run", _partial_toml(t, "c.toml", over)],
                                                              [key, "run.max_memory_gb"]))
    add("run-huge-deep-width", lambda t: (["run", _partial_toml(t, "c.toml", {
        "model.depth": 2, "model.activation": "relu", "limit.method": "none", "train.algorithm": "gd",
        "train.n_train": 8, "train.widths": [10**6], "train.coupling": False})], ["train.widths", "GB"]))
    add("run-memory-limit-configurable", lambda t: (["run", _toml(t, "c.toml"), "--set", "run.max_memory_gb=0.001"],
                                                    ["run.max_memory_gb = 0.001"]))
    add("run-dataset-zero-rows", lambda t: (["run", _partial_toml(t, "c.toml", {
        "task.kind": "dataset", "task.path": _dataset(t, "z.npz", X=np.zeros((0, 3)), y=np.zeros(0))})],
        ["z.npz", "zero rows"]))
    add("run-dataset-not-arrays", lambda t: (["run", _partial_toml(t, "c.toml", {
        "task.kind": "dataset", "task.path": _dataset(t, "s.npz", X=np.array([["a", "b"]]), y=np.array(["c"]))})],
        ["task.path", "numeric"]))
    add("run-dataset-pickled", lambda t: (["run", _partial_toml(t, "c.toml", {
        "task.kind": "dataset", "task.path": _dataset(t, "o.npz", X=np.array([{"a": 1}], dtype=object),
                                                      y=np.zeros(1))})], ["o.npz"]))
    add("run-dataset-directory", lambda t: (["run", _partial_toml(t, "c.toml", {
        "task.kind": "dataset", "task.path": str(t)})], ["task.path"]))
    add("run-out-is-file", lambda t: (["run", _toml(t, "c.toml"), "--out", _raw(t, "f", "x")], ["--out", "not a directory"]))
    add("run-out-under-file", lambda t: (["run", _toml(t, "c.toml"), "--out", os.path.join(_raw(t, "f", "x"), "r")],
                                         ["--out", "is a file"]))
    add("run-out-unwritable", lambda t: (["run", _toml(t, "c.toml"), "--out", "/proc/meanfield-x"],
                                         ["/proc/meanfield-x", "cannot write"]))
    # ---------------------------------------------------------------- template
    add("template-out-exists", lambda t: (["template", "--out", _raw(t, "f.toml", "x")], ["f.toml", "exists"]))
    add("template-out-missing-folder", lambda t: (["template", "--out", str(t / "no" / "f.toml")], ["does not exist"]))
    # ---------------------------------------------------------------- scan
    add("scan-missing-spec", lambda t: (["scan", str(t / "s.toml")], ["s.toml"]))
    add("scan-spec-directory", lambda t: (["scan", str(t)], ["is a directory"]))
    add("scan-spec-fifo", lambda t: (["scan", _fifo(t)], ["fifo.toml", "not a regular file"]))
    add("scan-spec-not-utf8", lambda t: (["scan", _raw(t, "s.toml", b"seeds = 2 # \xff\n")], ["s.toml", "UTF-8"]))
    add("scan-base-directory", lambda t: (["scan", _spec(t, "s.toml", str(t))], ["base", "is a directory"]))
    add("scan-base-fifo", lambda t: (["scan", _spec(t, "s.toml", _fifo(t))], ["base", "not a regular file"]))
    add("scan-workers-0", lambda t: (["scan", _spec(t, "s.toml", _toml(t, "c.toml")), "--workers", "0"], ["--workers"]))
    add("scan-workers-negative", lambda t: (["scan", _spec(t, "s.toml", _toml(t, "c.toml")), "-j", "-3"], ["--workers"]))
    add("scan-out-is-file", lambda t: (["scan", _spec(t, "s.toml", _toml(t, "c.toml")), "--out", _raw(t, "f", "x")],
                                       ["--out", "not a directory"]))
    add("scan-scheduler-unreachable", lambda t: (["scan", _spec(t, "s.toml", _toml(t, "c.toml")), "--out",
                                                  str(t / "o"), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"],
                                                 ["--scheduler", "127.0.0.1:1"]))
    add("scan-bad-point", lambda t: (["scan", _spec(t, "s.toml", _toml(t, "c.toml"), '[axes]\n"train.lr" = [0.1, -1.0]\n')],
                                     ["train.lr", "point"]))
    add("scan-huge-point", lambda t: (["scan", _spec(t, "s.toml", _toml(t, "c.toml"),
                                                     '[axes]\n"limit.particles" = [16, 10000000000]\n')],
                                      ["limit.particles", "run.max_memory_gb"]))
    # ---------------------------------------------------------------- init, show, export
    add("init-unknown-template", lambda t: (["init", "foo", str(t / "x.toml")], ["foo"]))
    add("init-template-without-file", lambda t: (["init", "deep"], ["init deep needs the file"]))
    add("init-missing-folder", lambda t: (["init", "two-layer", str(t / "nope" / "x.toml")], ["nope", "does not exist"]))
    add("init-too-many-words", lambda t: (["init", "deep", "a.toml", "b.toml"], ["[TEMPLATE] FILE"]))
    add("show-missing", lambda t: (["show", str(t / "nope")], ["nope"]))
    add("show-unfinished", lambda t: (["show", str(t)], ["no finished run"]))
    add("export-missing", lambda t: (["export", str(t / "nope")], ["nope"]))
    add("export-unfinished", lambda t: (["export", str(t)], ["no finished run"]))
    # ---------------------------------------------------------------- coordcheck
    add("coordcheck-missing", lambda t: (["coordcheck", str(t / "nope.toml")], ["nope.toml"]))
    add("coordcheck-bad-parametrisation", lambda t: (["coordcheck", _toml(t, "c.toml"), "--parametrisations",
                                                      "mup,foo"], ["--parametrisations", "foo"]))
    add("coordcheck-steps", lambda t: (["coordcheck", _toml(t, "c.toml"), "--steps", "0"], ["--steps"]))
    add("coordcheck-out-is-file", lambda t: (["coordcheck", _toml(t, "c.toml"), "--out", _raw(t, "f", "x")],
                                             ["--out", "not a directory"]))
    # ---------------------------------------------------------------- status, collect, plot
    add("status-missing", lambda t: (["status", str(t / "nope")], ["nope"]))
    add("status-file", lambda t: (["status", _raw(t, "f", "x")], ["not a directory"]))
    add("status-no-index", lambda t: (["status", str(t)], ["index.sqlite"]))
    add("collect-missing", lambda t: (["collect", str(t / "nope")], ["nope"]))
    add("collect-file", lambda t: (["collect", _raw(t, "f", "x")], ["not a directory"]))
    add("plot-missing", lambda t: (["plot", str(t / "nope")], ["nope"]))
    add("plot-file", lambda t: (["plot", _raw(t, "f", "x")], ["not a directory"]))
    add("plot-unfinished", lambda t: (["plot", str(t)], ["no finished run"]))
    return c


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory):
    """One small finished scan, copied by the cases that need one."""
    t = tmp_path_factory.mktemp("scan")
    spec = _spec(t, "s.toml", _toml(t, "c.toml", **{"train.seeds": 1, "train.widths": [8],
                                                    "limit.particles": 16, "time.records": 3}), "seeds = 2\n")
    assert main(["scan", spec, "--out", str(t / "scan"), "-j", "1", "-q"]) == 0
    return t / "scan"


def _scan_cases():
    def garbled(s):
        rid = sorted(os.listdir(s / "runs"))[0]
        (s / "runs" / rid / "summary.json").write_text('{"status": "compl')
        return ["collect", str(s)], [rid, "summary.json", "meanfield scan"]

    def truncated(s):
        rid = sorted(os.listdir(s / "runs"))[1]
        f = s / "runs" / rid / "result.npz"
        f.write_bytes(f.read_bytes()[:200])
        return ["collect", str(s)], [rid, "result.npz"]

    def csv_missing_folder(s):
        return ["collect", str(s), "--csv", str(s.parent / "no" / "t.csv")], ["--csv", "does not exist"]

    def csv_onto_folder(s):
        return ["collect", str(s), "--csv", str(s.parent)], ["--csv", "is a directory"]

    def bad_index(cmd):
        def f(s):
            (s / "index.sqlite").write_bytes(b"garbage" * 1000)
            for x in ("-wal", "-shm"):
                if os.path.exists(str(s / "index.sqlite") + x):
                    os.unlink(str(s / "index.sqlite") + x)
            return [cmd, str(s)], ["index.sqlite", "meanfield scan"]
        return f

    def plot_damaged_run(s):
        rid = sorted(os.listdir(s / "runs"))[0]
        f = s / "runs" / rid / "result.npz"
        f.write_bytes(f.read_bytes()[:200])
        return ["plot", str(s / "runs" / rid)], ["result.npz", "damaged"]

    return [pytest.param(f, id=n) for n, f in [
        ("collect-garbled-summary", garbled), ("collect-truncated-result", truncated),
        ("collect-csv-missing-folder", csv_missing_folder), ("collect-csv-onto-folder", csv_onto_folder),
        ("status-corrupt-index", bad_index("status")), ("collect-corrupt-index", bad_index("collect")),
        ("plot-damaged-run", plot_damaged_run)]]


def _tree(root):
    """Every path under ``root``; files with size, mtime and mode. Directory mtimes are left out:
    sqlite's readers create and remove their ``-shm``/``-wal`` files, which leaves nothing behind."""
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for f in dirnames:
            out[os.path.join(dirpath, f)] = "dir"
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def _check(tmp_path, monkeypatch, capsys, argv, expect, watch):
    monkeypatch.chdir(tmp_path)  # a default output (runs/...) would land here
    before = _tree(watch)
    capsys.readouterr()
    t0 = time.perf_counter()
    rc = main(argv)  # argparse's usage errors come back as status 2 too
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    for s in expect:
        assert s in err, (s, err)
    assert _tree(watch) == before, "something was written"
    assert elapsed < 1.0, f"{elapsed:.2f} s"


@pytest.fixture(autouse=True, scope="module")
def _warm():
    """Import what the commands import, so that the one-second bound times the command, not imports."""
    import meanfield.plot  # noqa: F401
    import meanfield.run  # noqa: F401
    import meanfield.scan.cli  # noqa: F401
    import meanfield.scan.collect  # noqa: F401


@pytest.mark.parametrize("build", _cases())
def test_bad_input_exits_2_naming_it_and_writing_nothing(build, tmp_path, monkeypatch, capsys):
    work = tmp_path / "w"
    work.mkdir()
    argv, expect = build(work)
    _check(work, monkeypatch, capsys, argv, expect, work)


@pytest.mark.parametrize("build", _scan_cases())
def test_bad_scan_directory_exits_2_naming_it_and_writing_nothing(build, scan_dir, tmp_path, monkeypatch, capsys):
    import shutil

    s = tmp_path / "scan"
    shutil.copytree(scan_dir, s)
    argv, expect = build(s)
    _check(tmp_path, monkeypatch, capsys, argv, expect, tmp_path)


def test_the_corpus_covers_every_subcommand():
    from meanfield.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    covered = {p.id.split("-")[0] for p in _cases() + _scan_cases()}
    assert set(sub.choices) - {"bench"} <= covered  # bench hands its arguments to benchmarks/suite.py


def test_template_runs_the_defaults_on_purpose(tmp_path, capsys):
    from meanfield.config import SCHEMA, load

    assert main(["template", "--out", str(tmp_path / "t.toml")]) == 0
    cfg = load(tmp_path / "t.toml")
    assert cfg.to_dict()["train"]["widths"] == SCHEMA["train"]["widths"].default
    assert (tmp_path / "t.toml").stat().st_mode & 0o777 == store.file_mode()
