"""The benchmark suite's plumbing at tiny sizes (record keys, ratios, table, JSON, CLI parsing)."""
import json

import numpy as np
import pytest

pytest.importorskip("numba")

from benchmarks import suite  # noqa: E402

KEYS = {"workload", "backend", "dtype", "N", "d", "M", "S", "seconds_per_step", "throughput",
        "throughput_unit", "ratio_vs_numpy", "ratio_vs_torch", "roofline_fraction"}


def test_workloads_tiny(tmp_path, monkeypatch):
    backends = suite._backends()
    assert [n for n, _ in backends][:2] == ["numpy", "numba"]
    peaks = {("numpy", np.float64): 1e10, ("numba", np.float64): 1e10}
    rows = []
    suite._pairwise_erf(backends, None, [40], 3, [np.float64], 1, 40, peaks, rows)
    suite._mc_step(backends, None, [(30, 20)], 3, [np.float64], 1, 1e9, peaks, rows)
    suite._ensemble_step(backends, 3, 8, 3, 5, [np.float64], 1, peaks, rows)
    assert {r["workload"] for r in rows} == {"pairwise_erf", "mc_step", "ensemble_step"}
    for r in rows:
        assert KEYS <= set(r)
        assert r["seconds_per_step"] > 0 and r["throughput"] > 0
        assert r["ratio_vs_torch"] is None
        assert r["ratio_vs_numpy"] is not None and 0 < r["roofline_fraction"] < 10
    ref = [r for r in rows if r["backend"] == "numpy" and r["workload"] == "pairwise_erf"][0]
    assert ref["ratio_vs_numpy"] == 1.0 and ref["throughput_unit"] == "pairs/s"
    assert [r["backend"] for r in rows if r["workload"] == "ensemble_step"][0] == "numpy-loop"
    table = suite.format_table(rows)
    assert "pairwise_erf" in table and "seed*steps/s" in table

    # main() end to end with the suite replaced by the tiny rows
    monkeypatch.setattr(suite, "run_suite", lambda quick=False: rows)
    out = tmp_path / "bench.json"
    assert suite.main(["--quick", "--only", "particles", "--json", str(out)]) == 0
    recs = json.loads(out.read_text())
    assert isinstance(recs, list) and len(recs) == len(rows)
    assert all(KEYS <= set(r) and "machine" in r for r in recs)


def test_cli_bench_passes_its_options_to_the_suite(monkeypatch):
    """`meanfield bench --quick --json F --only scan` reaches the suite's parser intact, run from the
    checkout as `python -m benchmarks.suite` (the package itself never imports the benchmarks)."""
    import os
    import subprocess
    import sys

    from meanfield import cli

    seen = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, cwd=None: seen.append((list(cmd), cwd)) or 0)
    assert cli.main(["bench", "--quick", "--json", "out.json", "--only", "scan"]) == 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
    assert seen == [([sys.executable, "-m", "benchmarks.suite", "--quick", "--json", "out.json", "--only", "scan"],
                     root)]
    assert cli.main(["run", "--no-such-option", "x.toml"]) == 2
