"""Mei-Montanari-Nguyen (2018) centred isotropic Gaussians: y = +-1, x | y ~ N(0, (1 + y Delta)^2 I_d).

    python experiments/mmn_gaussians.py [--quick] [--out DIR]

relu units, exact population dynamics of the limit; online SGD at growing widths tracks it.
"""
import argparse

import meanfield
from meanfield.plot import plot_dir


def config(quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": "mmn_gaussians", "seed": 0, "backend": "auto"},
        "task": {"kind": "gaussians", "d": 20 if quick else 40, "delta": 0.5},
        "model": {"activation": "relu", "a_init": "constant", "a_value": 1.0, "train_a": True},
        "limit": {"particles": 512 if quick else 4096, "expectation": "analytic", "integrator": "rk4", "dt": 0.1},
        "train": {"widths": [16, 64, 256] if quick else [16, 64, 256, 1024], "seeds": 4,
                  "algorithm": "online_sgd", "lr": 0.02, "batch": 16},
        "time": {"t_max": 20.0 if quick else 50.0, "records": 30, "snapshots": 12},  # 12 GIF frames
    })


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/mmn_gaussians")
    args = ap.parse_args()
    if args.quick:  # figures of a quick run say they are smoke tests
        from meanfield.viz import set_banner

        set_banner("QUICK MODE: a smoke test at reduced size, not a result")
    res = meanfield.run_to_dir(config(args.quick), args.out, overwrite=True, progress=True, log=print)
    print(res.summary["status"], "final limit risk", res.summary["risk_mf_final"], res.summary["risk_nn_final_mean"])
    print(*plot_dir(args.out), sep="\n")
