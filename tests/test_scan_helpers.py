"""Tiny scan specs shared by the scan tests (each run takes a few milliseconds); no tests here."""
import json
import os

# backend named: a scan started by a fresh `meanfield` process (product default "auto") and resumed in
# the test process (conftest pins the default to numpy) must resolve to the same run ids
TINY_BASE = """
[base.run]
name = "tiny"
backend = "numpy"
[base.task]
d = 3
teacher_width = 2
[base.limit]
particles = 16
expectation = "analytic"
dt = 0.1
[base.train]
widths = [8]
seeds = 2
lr = 0.1
batch = 8
[base.time]
t_max = 0.3
records = 3
snapshots = 0
[base.eval]
n_test = 50
n_points = 2
"""


def write_spec(folder, body, name="spec.toml"):
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write(body + "\n" + TINY_BASE)  # top-level keys (seeds) must precede the tables
    return path


def hook_env(**hook):
    """Environment for the scan test hook (workers inherit it)."""
    return {"MEANFIELD_SCAN_TEST_HOOK": json.dumps(hook)}


def snapshot(root):
    """``{relative path: (size, mtime_ns, bytes)}`` of every file under ``root/runs``."""
    out = {}
    base = os.path.join(root, "runs")
    for d, _, files in os.walk(base):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, base)] = (st.st_size, st.st_mtime_ns, fh.read())
    return out


def comparable(table, drop=("seconds",)):
    """Table columns as lists, without the timing column (the only thing that may differ)."""
    return {k: [str(x) for x in v.tolist()] for k, v in table.items() if k not in drop}
