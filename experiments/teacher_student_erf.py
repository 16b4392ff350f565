"""Teacher-student with erf units (d = 20, k = 4): the mean-field flow beside online SGD at N = 16 ... 1024.

    python experiments/teacher_student_erf.py [--quick] [--out DIR]

Writes DIR/{config.toml, result.npz, summary.json, risk.png, particles.png}.
"""
import argparse

import meanfield
from meanfield.plot import plot_dir


def config(quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": "teacher_student_erf", "seed": 0, "backend": "auto"},
        "task": {"kind": "teacher_student", "d": 20, "teacher_width": 4},
        "model": {"activation": "erf"},
        "limit": {"particles": 512 if quick else 4096, "expectation": "analytic", "integrator": "rk4", "dt": 0.1},
        "train": {"widths": [16, 64, 256] if quick else [16, 64, 256, 1024], "seeds": 4 if quick else 8,
                  "algorithm": "online_sgd", "lr": 0.05, "batch": 16},
        "time": {"t_max": 20.0 if quick else 50.0, "records": 30, "snapshots": 12},  # 12 GIF frames
    })


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/teacher_student_erf")
    args = ap.parse_args()
    if args.quick:  # figures of a quick run say they are smoke tests
        from meanfield.viz import set_banner

        set_banner("QUICK MODE: a smoke test at reduced size, not a result")
    res = meanfield.run_to_dir(config(args.quick), args.out, overwrite=True, progress=True, log=print)
    print(res.summary["status"], "final limit risk", res.summary["risk_mf_final"], res.summary["risk_nn_final_mean"])
    print(*plot_dir(args.out), sep="\n")
