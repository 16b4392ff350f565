"""The scale-consistency studies (issue 16) run in --quick mode, write their tables and figures, and show
their claims: learning-rate transfer across widths, width consistency against the limit, depth consistency."""
import importlib.util
import os

import numpy as np
import pytest

HERE = os.path.join(os.path.dirname(__file__), "..", "experiments")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _files(out, *names):
    for n in names:
        assert os.path.getsize(os.path.join(out, n)) > 0, n
    text = open(os.path.join(out, "results.md")).read()
    assert "|---|" in text and "smoke test" in text
    return text


def test_lr_transfer_quick(tmp_path):
    """Widths: under muP the optimal and the largest stable step vary by less than a factor 2 over widths
    64 ... 1024; under the standard parametrisation the largest stable step falls by more than a factor 4
    (theory: 16). Depths (residual muP networks, N = 128, L = 2, 8, 32): with 1/sqrt(L) branches the optimum,
    the largest stable step and the speed step eta_100 stay put; with kappa = 0 the curves move left with depth
    (eta_100 falls), as the growing infinite-width kernel predicts (its lazy edge falls 7.4-fold)."""
    out = str(tmp_path / "lr")
    res = _load("lr_transfer").main(["--quick", "--out", out])
    _files(out, "results.md", "lr_transfer.png")
    mup, sp = res["width"]["mup"], res["width"]["standard"]
    assert list(mup["widths"]) == [64, 256, 1024]
    assert np.all(np.isfinite(mup["argmin"])) and np.all(np.isfinite(mup["lr_max"]))
    assert mup["argmin_spread"] < 2 and mup["lr_max_spread"] < 2
    # the optimum is interior: larger steps than the argmin diverge or do worse at every width
    assert np.all(mup["argmin"] < mup["lrs"][-1]) and not np.any(mup["stable"][:, -1])
    assert sp["lr_max"][0] / sp["lr_max"][-1] > 4
    assert np.all(np.diff(sp["lr_max"]) < 0)  # falls at every doubling of the width pair
    # the whole sub-edge curve: muP's speed step stays put, the standard one's falls like 1/N (measured 20)
    assert mup["speed_spread"] < 1.5 and sp["speed"][0] / sp["speed"][-1] > 4

    k05, k0 = res["depth"]["κ = ½"], res["depth"]["κ = 0"]
    assert list(k05["sizes"]) == [2, 8, 32]
    # infinite-width kernel at t = 0 (exact recursion): converges in depth for kappa = 1/2, grows for kappa = 0
    assert k05["lazy_edge_spread"] < 1.2 and k0["lazy_edge"][0] / k0["lazy_edge"][-1] > 4
    # depth-muP transfers: optimum, stability edge (one grid step of a factor-2 grid) and speed step
    assert np.all(np.isfinite(k05["argmin"])) and k05["argmin_spread"] < 2
    assert k05["lr_max_spread"] <= 2 and k05["speed_spread"] < 1.5
    assert not np.any(k05["stable"][:, -1])  # the grid reaches past the edge at every depth
    # kappa = 0: the curves move left at every depth doubling pair, more than depth-muP's spread allows
    assert np.all(np.diff(k0["speed"]) < 0), k0["speed"]
    assert k0["speed"][0] / k0["speed"][-1] > max(2.0, 1.5 * k05["speed_spread"]), k0["speed"]
    assert np.all(np.diff(k0["lr_max"]) <= 0)
    # same branch multiplier at L = 2: the two rules are the same network there
    assert k0["loss"][0][np.isin(k0["lrs"], k05["lrs"])] == pytest.approx(k05["loss"][0], rel=1e-12, nan_ok=True)


def test_width_consistency_quick(tmp_path):
    """muP networks approach the exact DMFT like N^(-1/2) and stay away from the NTK curve; NTK-parametrised
    networks approach the NTK flow from their own initial outputs like N^(-1/2)."""
    out = str(tmp_path / "wc")
    st = _load("width_consistency").main(["--quick", "--out", out])
    _files(out, "results.md", "width_consistency.png")
    s = st["stats"]
    mup, cross, ntk = s["muP → DMFT"], s["muP → NTK"], s["NTK-param → NTK (own init)"]
    assert -0.8 < mup["fit"].slope < -0.25, mup["fit"]
    assert ntk["fit"].slope < -0.25, ntk["fit"]
    # the muP networks do not collapse on the NTK curve: their gap to it stays at the DMFT - NTK separation
    assert cross["mean"][-1] > 0.5 * st["separation"] and cross["mean"][-1] > 3 * mup["mean"][-1]


def test_depth_consistency_quick(tmp_path):
    """With 1/sqrt(L) branches the gap between depths L and 2L of the exact limit shrinks at every doubling
    (towards the O(1/L) ratio 1/2); with kappa = 0 it grows and GD at the same step diverges at depth."""
    out = str(tmp_path / "dc")
    res = _load("depth_consistency").main(["--quick", "--out", out])
    _files(out, "results.md", "depth_consistency.png")
    mup, flat = res["κ = ½ (β = 1)"], res["κ = 0 (β = ½)"]
    assert mup["ok"].all()
    g = mup["gaps"]
    assert np.all(np.isfinite(g)) and np.all(np.diff(g) < 0), g
    assert g[-1] / g[-2] < 0.7 and mup["fit"].slope < -0.4
    assert np.all(np.abs(np.diff(mup["K0"]) / mup["K0"][1:]) < 0.5)  # initial NTK converges in depth
    assert mup["z"][0] < 3 and np.nanmax(mup["z"]) < 4  # finite networks (N = 256) follow the limit at every depth
    # kappa = 0: the gap grows with depth and the flow leaves the stable range (recorded as diverged)
    gf = flat["gaps"]
    assert gf[1] > 2 * gf[0] and not flat["ok"][-1]
    assert flat["K0"][-1] > 100 * flat["K0"][0]


def test_lr_transfer_bad_options(tmp_path):
    """A depth below 2 (no residual block) or a single network (no standard error) is refused with status 2,
    naming the option, before the output folder is made."""
    mod = _load("lr_transfer")
    for bad in (["--depths", "1,4"], ["--seeds", "1"], ["--widths", "64,x"]):
        out = tmp_path / "never"
        with pytest.raises(SystemExit) as e:
            mod.main(["--quick", "--out", str(out)] + bad)
        assert e.value.code == 2 and not out.exists()


def test_lr_transfer_lazy_predictions_match_kernel_gd():
    """The lazy edge 2P/lambda_max(K0) and the lazy speed step eta_100 (docs/residual.md section 2.1), checked by
    running GD on the frozen kernel (meanfield_solvers.dmft.ntk.kernel_flow): the top mode stays bounded just
    below the edge and grows just above it; at eta_100 the loss falls 100-fold in the study's 30 steps."""
    from meanfield_solvers.dmft.ntk import kernel_flow

    lt = _load("lr_transfer")
    m = lt.mode(True)
    edges, speeds = lt.lazy_edges("residual_k0", m), lt.lazy_speed_steps("residual_k0", m)
    X, y, Ks = lt._lazy_kernels("residual_k0", tuple(m["depths"]), m["seeds"])
    assert len(y) == 8 and edges[0] / edges[-1] > 4  # the kappa = 0 kernel grows with depth
    for K, edge, speed in zip(Ks, edges, speeds):
        ratio = lambda eta, T=lt.STEPS: float(np.sum((y - kernel_flow(K, y, eta, T)[-1]) ** 2) / np.sum(y ** 2))  # noqa: E731
        assert ratio(0.98 * edge, 400) < 1 < ratio(1.02 * edge, 400)
        assert ratio(speed) == pytest.approx(0.01, rel=0.05) and ratio(0.95 * speed) > 0.01
