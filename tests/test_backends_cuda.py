"""The numba-cuda backend against the numpy reference.

Without a GPU the kernels run in numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set in a
subprocess because the mode is fixed when numba.cuda is imported) at tiny sizes, with few
threads per block and a forced split of the source range, so the tiling, the cooperative
loads, the split partial sums and their reduction are all exercised. With a real GPU the same
checks also run in-process at moderate sizes. Everything is skipped, with the reason, when
numba-cuda is not installed.

Tolerances: float64 1e-10 relative (measured ≤ 4e-16 in the simulator); float32 2e-6
(measured ≤ 3e-7).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

try:
    import numba.cuda  # noqa: F401

    HAVE_NUMBA_CUDA = True
except Exception:  # pragma: no cover
    HAVE_NUMBA_CUDA = False

pytestmark = pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="numba-cuda not installed (optional extra [cuda])")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    from solvers.particles.backends.cuda_backend import CudaBackend, probe
    from solvers.particles.backends.numpy_backend import NumpyBackend
    from solvers.particles import field, integrators

    tpb, min_blocks, n, m, M, S, d = [int(v) for v in sys.argv[1:8]]
    cb = CudaBackend(tpb=tpb, min_blocks=min_blocks)
    ref = NumpyBackend()
    rng = np.random.default_rng(0)
    out = {"probe": probe()[1], "checks": []}

    def rel(a, b):
        a = np.asarray(a, dtype=float); b = np.asarray(b, dtype=float)
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))

    def record(name, dt, got, want):
        if want is None:
            out["checks"].append([name, dt, 0.0 if got is None else 1.0])
            return
        assert got.shape == want.shape, (name, got.shape, want.shape)
        assert got.dtype == np.dtype(dt), (name, got.dtype)
        out["checks"].append([name, dt, rel(got, want)])

    for dt in ("float64", "float32"):
        for act in ("erf", "relu", "linear"):
            w = rng.standard_normal((S, n, d)).astype(dt); c = rng.standard_normal((S, n)).astype(dt)
            t = rng.standard_normal((m, d)).astype(dt); ct = rng.standard_normal(m).astype(dt)
            w0 = w[0]  # one object: `wi is wj` selects the exact diagonal in both backends
            for tag, args in (("self", (w, w, c, 1.3)), ("cross", (w, t, ct, 0.7)),
                              ("single", (w0, w0, c[0], 1.0))):
                F, G = cb.pairwise(act, *args)
                F0, G0 = ref.pairwise(act, *args)
                record(f"pairwise {act} {tag} F", dt, F, F0)
                record(f"pairwise {act} {tag} G", dt, G, G0)
        for act in ("erf", "relu", "tanh", "linear"):
            for bias in (False, True):
                x = rng.standard_normal((M, d)).astype(dt)
                w = rng.standard_normal((S, n, d)).astype(dt)
                b = rng.standard_normal((S, n)).astype(dt) if bias else None
                a = rng.standard_normal((S, n)).astype(dt)
                r = rng.standard_normal((S, M)).astype(dt)
                record(f"mc_forward {act} bias={bias}", dt,
                       cb.mc_forward(act, x, w, b, a, 0.3), ref.mc_forward(act, x, w, b, a, 0.3))
                for k, (p, q) in enumerate(zip(cb.mc_backward(act, x, w, b, r), ref.mc_backward(act, x, w, b, r))):
                    record(f"mc_backward {act} bias={bias} [{k}]", dt, p, q)

    # device-resident inputs give device outputs with the same values
    from numba import cuda
    w = rng.standard_normal((S, n, d)); c = rng.standard_normal((S, n))
    wd = cuda.to_device(w)
    F, G = cb.pairwise("erf", wd, wd, cuda.to_device(c), 1.0)
    F0, G0 = ref.pairwise("erf", w, w, c, 1.0)
    record("pairwise device-resident F", "float64", F.copy_to_host(), F0)
    record("pairwise device-resident G", "float64", G.copy_to_host(), G0)

    # a short integration through the shared field code
    steps = int(sys.argv[8])
    model = field.TwoLayer("erf", d)
    pop = field.GaussianPopulation(weights=np.array([1.0]), scales=np.array([1.0]),
                                   offsets=np.array([0.0]), teacher_w=rng.standard_normal((2, d)),
                                   teacher_c=np.array([[1.0, -0.5]]), activation="erf")
    th0 = rng.standard_normal((n, 1 + d))
    for name in ("euler", "heun", "rk4"):
        step = integrators.get_integrator(name)
        res = []
        for be in (ref, cb):
            th = th0
            for _ in range(steps):
                th = step(lambda y: field.population_risk_velocity(model, be, y, pop)[1], th, 0.05)
            res.append(th)
        record(f"integration {name} {steps} steps", "float64", res[1], res[0])
    print("RESULT" + json.dumps(out))
    """
)


def _run_checks(env_extra, args, timeout=900):
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, *[str(a) for a in args]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def _assert_close(res):
    assert res["checks"], "no checks ran"
    bad = [c for c in res["checks"] if c[2] > (1e-10 if c[1] == "float64" else 2e-6)]
    assert not bad, bad


def test_probe_reports_cleanly():
    from solvers.particles.backends.cuda_backend import probe

    ok, why = probe()
    assert isinstance(ok, bool) and isinstance(why, str)
    if not ok:
        assert why.startswith("no CUDA GPU / numba-cuda not installed")


def test_kernels_in_simulator():
    # tpb=4 with min_blocks=16: several tiles per split and several splits per target block
    res = _run_checks({"NUMBA_ENABLE_CUDASIM": "1"}, [4, 16, 6, 9, 7, 2, 3, 3])
    assert "simulator" in res["probe"]
    _assert_close(res)


def test_kernels_on_gpu():
    from solvers.particles.backends.cuda_backend import probe

    ok, why = probe()
    if not ok or "simulator" in why:
        pytest.skip(f"no real GPU: {why}")
    res = _run_checks({}, [128, 0, 300, 200, 500, 3, 10, 100])
    _assert_close(res)
