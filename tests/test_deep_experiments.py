"""The deep experiments run end to end in --quick mode and write their figures and tables."""
import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("solvers.dmft")

HERE = os.path.join(os.path.dirname(__file__), "..", "experiments")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_deep_width_convergence_quick(tmp_path):
    results = _load("deep_width_convergence").main(["--quick", "--out", str(tmp_path)])
    for name in ("results.md", "rms.png", "variance.png", "collapse.png", "outputs.png"):
        assert (tmp_path / name).is_file()
    for g, st, res in results:
        assert res.summary["limit"]["status"] == "converged"
        assert -0.8 < st["fit_rms"].slope < -0.3
        assert -1.6 < st["fit_var"].slope < -0.6


def test_deep_richness_quick(tmp_path):
    r = _load("deep_richness").main(["--quick", "--out", str(tmp_path)])
    for name in ("results.md", "loss.png", "alignment.png", "deviation.png"):
        assert (tmp_path / name).is_file()
    assert abs(r["fit_l1"].slope - 2) < 0.1
    if r["fit_lin"] is not None:
        assert abs(r["fit_lin"].slope - 2) < 0.05
    assert np.all(np.isfinite(r["align"]))
