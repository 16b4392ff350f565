"""Width consistency at fixed γ₀: muP loss curves collapse on the DMFT curve as N grows, NTK-parametrised
ones drift to the NTK (lazy) curve.

    python experiments/width_consistency.py [--quick] [--out DIR] [--workers K] [--format png|pdf]

Setup: deep *linear* networks (L = 2, so the exact deep-linear DMFT ``dmft_linear`` is a cheap exact
limit), teacher-student task (D = 8, a tanh teacher with 2 units), P = 8 training points, full-batch GD at
step η = ``limit.dt`` (the discrete limits are then the exact N → ∞ limits of the networks, docs/dmft.md
§3.1), fixed γ₀ = 1.5, widths N = 64 … 2048 (quick: 64 … 512). One parameter scan (``meanfield.scan``)
zips ``model.parametrisation`` with its limit: ``mup`` ↔ ``dmft_linear``, ``ntk`` ↔ ``ntk``, over task
seeds (each redraws teacher, points and networks).

Gaps (per network: sup over the recorded times of |log R_N(t) − log R_ref(t)|, a relative gap since the loss
falls by orders of magnitude; then the mean over networks and task seeds, with its standard error):

* muP networks against the DMFT curve (their limit) and against the NTK curve (not their limit: the gap
  stays O(γ₀²));
* NTK-parametrised networks against the NTK flow *started at their own initial outputs*: their outputs at
  t = 0 are an O(1) Gaussian process (f = w·φ(h^L)/(γ₀√N)), so each network's limit is the Euler kernel
  flow d[k] = (I − ηK/P)^k (y − f_N(0)) on the training residual, with the limit's K; its expectation over
  f(0) ~ N(0, Φ^L/γ₀²) is the drawn "expected NTK" curve R_ntk(t) + (1/2P) tr(M^k Φ^L M^kᵀ)/γ₀².

Theory: the muP → DMFT and NTK-param → NTK gaps fall like N^(−1/2) (per-network fluctuations); the muP → NTK
gap levels off at the DMFT − NTK difference.

Writes DIR/results.md, DIR/width_consistency.png and the scan DIR/scan/.
"""
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meanfield import scan  # noqa: E402
from meanfield.analysis.fitting import fit_power_law  # noqa: E402
from meanfield.plot import style  # noqa: E402
from meanfield.viz.bands import caption, legend, legend_note, se_errorbars  # noqa: E402

import _report  # noqa: E402
from _report import pm, save, table, write_results  # noqa: E402

GAMMA0 = 1.5
DT = 0.2
STEPS = 30


def mode(quick):
    if quick:
        return {"widths": [64, 128, 256, 512], "nets": 6, "seeds": 2}
    return {"widths": [64, 128, 256, 512, 1024, 2048], "nets": 8, "seeds": 4}


def spec(m):
    return {
        "base": {
            "run": {"name": "width_consistency", "backend": "numpy"},
            "task": {"kind": "teacher_student", "d": 8, "teacher_width": 2, "teacher_init": "gaussian"},
            "model": {"activation": "linear", "depth": 2, "gamma0": GAMMA0},
            "limit": {"dt": DT},
            "train": {"widths": list(m["widths"]), "seeds": m["nets"], "algorithm": "gd", "lr": DT, "n_train": 8},
            "time": {"t_max": DT * STEPS, "records": 16, "spacing": "linear", "snapshots": 0},
            "eval": {"n_points": 1},
        },
        "seeds": m["seeds"],
        "zip": [{"model.parametrisation": ["mup", "ntk"], "limit.method": ["dmft_linear", "ntk"]}],
    }


def ntk_from_own_init(K, y, f0, steps, dt):
    r"""Loss of the Euler kernel flow started at each network's initial outputs, at the step indices ``steps``.

    K (P, P) training block; y (P,); f0 (..., P) -> (..., len(steps)).
    """
    P = y.shape[0]
    M = np.eye(P) - dt * K / P
    d = y - f0
    out = np.empty(f0.shape[:-1] + (len(steps),))
    k_now, i = 0, 0
    order = np.argsort(steps)
    for j in order:
        while k_now < steps[j]:
            d = d @ M.T
            k_now += 1
        out[..., j] = 0.5 * np.mean(d * d, axis=-1)
        i += 1
    return out


def expected_ntk(K, Sigma0, y, steps, dt):
    """E over f(0) ~ N(0, Sigma0) of the kernel-flow loss (training block), at the step indices ``steps``."""
    P = y.shape[0]
    M = np.eye(P) - dt * K / P
    out = []
    for k in steps:
        Mk = np.linalg.matrix_power(M, int(k))
        d = Mk @ y
        out.append(0.5 * (d @ d + np.trace(Mk @ Sigma0 @ Mk.T)) / P)
    return np.asarray(out)


def sup_gap(r, ref):
    """Per network sup_t |log r − log ref| (last axis time): the loss falls by orders of magnitude, so the
    gap is relative (an absolute gap would only see the first steps)."""
    return np.nanmax(np.abs(np.log(r) - np.log(ref)), axis=-1)


def analyse(d):
    col = scan.collect(d, keys=("risk_mf", "risk_nn", "f_nn", "K_mf", "Phi_mf", "y_train"))
    groups = {g.params["model.parametrisation"]: g for g in col.groups}
    mup, ntk = groups["mup"], groups["ntk"]
    assert list(mup.seeds) == list(ntk.seeds), "both parametrisations must cover the same task seeds"
    widths = mup.arrays["widths"].astype(int)
    t_nn, t = mup.arrays["t_nn"], mup.arrays["t"]
    assert np.allclose(t, t_nn)
    steps = np.rint(t_nn / DT).astype(int)
    y = mup.arrays["y_train"]                        # (n, P)
    P = y.shape[1]
    dmft = mup.arrays["risk_mf"]                     # (n, T)
    ntk_curve = ntk.arrays["risk_mf"]                # (n, T): kernel flow from f = 0
    r_mup = mup.arrays["risk_nn"]                    # (n, W, S, T)
    r_ntk = ntk.arrays["risk_nn"]
    n = y.shape[0]
    pred = np.empty_like(r_ntk)
    expect = np.empty((n, len(t)))
    for s in range(n):
        K0 = ntk.arrays["K_mf"][s, 0][:P, :P]
        f0 = ntk.arrays["f_nn"][s][:, :, 0, :P]      # (W, S, P)
        pred[s] = ntk_from_own_init(K0, y[s], f0, steps, DT)
        Sigma0 = ntk.arrays["Phi_mf"][s, 0, -1][:P, :P] / GAMMA0 ** 2
        expect[s] = expected_ntk(K0, Sigma0, y[s], steps, DT)
    gaps = {
        "muP → DMFT": sup_gap(r_mup, dmft[:, None, None, :]),
        "muP → NTK": sup_gap(r_mup, ntk_curve[:, None, None, :]),
        "NTK-param → NTK (own init)": sup_gap(r_ntk, pred),
    }
    stats = {}
    for name, g in gaps.items():
        per_w = np.moveaxis(g, 1, 0).reshape(len(widths), -1)     # (W, n*S)
        mean = per_w.mean(axis=1)
        se = per_w.std(axis=1, ddof=1) / math.sqrt(per_w.shape[1])
        stats[name] = {"mean": mean, "se": se, "fit": fit_power_law(widths.astype(float), mean)}
    sep = float(np.mean(np.max(np.abs(np.log(dmft) - np.log(ntk_curve)), axis=1)))
    return {"widths": widths, "t": t, "dmft": dmft, "ntk_curve": ntk_curve, "expect": expect, "r_mup": r_mup,
            "r_ntk": r_ntk, "stats": stats, "separation": sep}


def figure(st, out, fmt):
    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    cmap = plt.get_cmap("viridis")
    W = len(st["widths"])
    t = st["t"]
    for ax, key, title in ((axes[0], "r_mup", "muP networks"), (axes[1], "r_ntk", "NTK-parametrised networks")):
        for i, N in enumerate(st["widths"]):
            ax.plot(t, st[key][0, i].mean(axis=0), color=cmap(0.9 * i / max(1, W - 1)), lw=1.2, label=f"N = {N}")
        ax.plot(t, st["dmft"][0], "k-", lw=2.2, label="DMFT (γ₀ = %g)" % GAMMA0)
        ax.plot(t, st["ntk_curve"][0], "k--", lw=1.6, label="NTK flow (f₀ = 0)")
        if key == "r_ntk":
            ax.plot(t, st["expect"][0], "r:", lw=2, label="NTK, E over f₀ ~ GP")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_title(f"{title} (task seed 0, mean over networks)", fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss")
    ax = axes[2]
    w = st["widths"].astype(float)
    for (name, s), c in zip(st["stats"].items(), ("C0", "C1", "C3")):
        f = s["fit"]
        # the slope as the table writes it (pm); bars x/÷ exp(se/mean), the log axis's ±1 s.e.
        ax.errorbar(w, s["mean"], yerr=se_errorbars(s["mean"], s["se"], log=True), fmt="o", color=c, capsize=2,
                    label=f"{name}: slope {pm(f.slope, f.slope_se)}")
        ax.plot(w, np.exp(f.intercept) * w ** f.slope, "-", color=c, lw=1)
    ax.axhline(st["separation"], color="k", ls=":", lw=1, label="sup |log DMFT − log NTK|")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("gap sup_t |log R_N − log R_ref|")
    n, _, S = st["r_mup"].shape[:3]
    ax.set_title(f"gap: mean over {n} task seeds × {S} networks", fontsize=9)
    legend_note(ax, caption("bars", log=True), color="k")
    legend(ax, fontsize=7)
    fig.tight_layout()
    return save(fig, out, "width_consistency", fmt)


def main(argv=None):
    args = _report.study_args(__doc__, "width_consistency", argv)
    out = args.out
    m = mode(args.quick)
    t0 = time.perf_counter()
    d = os.path.join(out, "scan")
    rep = scan.run_scan(scan.spec_from_dict(spec(m)), d, workers=args.workers, progress=False, log=lambda s: None)
    if rep.exit_code:
        raise RuntimeError(f"scan {d} did not complete: {rep.counts}; {rep.problems[:3]}")
    st = analyse(d)
    seconds = time.perf_counter() - t0
    fig = figure(st, out, args.format)
    rows = [[name] + [pm(mu, se) for mu, se in zip(s["mean"], s["se"])] + [pm(s["fit"].slope, s["fit"].slope_se)]
            for name, s in st["stats"].items()]
    md = write_results(out, "Width consistency at fixed γ₀" + (" (quick: smoke test)" if args.quick else ""), [
        ("Setup", f"Deep linear networks, L = 2, γ₀ = {GAMMA0}, teacher-student D = 8, P = 8, full-batch GD with "
                  f"η = limit.dt = {DT} for {STEPS} steps, {m['nets']} networks per width and task seed, "
                  f"{m['seeds']} task seeds, widths {m['widths']} ({seconds:.0f} s with {args.workers} workers). "
                  "Gap: per network sup over t of |log R_N(t) − log R_ref(t)|, mean ± SE over networks and task seeds."),
        ("Sup-gap against width and fitted slopes (theory: −1/2 towards the own limit)", table(
            ["gap"] + [f"N = {N}" for N in st["widths"]] + ["slope"], rows)
         + f"\n\nsup_t |log DMFT − log NTK| (mean over task seeds): {st['separation']:.3g}"),
        ("Figure", f"- `{os.path.basename(fig)}`"),
    ])
    print(open(md).read())
    return st


if __name__ == "__main__":
    main()
