"""A 2-D relu teacher (Chizat-Bach 2018 style): the particles gather on the teacher's neurons.

    python experiments/relu_teacher_2d.py [--quick] [--out DIR]

d = 2, no bias, so each particle's w is a point of the plane: the particle figure shows the
cloud contracting onto the teacher directions (gold stars) as the population risk goes to 0.
"""
import argparse

import meanfield
from meanfield.plot import plot_dir


def config(quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": "relu_teacher_2d", "seed": 3, "backend": "auto"},
        "task": {"kind": "teacher_student", "d": 2, "teacher_width": 3, "teacher_init": "gaussian"},
        "model": {"activation": "relu", "a_std": 0.1, "w_std": 0.3},
        "limit": {"particles": 256 if quick else 2048, "expectation": "analytic", "integrator": "rk4", "dt": 0.1},
        "train": {"widths": [8, 32, 128], "seeds": 3, "algorithm": "population_gd", "lr": 0.1},
        "time": {"t_max": 100.0 if quick else 400.0, "records": 40, "snapshots": 16},  # 16 GIF frames
    })


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/relu_teacher_2d")
    args = ap.parse_args()
    if args.quick:  # figures of a quick run say they are smoke tests
        from meanfield.viz import set_banner

        set_banner("QUICK MODE: a smoke test at reduced size, not a result")
    res = meanfield.run_to_dir(config(args.quick), args.out, overwrite=True, progress=True, log=print)
    print(res.summary["status"], "final limit risk", res.summary["risk_mf_final"], res.summary["risk_nn_final_mean"])
    print(*plot_dir(args.out), sep="\n")
