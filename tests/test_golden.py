"""Golden digests: representative runs give bitwise the arrays they gave before the redesign.

The model-seam redesign (issue 13) moves code between modules without changing numerics. These
tests pin that: each config below was run once before the redesign and the sha256 of every
result array (dtype, shape and bytes) was stored in ``tests/golden/digests.json``. Same config,
same backend and same thread count must reproduce every stored array bit for bit (a key may be
renamed only if the old name stays readable as an alias).

An *intended* numerical change is its own commit that regenerates the file with
``python tests/test_golden.py --write`` and says why in its message.

BLAS is pinned to one thread (its reductions are thread-count dependent) and numba to at most two
(the numba kernels split work by rows or by seeds, so their bits do not depend on the count:
checked when the digests were written, with 1 and 2 threads).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import tiny  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "digests.json")


def _cfg(**over):
    return tiny(**over)


QUICKSTART = {  # experiments/teacher_student_erf.toml at CI size
    "run": {"seed": 0}, "task": {"kind": "teacher_student", "d": 20, "teacher_width": 4},
    "model": {"activation": "erf"},
    "limit": {"particles": 128, "expectation": "analytic", "integrator": "rk4", "dt": 0.1},
    "train": {"widths": [16, 64], "seeds": 2, "algorithm": "online_sgd", "lr": 0.05, "batch": 16},
    "time": {"t_max": 2.0, "records": 8, "spacing": "log", "snapshots": 2},
    "eval": {"n_test": 300, "n_points": 4},
}

MC_BIAS_LOGISTIC = {
    "run": {"seed": 3}, "task": {"kind": "gaussians", "d": 4, "loss": "logistic", "delta": 0.4},
    "model": {"activation": "tanh", "bias": True, "b_std": 0.5},
    "limit": {"particles": 64, "expectation": "mc", "mc_samples": 300, "integrator": "heun", "dt": 0.1},
    "train": {"widths": [8, 32], "seeds": 2, "algorithm": "online_sgd", "lr": 0.1, "batch": 8},
    "time": {"t_max": 1.0, "records": 6, "snapshots": 2},
    "eval": {"n_test": 200, "n_points": 3},
}

SGD_MULTIPASS = {
    "run": {"seed": 5}, "task": {"kind": "teacher_student", "d": 3, "teacher_width": 2, "noise": 0.1},
    "model": {"activation": "relu", "antithetic": True},
    "limit": {"particles": 64, "expectation": "mc", "mc_samples": 200, "mc_resample": True,
              "integrator": "euler", "dt": 0.05},
    "train": {"widths": [8, 16], "seeds": 3, "algorithm": "sgd", "n_train": 40, "lr": 0.1, "batch": 4},
    "time": {"t_max": 1.0, "records": 6, "spacing": "linear", "snapshots": 2},
    "eval": {"n_test": 200, "n_points": 3},
}

DEEP = {"model.depth": 2, "model.activation": "tanh", "train.algorithm": "gd", "train.n_train": 4,
        "eval.n_points": 2, "limit.dt": 0.1, "train.lr": 0.1, "train.widths": [16, 32], "train.seeds": 2,
        "time.t_max": 0.5, "time.records": 4}

CASES = {
    "quickstart_numpy": (QUICKSTART, {"run.backend": "numpy"}),
    "quickstart_numba": (QUICKSTART, {"run.backend": "numba"}),
    "mc_bias_logistic_numpy": (MC_BIAS_LOGISTIC, {"run.backend": "numpy"}),
    "mc_bias_logistic_numba": (MC_BIAS_LOGISTIC, {"run.backend": "numba"}),
    "sgd_multipass_numpy": (SGD_MULTIPASS, {"run.backend": "numpy"}),
    "sgd_multipass_numba_float32": (SGD_MULTIPASS, {"run.backend": "numba", "run.dtype": "float32"}),
    "deep_dmft": (None, dict(DEEP, **{"limit.method": "dmft", "limit.dmft_samples": 200,
                                      "limit.dmft_tangent_samples": 40, "limit.dmft_error_batches": 0,
                                      "run.backend": "numpy"})),
    "deep_ntk_numba": (None, dict(DEEP, **{"limit.method": "ntk", "model.depth": 3, "train.algorithm": "flow",
                                           "train.integrator": "heun", "run.backend": "numba"})),
    "deep_linear_sgd": (None, dict(DEEP, **{"limit.method": "dmft_linear", "model.activation": "linear",
                                            "train.algorithm": "sgd", "train.batch": 2, "run.backend": "numpy"})),
}


def config_of(name):
    base, over = CASES[name]
    if base is None:
        return _cfg(**over)
    cfg = copy.deepcopy(base)
    for k, v in over.items():
        sec, key = k.split(".", 1)
        cfg.setdefault(sec, {})[key] = v
    return cfg


def digest(a) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:32]


def _pinned(fn):
    """Run ``fn`` with BLAS on one thread and numba on at most two."""
    import numba
    from threadpoolctl import threadpool_limits

    prev = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return fn()
    finally:
        numba.set_num_threads(prev)


def run_result(name):
    import meanfield

    return _pinned(lambda: meanfield.run(config_of(name)))


def run_digests(name) -> dict:
    return {k: digest(v) for k, v in sorted(run_result(name).arrays.items())}


def scan_digests(tmp) -> dict:
    """A two-point scan (two seeds each), collected: the table's columns and stacked trajectories."""
    from meanfield.scan import collect
    from meanfield.scan.runner import run_scan

    spec_path = os.path.join(tmp, "spec.toml")
    with open(spec_path, "w") as fh:
        fh.write('seeds = 2\n[axes]\n"model.activation" = ["erf", "relu"]\n'
                 '[base.task]\nkind = "teacher_student"\nd = 3\nteacher_width = 2\n'
                 '[base.limit]\nparticles = 32\ndt = 0.1\nexpectation = "analytic"\nintegrator = "euler"\n'
                 '[base.train]\nwidths = [8]\nseeds = 2\nalgorithm = "population_gd"\nlr = 0.1\n'
                 '[base.time]\nt_max = 0.5\nrecords = 4\nsnapshots = 0\n'
                 '[base.eval]\nn_test = 100\nn_points = 2\n[base.run]\nbackend = "numpy"\n')
    out = os.path.join(tmp, "scan")
    _pinned(lambda: run_scan(spec_path, out, workers=1, progress=False, log=lambda s: None))
    col = collect(out)
    d = {f"table.{k}": digest(np.asarray(v)) for k, v in sorted(col.table.items())
         if np.asarray(v).dtype.kind in "fiub" and k != "seconds"}
    return d


def _load():
    with open(GOLDEN) as fh:
        return json.load(fh)


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_is_bitwise_unchanged(name):
    want = _load()[name]
    res = run_result(name)  # read through the result, so a renamed key is found by its old alias
    missing = sorted(k for k in want if k not in res)
    assert not missing, f"{name}: result keys no longer produced: {missing}"
    changed = sorted(k for k in want if digest(res[k]) != want[k])
    assert not changed, f"{name}: arrays changed bitwise: {changed}"


def test_scan_is_bitwise_unchanged(tmp_path):
    want = _load()["scan"]
    got = scan_digests(str(tmp_path))
    assert sorted(set(want) - set(got)) == []
    changed = sorted(k for k in want if got[k] != want[k])
    assert not changed, f"scan table columns changed bitwise: {changed}"


if __name__ == "__main__":  # python tests/test_golden.py --write
    import tempfile

    if "--write" not in sys.argv:
        sys.exit("usage: python tests/test_golden.py --write   (regenerates tests/golden/digests.json)")
    out = {name: run_digests(name) for name in sorted(CASES)}
    with tempfile.TemporaryDirectory() as tmp:
        out["scan"] = scan_digests(tmp)
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"wrote {GOLDEN}: {sum(len(v) for v in out.values())} digests")
