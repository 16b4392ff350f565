"""Richness sweep of deep muP networks: DMFT loss curves, kernel alignment, and DMFT -> NTK as gamma0^2.

    python experiments/deep_richness.py [--quick] [--out DIR] [--format png|pdf]

Setup: L = 2 hidden layers, tanh, a fixed teacher-student training set (P points, D inputs, tanh teacher
with one unit, y = tanh(2 v.x), |v| = 1) and Q test points; the discrete DMFT (``meanfield_solvers.dmft.solve_dmft``, step dt, T steps) for
gamma0 = 0.01 ... 4, and the gamma0 -> 0 NTK flow (``solve_ntk``) on the same grid.

Measured:

* training-loss curves L(t) per gamma0 (feature learning speeds up training at large gamma0);
* kernel-target alignment A(K) = y^T K y / (|K|_F |y|^2) of the DMFT's NTK over time and at the end;
* the DMFT -> NTK deviation dev(gamma0) = RMS over (t, mu) of f_DMFT - f_NTK with a power-law fit
  (theory, docs/dmft.md §5c: O(gamma0^2)). The sampled DMFT has a Monte Carlo error of f
  (~ 3e-3 here) that does not vanish with gamma0 and floors the raw deviation; the fit therefore uses
  common random numbers: every solve uses the same white noise and antithetic pairs (which make each
  finite-sample solve exactly even in gamma0), and the reference is the same-noise solve at
  gamma0 = 1e-3 (an NTK flow with the *sampled* kernels), so the gamma0-independent MC error cancels in
  the difference; a remaining MC term of order |gamma0|/sqrt(S) sets the fit range (see results.md).
  The raw deviation from the analytic NTK is reported beside it, and two controls: the same-noise
  deviation at L = 1 (sources u^1, r^L are static, so a finite-sample solve is analytic in gamma0) and
  the deep-linear network (L = 3, ``solve_deep_linear``, no Monte Carlo error at all).

Writes DIR/results.md (tables) and figures loss.png, alignment.png, deviation.png.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import meanfield  # noqa: E402,F401
from meanfield import seeding  # noqa: E402
from meanfield.analysis.fitting import fit_power_law  # noqa: E402
from meanfield.deep.observe import alignment  # noqa: E402
from meanfield.plot import style  # noqa: E402
from meanfield_solvers.dmft import solve_dmft, solve_ntk  # noqa: E402

from _report import pm, save, table, write_results  # noqa: E402
import _report  # noqa: E402

G_REF = 1e-3
FIT_RANGE = (0.05, 0.5)  # sampled DMFT: gamma0^2 >> |gamma0|/sqrt(S) MC term, higher orders still small


def setup(quick):
    P, D, Q = (4, 4, 2) if quick else (8, 8, 4)
    rng = seeding.stream(0, "train_set")
    v = rng.standard_normal(D)
    v /= np.linalg.norm(v)
    X = rng.standard_normal((P + Q, D))
    y = np.tanh(2.0 * X @ v)  # O(1) targets: the memory terms scale as gamma0 * (y - f)
    gammas = [0.01, 0.05, 0.2, 0.5, 1.0, 4.0] if quick else [0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0]
    solver = dict(n_samples=2000 if quick else 8000, n_tangent=200 if quick else 500, seed=11, antithetic=True,
                  error_batches=0, max_bytes=8e9)
    return dict(X=X[:P], y=y[:P], Xt=X[P:], yt=y[P:], L=2, dt=0.1, T=20 if quick else 40, gammas=gammas,
                solver=solver)


def deviation_fit(gammas, dev, gmin=0.0, gmax=0.5):
    g = np.asarray(gammas)
    d = np.asarray(dev, dtype=float)
    ok = (g >= gmin) & (g <= gmax) & (d > 0) & np.isfinite(d)
    return fit_power_law(g[ok], d[ok])


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def linear_check(s):
    """Exact deep-linear (L = 3) deviation from the NTK (None if the closed-form solver is unavailable);
    NaN where the solve did not converge (e.g. GD itself blows up at large gamma0)."""
    try:
        from meanfield_solvers.dmft import solve_deep_linear

        ref = solve_ntk(s["X"], s["y"], 3, s["dt"], s["T"], activation="linear", X_test=s["Xt"])
        dev = []
        for g in s["gammas"]:
            r = solve_deep_linear(s["X"], s["y"], 3, g, s["dt"], s["T"], X_test=s["Xt"])
            ok = r.status == "converged" and np.all(np.isfinite(r.f))
            dev.append(rms(r.f - ref.f) if ok else float("nan"))
        return dev
    except (ImportError, NotImplementedError, TypeError) as e:
        print(f"deep-linear check skipped: {e!r}")
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--format", default="png", choices=("png", "pdf"))
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    out = args.out or os.path.join("runs", "deep_richness" + ("_quick" if args.quick else ""))
    os.makedirs(out, exist_ok=True)
    s = setup(args.quick)
    X, y, Xt, L, dt, T = s["X"], s["y"], s["Xt"], s["L"], s["dt"], s["T"]
    ntk = solve_ntk(X, y, L, dt, T, activation="tanh", X_test=Xt)
    t0 = time.perf_counter()
    ref = solve_dmft(X, y, L, G_REF, dt, T, activation="tanh", X_test=Xt, **s["solver"])
    sols = {}
    for g in s["gammas"]:
        r = solve_dmft(X, y, L, g, dt, T, activation="tanh", X_test=Xt, **s["solver"])
        sols[g] = r
        print(f"gamma0 = {g:g}: {r.status} ({r.iterations} it), final loss {r.loss[-1]:.4g}")
    secs = time.perf_counter() - t0
    dev_crn = [rms(sols[g].f - ref.f) for g in s["gammas"]]
    dev_raw = [rms(sols[g].f - ntk.f) for g in s["gammas"]]
    # control: L = 1 (static sources only, so a finite-sample solve is analytic in gamma0)
    ref1 = solve_dmft(X, y, 1, G_REF, dt, T, activation="tanh", X_test=Xt, **s["solver"])
    dev_l1 = [rms(solve_dmft(X, y, 1, g, dt, T, activation="tanh", X_test=Xt, **s["solver"]).f - ref1.f)
              for g in s["gammas"]]
    fit_l1 = deviation_fit(s["gammas"], dev_l1, 0.0, 0.5)
    align_T = [float(alignment(sols[g].K[-1], y)) for g in s["gammas"]]
    fit_crn = deviation_fit(s["gammas"], dev_crn, *FIT_RANGE)
    fit_raw = deviation_fit(s["gammas"], dev_raw, *FIT_RANGE)
    lin = linear_check(s)
    fit_lin = deviation_fit(s["gammas"], lin, 0.0, 0.5) if lin is not None else None

    plt = style()
    files = []
    cmap = plt.get_cmap("plasma")
    G = len(s["gammas"])
    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    for i, g in enumerate(s["gammas"]):
        ax.plot(sols[g].t, sols[g].loss, color=cmap(i / G * 0.9), label=f"γ₀ = {g:g}")
    ax.plot(ntk.t, ntk.loss, "k--", lw=1.2, label="NTK (γ₀ → 0)")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("training loss (DMFT)")
    ax.legend(fontsize=7, ncol=2)
    files.append(save(fig, out, "loss", args.format))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, g in enumerate(s["gammas"]):
        axes[0].plot(sols[g].t, alignment(sols[g].K, y), color=cmap(i / G * 0.9), label=f"γ₀ = {g:g}")
    axes[0].plot(ntk.t, np.full_like(ntk.t, alignment(ntk.kernels.K, y)), "k--", lw=1.2, label="NTK")
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("alignment A(K(t))")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].semilogx(s["gammas"], align_T, "o-", color="C3")
    axes[1].axhline(alignment(ntk.kernels.K, y), color="k", ls="--", lw=1)
    axes[1].set_xlabel("γ₀")
    axes[1].set_ylabel(f"final alignment A(K(t = {T * dt:g}))")
    files.append(save(fig, out, "alignment", args.format))

    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    g = np.asarray(s["gammas"])
    ax.loglog(g, dev_raw, "s", color="0.5", label=f"vs analytic NTK (raw; MC floor ~{dev_raw[0]:.1g})")
    ax.loglog(g, dev_crn, "o", color="C0", label=f"vs same-noise γ₀ = {G_REF:g}: slope "
              f"{pm(fit_crn.slope, fit_crn.slope_se)}")
    gg = g[(g >= FIT_RANGE[0]) & (g <= FIT_RANGE[1])]
    ax.loglog(gg, np.exp(fit_crn.intercept) * gg ** fit_crn.slope, "-", color="C0", lw=1)
    ax.loglog(g, dev_l1, "v", color="C1", label=f"L = 1, same-noise: slope {fit_l1.slope:.3f}")
    if lin is not None:
        ax.loglog(g, lin, "^", color="C2", label=f"deep linear L = 3 (exact): slope {fit_lin.slope:.3f}")
    i0 = int(np.argmax(g >= FIT_RANGE[0]))
    ax.loglog(gg, dev_crn[i0] * (gg / gg[0]) ** 2, "k:", lw=1, label="∝ γ₀²")
    ax.set_xlabel("γ₀")
    ax.set_ylabel("RMS_t,μ (f_DMFT − f_NTK)")
    ax.legend(fontsize=7)
    files.append(save(fig, out, "deviation", args.format))

    rows = [[f"{gm:g}", sols[gm].status, f"{sols[gm].loss[-1]:.4g}", f"{align_T[i]:.4f}", f"{dev_raw[i]:.3g}",
             f"{dev_crn[i]:.3g}", f"{dev_l1[i]:.3g}"] + ([f"{lin[i]:.3g}"] if lin is not None else [])
            for i, gm in enumerate(s["gammas"])]
    header = ["γ₀", "DMFT", f"final loss (t = {T * dt:g})", "final alignment", "dev vs NTK (raw)",
              "dev vs same-noise γ₀→0", "L = 1 dev (same noise)"] + (["deep linear L = 3 dev (exact)"] if lin is not None else [])
    fits = [["sampled DMFT, common random numbers", pm(fit_crn.slope, fit_crn.slope_se)],
            ["sampled DMFT vs analytic NTK (MC-floored)", pm(fit_raw.slope, fit_raw.slope_se)],
            ["L = 1 sampled DMFT, common random numbers (γ₀ ≤ 0.5)", pm(fit_l1.slope, fit_l1.slope_se)]]
    if fit_lin is not None:
        fits.append(["deep linear L = 3, closed form", pm(fit_lin.slope, fit_lin.slope_se)])
    md = write_results(out, "Richness sweep of deep muP networks (L = 2, tanh): DMFT against the NTK", [
        ("Setup", f"P = {len(y)} training + Q = {len(Xt)} test points, D = {X.shape[1]}, dt = {dt}, T = {T} steps; "
                  f"DMFT with {s['solver']['n_samples']} antithetic samples ({s['solver']['n_tangent']} for the "
                  f"responses), same noise for every γ₀; NTK alignment {alignment(ntk.kernels.K, y):.4f}; "
                  f"{secs:.0f} s of DMFT solves."),
        ("Per γ₀", table(header, rows)),
        ("Power-law fits of the deviation (theory: slope 2)",
         f"Sampled L = 2 DMFT: fit on {FIT_RANGE[0]} ≤ γ₀ ≤ {FIT_RANGE[1]}, same-noise reference. At small γ₀ the "
         "L = 2 finite-sample solve carries a Monte Carlo term ∝ |γ₀| that common random numbers do not cancel "
         "(two-time source kernels are nearly constant in time at small γ₀, so their Cholesky factors get new "
         "columns of size ~|γ₀|; even in γ₀ but not analytic). Measured with the linear activation against the "
         "closed form (P = 4, T = 20): the change of (sampled − exact) between γ₀ = 1e-4 and 1e-2 is 4.3e-5 at "
         "S = 2000 and 1.5e-5 at S = 8000, linear in γ₀. (For tanh at γ₀ = 0.01 the same-noise deviation, "
         "2.4e-5, did not shrink from S = 2000 to 8000, nor with 4× the tangent samples or 100× the jitter: not "
         "explained.) The L = 1 solve (static sources only) and the deep-linear closed form have no such term. "
         "Deep linear: fit on γ₀ ≤ 0.5.\n\n"
         + table(["deviation", "slope"], fits)),
        ("Figures", "\n".join(f"- `{os.path.basename(f)}`" for f in files)),
    ])
    print(md, *files, sep="\n")
    return dict(gammas=s["gammas"], dev_crn=dev_crn, dev_raw=dev_raw, dev_l1=dev_l1, align=align_T, fit_crn=fit_crn,
                fit_l1=fit_l1, fit_lin=fit_lin, sols=sols)


if __name__ == "__main__":
    main()
