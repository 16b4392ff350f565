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
    from meanfield_solvers.particles.backends.cuda_backend import CudaBackend, probe
    from meanfield_solvers.particles.backends.numpy_backend import NumpyBackend
    from meanfield_solvers.particles import field, integrators

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
    return _run_script(CHECK, env_extra, args, timeout)


def _assert_close(res):
    assert res["checks"], "no checks ran"
    bad = [c for c in res["checks"] if not c[2] <= (1e-10 if c[1] == "float64" else 2e-6)]  # NaN fails
    assert not bad, bad


def test_probe_reports_cleanly():
    from meanfield_solvers.particles.backends.cuda_backend import probe

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
    from meanfield_solvers.particles.backends.cuda_backend import probe

    ok, why = probe()
    if not ok or "simulator" in why:
        pytest.skip(f"no real GPU: {why}")
    res = _run_checks({}, [128, 0, 300, 200, 500, 3, 10, 100])
    _assert_close(res)


FLOW = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    from meanfield_solvers.particles.backends.cuda_backend import CudaBackend
    from meanfield_solvers.particles.backends.cuda_flow import CudaFlow
    from meanfield_solvers.particles.backends.numpy_backend import NumpyBackend
    from meanfield_solvers.particles import field, integrators

    tpb, min_blocks, N, M, S, d, steps = [int(v) for v in sys.argv[1:8]]
    cb = CudaBackend(tpb=tpb, min_blocks=min_blocks)
    ref = NumpyBackend()
    rng = np.random.default_rng(3)
    out = {"checks": []}

    def march(name, dt, fl, th0, velocity, h, samples=None):
        # device march vs the host integrator on the reference; compare the displacements
        step = integrators.get_integrator(fl.integrator)
        st, th = fl.put(th0), th0
        for k in range(steps):
            if samples is not None:
                x, y = samples(k)
                fl.set_samples(x, y)
            st = fl.step(st)
            assert fl.all_finite(st), name
            th = step(lambda t: velocity(t, *(() if samples is None else (x, y))), th, h)
        got, want = fl.get(st) - th0, th - th0
        out["checks"].append([name, dt, float(np.linalg.norm(got - want) / np.linalg.norm(want))])

    # the last case: d = 100, beyond one register row per thread (tiles shrink, rows spill)
    cases = [("float64", "euler", "erf", False, "square", "shared", d),
             ("float64", "heun", "relu", True, "logistic", "per-seed", d),
             ("float64", "rk4", "tanh", True, "square", "shared", d),
             ("float32", "rk4", "erf", True, "square", "per-seed", d),
             ("float64", "euler", "erf", True, "square", "shared", 100)]
    d0 = d
    for dt, integ, act, bias, loss, smp, d in cases:
        model = field.TwoLayer(act, d, alpha=1.3, bias=bias, lr_a=0.7, lr_w=1.1)
        th0 = rng.standard_normal((S, N, model.p)).astype(dt)
        shape = (M, d) if smp == "shared" else (S, M, d)
        draws = [(rng.standard_normal(shape).astype(dt),
                  np.sign(rng.standard_normal(shape[:-1])).astype(dt)) for _ in range(steps)]
        fl = CudaFlow(cb, model, integ, 0.2, dt, loss)
        march(f"mc {integ} {act} bias={bias} {loss} {smp} d={d}", dt, fl, th0,
              lambda t, x, y: field.mc_risk_velocity(model, ref, t, x, y, loss)[1], 0.2,
              samples=lambda k: draws[k])
    d = d0
    w = rng.standard_normal((S, N, 100)) / 10.0; c = rng.standard_normal((S, N))
    for k, (got, want) in enumerate(zip(cb.pairwise("erf", w, w, c), ref.pairwise("erf", w, w, c))):
        out["checks"].append([f"pairwise erf d=100 [{k}]", "float64",
                              float(np.linalg.norm(got - want) / np.linalg.norm(want))])

    tw = rng.standard_normal((2, d))
    for dt, integ, act, y0 in (("float64", "rk4", "relu", 1.0), ("float64", "heun", "erf", 0.0),
                               ("float32", "euler", "relu", 1.0)):
        pop = field.GaussianPopulation(weights=np.array([0.4, 0.6]), scales=np.array([0.8, 1.2]),
                                       offsets=np.array([y0, -y0]), teacher_w=tw,
                                       teacher_c=np.array([[1.0, -0.5], [0.3, 0.2]]), activation=act)
        model = field.TwoLayer(act, d, alpha=0.9)
        th0 = rng.standard_normal((N, model.p)).astype(dt)
        fl = CudaFlow(cb, model, integ, 0.1, dt, population=pop)
        march(f"population {integ} {act} y0={y0}", dt, fl, th0,
              lambda t: field.population_risk_velocity(model, ref, t, pop)[1], 0.1)

    # a step that overflows raises the flag; the state it stepped from is intact
    model = field.TwoLayer("erf", d)
    fl = CudaFlow(cb, model, "euler", 1e300, "float64")
    x = rng.standard_normal((M, d)); fl.set_samples(x, 1e10 * np.ones(M))
    th0 = rng.standard_normal((S, N, model.p))
    st0 = fl.put(th0)
    st1 = fl.step(st0)
    out["diverged_flagged"] = [fl.all_finite(st1), fl.all_finite(st1)]  # a read is idempotent
    out["start_intact"] = bool(np.array_equal(fl.get(st0), th0))
    # later finite steps, the second one rewriting the diverged buffer, read as finite
    fl.h = 1e-3
    st2 = fl.step(st0)
    st3 = fl.step(st2)
    out["later_finite"] = [fl.all_finite(st2), fl.all_finite(st3), st3 is st1]
    # samples whose seed axis fits neither 1 nor S, and population cases the kernels do not
    # cover, are refused with the reason
    errors = []
    fl.set_samples(rng.standard_normal((S + 1, M, d)), rng.standard_normal((S + 1, M)))
    try:
        fl.step(st0)
    except ValueError as exc:
        errors.append(str(exc))
    pop = field.GaussianPopulation(weights=np.array([1.0]), scales=np.array([1.0]), offsets=np.array([0.0]),
                                   teacher_w=rng.standard_normal((2, d)), teacher_c=np.array([[1.0, -0.5]]),
                                   activation="erf")
    for bad in (field.TwoLayer("erf", d, bias=True), field.TwoLayer("relu", d)):
        try:
            CudaFlow(cb, bad, "euler", 0.1, population=pop)
        except ValueError as exc:
            errors.append(str(exc))
    fl.set_train(rng.standard_normal((5, d)), rng.standard_normal(5))
    try:
        fl.set_batch_indices(np.array([[0, 5]]))
    except ValueError as exc:
        errors.append(str(exc))
    out["errors"] = errors

    # the benchmark's device-resident cuda calls compute what the numpy rows compute
    from benchmarks.suite import _cuda_calls
    w = rng.standard_normal((N, d)); c = rng.standard_normal(N); a = rng.standard_normal(N)
    x = rng.standard_normal((M, d)); y = rng.standard_normal(M)
    F, G = _cuda_calls(cb, "pairwise_erf", w, c)()
    F0, G0 = ref.pairwise("erf", w, w, c)
    for name, got, want in (("bench pairwise F", F, F0), ("bench pairwise G", G, G0)):
        out["checks"].append([name, "float64", float(np.linalg.norm(got.copy_to_host() - want) / np.linalg.norm(want))])
    model = field.TwoLayer("erf", d)
    th = np.concatenate([a[:, None], w], axis=1)
    v = _cuda_calls(cb, "mc_step", x, w, a, y)().copy_to_host()
    v0 = field.mc_risk_velocity(model, ref, th, x, y)[1]
    out["checks"].append(["bench mc velocity", "float64", float(np.linalg.norm(v - v0) / np.linalg.norm(v0))])
    ths = rng.standard_normal((S, N, 1 + d)); xs = rng.standard_normal((S, M, d)); ys = rng.standard_normal((S, M))
    t1 = _cuda_calls(cb, "ensemble_step", ths, xs, ys)().copy_to_host()
    t0 = integrators.euler(lambda t: field.mc_risk_velocity(model, ref, t, xs, ys)[1], ths, 0.01)
    out["checks"].append(["bench ensemble step", "float64", float(np.linalg.norm((t1 - ths) - (t0 - ths)) / np.linalg.norm(t0 - ths))])
    # the GPU-sized block of the suite, at simulator sizes
    from benchmarks.gpu_targets import gpu_rows
    rows = gpu_rows(cb, None, sizes=[2 * tpb + 1], mc_size=(N, 5, M), repeats=1, log=lambda s: None)
    out["gpu_rows"] = [[r["workload"], r["backend"], r["N"], r["throughput"] > 0, r.get("ratio_vs_two_gemms")]
                       for r in rows]
    print("RESULT" + json.dumps(out))
    """
)

RUN = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    sys.path.insert(0, "tests")
    import meanfield
    from helpers import tiny

    from meanfield_solvers.particles.backends import cuda_flow

    steps = [0]  # device steps taken: proves the run marched resident, not host-driven
    _step = cuda_flow.CudaFlow.step

    def counted(self, theta):
        steps[0] += 1
        return _step(self, theta)

    cuda_flow.CudaFlow.step = counted
    out = {"checks": [], "logs": {}, "resident_steps": {}}
    base = {"limit.particles": 8, "train.widths": [4], "train.seeds": 2, "time.t_max": 0.4,
            "time.records": 3, "eval.n_test": 16, "eval.n_points": 2, "time.snapshots": 2}
    cases = {
        "analytic limit, online sgd": {},
        "mc limit heun, gd, bias": {"limit.expectation": "mc", "limit.mc_samples": 12,
                                    "limit.integrator": "heun", "train.algorithm": "gd",
                                    "train.n_train": 10, "model.bias": True,
                                    "model.activation": "relu"},
        "mc limit rk4, multi-pass sgd": {"limit.expectation": "mc", "limit.mc_samples": 12,
                                         "limit.integrator": "rk4", "train.algorithm": "sgd",
                                         "train.n_train": 10, "train.batch": 3},
        # beyond the kernels' row-per-thread reach: host-driven on the same backend, said once
        "mc limit, d = 130": {"task.d": 130, "limit.expectation": "mc", "limit.mc_samples": 12},
    }
    for name, over in cases.items():
        res = {}
        for be in ("numpy", "cuda"):
            logs = []
            steps[0] = 0
            res[be] = meanfield.run(tiny(**base, **over, **{"run.backend": be}), log=logs.append)
            out["logs"][name] = out["logs"].get(name, []) + logs
        out["resident_steps"][name] = steps[0]
        a, b = res["numpy"].arrays, res["cuda"].arrays
        assert res["cuda"].summary["backend"] == "cuda"
        for k in ("risk_mf", "risk_nn", "particles_mf", "particles_mf_final", "neurons_nn_N4", "f_mf"):
            x, y = np.asarray(b[k], float), np.asarray(a[k], float)
            out["checks"].append([f"{name}: {k}", "float64",
                                  float(np.linalg.norm(x - y) / np.linalg.norm(y))])
    print("RESULT" + json.dumps(out))
    """
)


def _run_script(script, env_extra, args, timeout=900):
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", script, *[str(a) for a in args]],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_resident_flow_in_simulator():
    # the device-resident march (kernels composed on device, one flag read per step) against the
    # host integrators on the numpy reference: displacements after `steps` steps
    res = _run_script(FLOW, {"NUMBA_ENABLE_CUDASIM": "1"}, [4, 8, 6, 5, 2, 3, 3])
    _assert_close(res)
    assert len(res["checks"]) == 14
    assert res["diverged_flagged"] == [False, False] and res["start_intact"]
    assert res["later_finite"] == [True, True, True]
    e = res["errors"]
    assert len(e) == 4 and "seed axis" in e[0] and "bias = false" in e[1] and "teacher's activation" in e[2], e
    assert "must lie in [0, 5)" in e[3], e
    assert res["gpu_rows"] == [["pairwise_erf", "cuda", 9, True, None], ["mc_step", "cuda", 6, True, None]]


def test_run_with_resident_cuda_matches_numpy_in_simulator():
    res = _run_script(RUN, {"NUMBA_ENABLE_CUDASIM": "1"}, [])
    _assert_close(res)
    # t_max 0.4 at dt = lr = 0.1: 4 limit steps and 4 network steps per case, all on the device
    # where the kernels reach, with no notice; none at d = 130, with one notice per side
    assert res["resident_steps"] == {"analytic limit, online sgd": 8, "mc limit heun, gd, bias": 8,
                                     "mc limit rk4, multi-pass sgd": 8, "mc limit, d = 130": 0}
    # (the coupling factor's line is about the networks' initialisation, not about where they run)
    logs = {k: [m for m in v if not m.startswith("coupled to the limit")] for k, v in res["logs"].items()}
    assert not any(logs[k] for k in logs if "d = 130" not in k), logs
    assert len(logs["mc limit, d = 130"]) == 2 and all("d = 130 > 128" in m for m in logs["mc limit, d = 130"])


def test_resident_flow_coverage_reasons():
    # what the resident kernels refuse, and why (the run then steps host-driven and says so)
    from meanfield_solvers.particles.backends.cuda_flow import unsupported
    from meanfield_solvers.particles.field import TwoLayer

    assert unsupported(TwoLayer("tanh", 100, bias=True), "mc", "logistic") == ""
    assert unsupported(TwoLayer("relu", 128), "analytic") == ""
    assert "d = 129 > 128" in unsupported(TwoLayer("erf", 129), "mc")
    assert "on the CPU" in unsupported(TwoLayer("linear", 3), "analytic")
    assert "square loss" in unsupported(TwoLayer("erf", 3), "analytic", "logistic")
    assert "no CUDA residual" in unsupported(TwoLayer("erf", 3), "mc", "hinge")


HUNDRED = textwrap.dedent(
    r"""
    import json
    import numpy as np
    from meanfield_solvers.particles.backends.cuda_backend import CudaBackend
    from meanfield_solvers.particles.backends.cuda_flow import CudaFlow
    from meanfield_solvers.particles.backends.numpy_backend import NumpyBackend
    from meanfield_solvers.particles import field, integrators

    cb = CudaBackend(tpb=4, min_blocks=1)
    ref = NumpyBackend()
    rng = np.random.default_rng(0)
    model = field.TwoLayer("erf", 2)
    x = rng.standard_normal((4, 2)); y = rng.standard_normal(4)
    th0 = rng.standard_normal((1, 4, model.p))
    out = {"checks": []}
    for name in ("euler", "heun", "rk4"):
        fl = CudaFlow(cb, model, name, 0.05)
        fl.set_samples(x, y)
        st, th = fl.put(th0), th0
        step = integrators.get_integrator(name)
        for _ in range(100):
            st = fl.step(st)
            assert fl.all_finite(st)
            th = step(lambda t: field.mc_risk_velocity(model, ref, t, x, y)[1], th, 0.05)
        got = fl.get(st)
        out["checks"].append([f"100 steps {name}", "float64",
                              float(np.linalg.norm((got - th0) - (th - th0)) / np.linalg.norm(th - th0))])
    print("RESULT" + json.dumps(out))
    """
)


def test_resident_flow_100_steps_each_integrator_in_simulator():
    # the agreement criterion for the cuda backend as a run uses it: 100 resident steps
    # of each integrator within 1e-10 of the numpy reference (measured ~3e-16); ~1 min here
    res = _run_script(HUNDRED, {"NUMBA_ENABLE_CUDASIM": "1"}, [])
    assert len(res["checks"]) == 3
    _assert_close(res)
