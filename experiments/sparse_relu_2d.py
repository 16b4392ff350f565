"""Chizat-Bach sparse relu teacher in d = 2: the particles converge to the teacher's directions.

    python experiments/sparse_relu_2d.py [--quick] [--out DIR] [--format png|pdf]

Teacher f*(x) = (1/k) sum_m relu(<v_m, x>) with k = 3 Gaussian directions v_m in the plane; student
relu units without bias, x ~ N(0, I_2), exact population dynamics of the limit and population GD at
widths N from below to well above k (Chizat & Bach 2018: with enough width the Wasserstein flow
reaches the global minimum, a sparse measure on the teacher's rays). relu is positively
homogeneous, so a neuron only matters through a_i |w_i| and its direction; we report the share
of the output mass sum_i |a_i| |w_i| carried by neurons within 10 degrees of a teacher direction,
and the population risk, per N at the final time. The particle figures and the GIF show the
clouds gathering on the teacher's rays.
"""
import argparse
import os

import numpy as np

import meanfield
from meanfield import figures
from meanfield.plot import plot_risk, style

from _report import pm, save, table, write_results
import _report  # noqa: E402

ANGLE_DEG = 10.0


def config(quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": "sparse_relu_2d", "seed": 6},  # seed 6: teacher directions >= 100 degrees apart
        "task": {"kind": "teacher_student", "d": 2, "teacher_width": 3, "teacher_init": "gaussian"},
        "model": {"activation": "relu", "a_std": 0.1, "w_std": 0.3},
        "limit": {"particles": 256 if quick else 2048, "expectation": "analytic",
                  "integrator": "euler" if quick else "rk4", "dt": 0.2 if quick else 0.1},
        "train": {"widths": [2, 8, 32, 128] if quick else [2, 4, 8, 32, 128, 512], "seeds": 3 if quick else 8,
                  "algorithm": "population_gd", "lr": 0.2 if quick else 0.1},
        "time": {"t_max": 60.0 if quick else 400.0, "records": 25 if quick else 40, "snapshots": 6 if quick else 10},
    })


def teacher_mass(theta, teacher_w, angle_deg=ANGLE_DEG):
    r"""Share of the output mass :math:`\sum_i |a_i||w_i|` within ``angle_deg`` of a teacher direction.

    theta : (..., n, 3) neurons ``[a, w1, w2]``; returns shape ``(...)``.
    """
    a, w = theta[..., 0], theta[..., 1:3]
    mass = np.abs(a) * np.linalg.norm(w, axis=-1)
    u = w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-300)
    v = teacher_w / np.linalg.norm(teacher_w, axis=1, keepdims=True)
    cos = np.max(u @ v.T, axis=-1)
    near = cos >= np.cos(np.deg2rad(angle_deg))
    return np.sum(mass * near, axis=-1) / np.maximum(np.sum(mass, axis=-1), 1e-300)


def analyse(res, out, fmt="png"):
    a = res.arrays
    tw = a["teacher_w"]
    widths = [int(n) for n in a["widths"]]
    k_final = -1
    rows = [["limit", f"{a['risk_mf'][-1]:.3g}", f"{teacher_mass(a['particles_mf'][k_final], tw):.3f}"]]
    shares = {}
    for i, N in enumerate(widths):
        r = a["risk_nn"][i, :, -1]
        sh = teacher_mass(a[f"neurons_nn_N{N}"][k_final], tw)  # (S,)
        shares[N] = sh
        rows.append([f"N = {N}", pm(r.mean(), r.std(ddof=1) / np.sqrt(r.size)),
                     pm(sh.mean(), sh.std(ddof=1) / np.sqrt(sh.size))])
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    plot_risk(res, axes[0])
    share_t = [teacher_mass(a["particles_mf"][k], tw) for k in range(a["snap_t"].size)]
    axes[1].plot(a["snap_t"], share_t, "k-o", ms=3, label="limit")
    for i, N in enumerate(widths):
        axes[1].plot(a["snap_t"], teacher_mass(a[f"neurons_nn_N{N}"], tw).mean(axis=1), "-o", ms=3, label=f"N = {N}")
    axes[1].set_xlabel("mean-field time t")
    axes[1].set_ylabel(f"output mass within {ANGLE_DEG:g}° of a teacher ray")
    axes[1].legend(fontsize=7)
    files = [save(fig, out, "sparse_convergence", fmt)]
    files += figures.write_figures(res, out, fmt, w2=False, mmd=False)
    md = write_results(out, "Sparse relu teacher in d = 2 (Chizat–Bach)", [
        ("Setup", f"k = {tw.shape[0]} teacher neurons, relu, population GD, {res.config.limit.particles} particles, "
                  f"t_max = {a['t'][-1]:.3g}."),
        (f"Final time t = {a['t'][-1]:.3g}", table(["", "population risk", "mass near teacher rays"], rows)),
    ])
    return {"shares": shares, "risk_final": a["risk_nn"][:, :, -1], "risk_mf_final": a["risk_mf"][-1],
            "files": files + [md]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/sparse_relu_2d")
    ap.add_argument("--format", default="png", choices=["png", "pdf"])
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    res = meanfield.run_to_dir(config(args.quick), args.out, overwrite=True)
    rep = analyse(res, args.out, args.format)
    print(open(os.path.join(args.out, "results.md")).read())
    return rep


if __name__ == "__main__":
    main()
