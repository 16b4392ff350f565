r"""Benchmark suite of the particle backends: ``python -m benchmarks.suite [--quick] [--json FILE]``.

Workloads (each on every usable backend: numpy reference, numba, cuda on a real GPU; plus a
straightforward PyTorch version when torch is importable)
------------------------------------------------------------------------------------------------
``pairwise_erf``
    One analytic erf pairwise evaluation ``backend.pairwise("erf", w, w, c)`` (self-interaction:
    the dominant cost of one population-flow velocity), n = m = N, d = 10.
    Throughput: pairs/s = N²/t (ordered pairs of the result, also when a backend exploits the
    symmetry of the self-interaction and evaluates each unordered pair once). Flops counted
    per ordered pair: 4d (the dot product and the gradient accumulation, one FMA = 2 flops)
    + 40 for the kernel (asin polynomial and reflection ≈ 30, det/sqrt/division/weights ≈ 10,
    sqrt and division counted as one flop): the work of the straightforward evaluation.
``mc_step``
    One Monte Carlo velocity: ``mc_forward`` then ``mc_backward`` (erf, no bias) on M samples,
    N particles. Throughput: particle·samples/s = N·M/t. Flops: three GEMMs of 2NMd each (Z in
    the forward, Z again in the backward, the gradient DᵀX) + 80 per (particle, sample) for
    the elementwise work (erf, its derivative, weights, sums).
``ensemble_step``
    A finite-width ensemble of S = 100 networks × N = 256 neurons (d = 20), one online-SGD-like
    step each: a fresh batch of M = 64 samples per seed, forward, residual, backward (the
    same flop count as ``mc_step`` per seed). ``batched`` runs all seeds as one computation
    (leading seed axis); ``numpy-loop`` is a Python loop over the seeds calling the numpy
    backend per seed (what one writes without a batch axis). Throughput: seed·steps/s = S/t.

Measurements: seconds per step are the median of ``repeats`` timed calls after one warm-up
call (which also compiles), raised to fill ~0.3 s for calls under 10 ms; slow cases (> 20 s) use one timed call. ``ratio_vs_numpy`` =
t(numpy) / t(backend) measured in the same run (null where numpy was not run at that size);
``ratio_vs_torch`` likewise against the torch version (null without torch).
``roofline_fraction`` = achieved flop rate / peak, the peak being a calibration GEMM
(``A @ B``, 2048³·2 flops, best of 3) in the same dtype, measured in the same run (for cuda:
on the GPU).

cuda rows time device-resident calls (:func:`_cuda_calls`: inputs uploaded once, a
synchronisation at the end of each call), as a run's time loop performs them; the numpy and
numba rows work on host arrays, where they live.

With a real GPU the suite also runs the GPU-sized workloads of :mod:`benchmarks.gpu_targets`
(pairwise float32 up to N = 10⁶ beside dense PyTorch on the same GPU; the Monte Carlo step at
N = 10⁶, d = 100, M = 10⁴ against its two cuBLAS GEMMs).

``--quick`` (smaller sizes, fewer repeats) finishes in under 2 minutes on 2 cores with warm
numba caches. ``--json FILE`` writes one record per row with the keys workload, backend,
dtype, N, d, M, S, seconds_per_step, throughput, throughput_unit, ratio_vs_numpy,
ratio_vs_torch, roofline_fraction (and the run's machine description under "machine").
``--compile`` also measures the cold numba compile time (fresh cache directory, in a
subprocess) and the warm-cache import + first call, and, cold then warm, the delay from
launching ``meanfield run`` on the README's quickstart to its first step.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["main", "run_suite", "compile_times", "machine"]


# ------------------------------------------------------------------ infrastructure
def _median_time(fn, repeats):
    t0 = time.perf_counter()
    fn()  # warm-up (and compile)
    first = time.perf_counter() - t0
    if first > 20.0:
        repeats = 1
    elif first < 0.01:
        # millisecond calls: enough repeats for ~0.3 s of samples (a median of 5 such calls moved
        # by ±20 % between runs on the shared 2-core machine)
        repeats = max(repeats, min(100, int(0.3 / max(first, 1e-6))))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def machine():
    """A one-line description of this machine (CPU model from lscpu, cores, load average)."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except Exception:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, load average {load:.1f} at start"


def _peak_flops(dtype, repeats=3):
    """Calibration GEMM: best flop rate of a 2048³ matmul in dtype (same BLAS threads as numpy)."""
    rng = np.random.default_rng(0)
    n = 2048
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def _cuda_peak(dtype):  # pragma: no cover - needs a GPU
    try:
        import cupy as cp
    except Exception:
        return None
    n = 8192
    a = cp.random.standard_normal((n, n)).astype(dtype)
    b = cp.random.standard_normal((n, n)).astype(dtype)
    a @ b
    cp.cuda.Device().synchronize()
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        cp.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def _backends():
    """Usable backends: (name, instance). cuda only on a real GPU (not the simulator)."""
    from meanfield_solvers.particles.backends import get_backend
    from meanfield_solvers.particles.backends.cuda_backend import probe as cuda_probe

    out = [("numpy", get_backend("numpy")), ("numba", get_backend("numba"))]
    ok, why = cuda_probe()
    if ok and "simulator" not in why:  # pragma: no cover - needs a GPU
        out.append(("cuda", get_backend("cuda")))
    return out


def _torch():
    try:
        import torch  # noqa: F401

        return torch
    except Exception:
        return None


# ------------------------------------------------------------------ straightforward torch versions
def _torch_pairwise_erf(torch, w, c, block=2048):  # pragma: no cover - torch is optional
    """Dense per row block: C = W Wᵀ, closed-form kernel, F = K c, G by the same formulas."""
    W = torch.as_tensor(w)
    cc = torch.as_tensor(c)
    q = (W * W).sum(1)
    F = torch.empty_like(q)
    G = torch.empty_like(W)
    two_pi = 2.0 / np.pi
    for lo in range(0, W.shape[0], block):
        Wi = W[lo : lo + block]
        qi = q[lo : lo + block]
        C = Wi @ W.T
        idx = torch.arange(Wi.shape[0])
        C[idx, lo + idx] = qi
        P = (1 + qi)[:, None] * (1 + q)[None, :]
        dc = two_pi / torch.sqrt(torch.clamp(P - C * C, min=1e-300))
        K = two_pi * torch.asin(torch.clamp(C / torch.sqrt(P), -1, 1))
        F[lo : lo + block] = K @ cc
        coef = -(C * dc) @ cc / (1 + qi)
        G[lo : lo + block] = coef[:, None] * Wi + (dc * cc[None, :]) @ W
    return F, G


def _torch_mc_step(torch, x, w, a, y, block_bytes=32 * 2**20):  # pragma: no cover
    X = torch.as_tensor(x)
    W = torch.as_tensor(w)
    A = torch.as_tensor(a)
    Y = torch.as_tensor(y)
    M, N = X.shape[0], W.shape[0]
    step = max(1, block_bytes // (M * X.element_size()))
    f = torch.zeros(M, dtype=X.dtype)
    s2 = 1.0 / np.sqrt(2.0)
    for lo in range(0, N, step):
        f += torch.erf((X @ W[lo : lo + step].T) * s2) @ A[lo : lo + step]
    f /= N
    rr = (Y - f) / M
    ga = torch.empty(N, dtype=X.dtype)
    gw = torch.empty_like(W)
    c = np.sqrt(2.0 / np.pi)
    for lo in range(0, N, step):
        Z = X @ W[lo : lo + step].T
        ga[lo : lo + step] = rr @ torch.erf(Z * s2)
        D = rr[:, None] * c * torch.exp(-0.5 * Z * Z)
        gw[lo : lo + step] = D.T @ X
    return ga, gw


def _torch_ensemble_step(torch, theta, x, y, lr):  # pragma: no cover - torch is optional
    """One SGD step of S erf networks batched over seeds with ``bmm`` (hand-written gradients)."""
    T = torch.as_tensor(theta)
    X = torch.as_tensor(x)
    Y = torch.as_tensor(y)
    A, W = T[..., 0], T[..., 1:]
    N, M = W.shape[1], X.shape[1]
    Z = torch.bmm(X, W.transpose(1, 2))                     # (S, M, N)
    sig = torch.erf(Z * (1.0 / np.sqrt(2.0)))
    f = torch.bmm(sig, A[..., None])[..., 0] / N
    rr = (Y - f) / M
    ga = torch.bmm(rr[:, None, :], sig)[:, 0]               # (S, N)
    D = rr[..., None] * np.sqrt(2.0 / np.pi) * torch.exp(-0.5 * Z * Z)
    gw = torch.bmm(D.transpose(1, 2), X)                    # (S, N, d)
    V = torch.empty_like(T)
    V[..., 0] = ga
    V[..., 1:] = A[..., None] * gw
    return T + lr * V


# ------------------------------------------------------------------ device-resident cuda calls
def _cuda_calls(be, workload, *arrays):
    """A closure timing ``workload`` on the GPU as a run performs it, with the inputs resident.

    The run's time loops keep particles and samples in device memory (``CudaFlow``), so the
    timed call uploads nothing and downloads nothing; it ends with a device synchronisation so
    that the time covers the kernels. ``pairwise_erf``: arrays (w, c); ``mc_step``: (x, w, a, y),
    one velocity evaluation (forward, residual, backward, assembly); ``ensemble_step``:
    (theta, xs, ys), one Euler step of size 0.01.
    """
    from numba import cuda

    from meanfield_solvers.particles import field
    from meanfield_solvers.particles.backends.cuda_flow import CudaFlow

    if workload == "pairwise_erf":
        w, c = (cuda.to_device(np.ascontiguousarray(v)) for v in arrays)

        def call():
            out = be.pairwise("erf", w, w, c)
            cuda.synchronize()
            return out
        return call
    if workload == "mc_step":
        x, w, a, y = arrays
        model = field.TwoLayer("erf", w.shape[1])
        flow = CudaFlow(be, model, "euler", 1.0, w.dtype)
        flow.set_samples(x, y)
        state = flow.put(np.concatenate([a[:, None], w], axis=1))

        def call():
            out = flow.velocity(state)
            cuda.synchronize()
            return out
        return call
    theta, xs, ys = arrays
    flow = CudaFlow(be, field.TwoLayer("erf", xs.shape[-1]), "euler", 0.01, theta.dtype)
    flow.set_samples(xs, ys)
    state = flow.put(theta)

    def call():
        out = flow.step(state)
        cuda.synchronize()
        return out
    return call


# ------------------------------------------------------------------ workloads
def _pairwise_erf(backends, torch, sizes, d, dtypes, repeats, numpy_max, peaks, rows):
    rng = np.random.default_rng(1)
    for N in sizes:
        for dt in dtypes:
            w = (rng.standard_normal((N, d)) / np.sqrt(d)).astype(dt)
            c = (rng.standard_normal(N) / N).astype(dt)
            times = {}
            for name, be in backends:
                if name == "numpy" and N > numpy_max:
                    continue
                if name == "cuda":  # pragma: no cover - needs a GPU
                    times[name] = _median_time(_cuda_calls(be, "pairwise_erf", w, c), repeats)
                    continue
                times[name] = _median_time(lambda be=be: be.pairwise("erf", w, w, c), repeats)
            t_torch = None
            if torch is not None:  # pragma: no cover
                t_torch = _median_time(lambda: _torch_pairwise_erf(torch, w, c), repeats)
            flops = N * N * (4 * d + 40)
            for name, t in times.items():
                rows.append(_row("pairwise_erf", name, dt, N, d, N, None, t, N * N / t, "pairs/s",
                                 times.get("numpy"), t_torch, flops, peaks.get((name, dt))))


def _mc_step(backends, torch, sizes, d, dtypes, repeats, numpy_max, peaks, rows):
    rng = np.random.default_rng(2)
    for N, M in sizes:
        for dt in dtypes:
            x = rng.standard_normal((M, d)).astype(dt)
            w = (rng.standard_normal((N, d)) / np.sqrt(d)).astype(dt)
            a = rng.standard_normal(N).astype(dt)
            y = rng.standard_normal(M).astype(dt)

            def step(be):
                f = be.mc_forward("erf", x, w, None, a, 1.0 / N)
                return be.mc_backward("erf", x, w, None, y - f)

            times = {}
            for name, be in backends:
                if name == "numpy" and N * M > numpy_max:
                    continue
                if name == "cuda":  # pragma: no cover - needs a GPU
                    times[name] = _median_time(_cuda_calls(be, "mc_step", x, w, a, y), repeats)
                    continue
                times[name] = _median_time(lambda be=be: step(be), repeats)
            t_torch = None
            if torch is not None:  # pragma: no cover
                t_torch = _median_time(lambda: _torch_mc_step(torch, x, w, a, y), repeats)
            flops = 6.0 * N * M * d + 80.0 * N * M
            for name, t in times.items():
                rows.append(_row("mc_step", name, dt, N, d, M, None, t, N * M / t,
                                 "particle*samples/s", times.get("numpy"), t_torch, flops,
                                 peaks.get((name, dt))))


def _ensemble_step(backends, S, N, d, M, dtypes, repeats, peaks, rows, torch=None):
    from meanfield_solvers.particles import field
    from meanfield_solvers.particles.integrators import euler

    rng = np.random.default_rng(3)
    model = field.TwoLayer("erf", d)
    teacher = rng.standard_normal(d) / np.sqrt(d)
    for dt in dtypes:
        theta = (rng.standard_normal((S, N, model.p)) / np.sqrt(d)).astype(dt)
        xs = rng.standard_normal((S, M, d)).astype(dt)
        ys = np.tanh(xs @ teacher).astype(dt)

        # one Euler (= SGD) step, as the trainers take it
        def batched(be):
            return euler(lambda th: field.mc_risk_velocity(model, be, th, xs, ys)[1], theta, 0.01)

        def loop(be):
            return [euler(lambda th, s=s: field.mc_risk_velocity(model, be, th, xs[s], ys[s])[1], theta[s], 0.01)
                    for s in range(S)]

        ref = dict(backends)["numpy"]
        times = {"numpy-loop": _median_time(lambda: loop(ref), repeats)}
        for name, be in backends:
            if name == "cuda":  # pragma: no cover - needs a GPU
                times[name] = _median_time(_cuda_calls(be, "ensemble_step", theta, xs, ys), repeats)
                continue
            times[name] = _median_time(lambda be=be: batched(be), repeats)
        t_torch = None
        if torch is not None:  # pragma: no cover
            t_torch = _median_time(lambda: _torch_ensemble_step(torch, theta, xs, ys, 0.01), repeats)
        flops = S * (6.0 * N * M * d + 80.0 * N * M)
        for name, t in times.items():
            peak = peaks.get(("numpy" if name == "numpy-loop" else name, dt))
            label = name if name == "numpy-loop" else f"{name} batched"
            rows.append(_row("ensemble_step", label, dt, N, d, M, S, t, S / t, "seed*steps/s",
                             times["numpy-loop"], t_torch, flops, peak))


def _row(workload, backend, dt, N, d, M, S, t, thr, unit, t_numpy, t_torch, flops, peak):
    return {
        "workload": workload,
        "backend": backend,
        "dtype": np.dtype(dt).name,
        "N": int(N),
        "d": int(d),
        "M": None if M is None else int(M),
        "S": None if S is None else int(S),
        "seconds_per_step": t,
        "throughput": thr,
        "throughput_unit": unit,
        "ratio_vs_numpy": None if t_numpy is None else t_numpy / t,
        "ratio_vs_torch": None if t_torch is None else t_torch / t,
        "roofline_fraction": None if not peak else flops / t / peak,
    }


def run_suite(quick=False, log=print):
    """Run every workload; return the list of records (see the module docstring)."""
    torch = _torch()
    backends = _backends()
    dtypes = [np.float64, np.float32]
    peaks = {}
    for dt in dtypes:
        p = _peak_flops(dt)
        peaks[("numpy", dt)] = peaks[("numba", dt)] = p
        log(f"calibration GEMM {np.dtype(dt).name}: {p / 1e9:.1f} GFLOP/s")
        if any(n == "cuda" for n, _ in backends):  # pragma: no cover
            peaks[("cuda", dt)] = _cuda_peak(dt)
    log("torch: " + ("importable" if torch is not None else "not importable: torch ratios skipped"))
    rows = []
    if quick:
        _pairwise_erf(backends, torch, [1024, 2048], 10, dtypes, 3, 2048, peaks, rows)
        _mc_step(backends, torch, [(2000, 2000)], 20, dtypes, 3, 4e6, peaks, rows)
        _ensemble_step(backends, 100, 256, 20, 64, [np.float64], 3, peaks, rows, torch)
    else:
        _pairwise_erf(backends, torch, [2048, 4096, 16384], 10, dtypes, 3, 16384, peaks, rows)
        _mc_step(backends, torch, [(10**4, 10**4), (10**5, 10**4)], 20, dtypes, 3, 1e8, peaks, rows)
        _ensemble_step(backends, 100, 256, 20, 64, dtypes, 5, peaks, rows, torch)
    cuda_be = dict(backends).get("cuda")
    if cuda_be is not None:  # pragma: no cover - needs a GPU
        from .gpu_targets import gpu_rows, torch_on_gpu

        rows += gpu_rows(cuda_be, torch_on_gpu(), quick, log=log, peak=peaks.get(("cuda", np.float32)))
    return rows


def format_table(rows):
    """Plain-text table of the records."""
    head = ["workload", "N", "d", "M|S", "backend", "dtype", "s/step", "throughput", "unit",
            "x numpy", "x torch", "roofline"]
    lines = []
    for r in rows:
        ms = f"M={r['M']}" if r["S"] is None else f"S={r['S']},M={r['M']}"
        lines.append([
            r["workload"], str(r["N"]), str(r["d"]), ms, r["backend"], r["dtype"],
            f"{r['seconds_per_step']:.4g}", f"{r['throughput']:.3g}", r["throughput_unit"],
            "-" if r["ratio_vs_numpy"] is None else f"{r['ratio_vs_numpy']:.2f}",
            "-" if r["ratio_vs_torch"] is None else f"{r['ratio_vs_torch']:.2f}",
            "-" if r["roofline_fraction"] is None else f"{100 * r['roofline_fraction']:.1f}%",
        ])
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(ln, widths)) for ln in lines]
    return "\n".join(out)


# ------------------------------------------------------------------ compile times
_COMPILE_PROBE = r"""
import time, json
t0 = time.perf_counter()
import numpy as np
from meanfield_solvers.particles.backends import get_backend
be = get_backend("numba")
t1 = time.perf_counter()
rng = np.random.default_rng(0)
w = rng.standard_normal((64, 10)); c = rng.standard_normal(64)
be.pairwise("erf", w, w, c)
t2 = time.perf_counter()
x = rng.standard_normal((50, 10)); a = rng.standard_normal(64)
f = be.mc_forward("erf", x, w, None, a, 1.0)
be.mc_backward("erf", x, w, None, f)
t3 = time.perf_counter()
print("RESULT" + json.dumps({"import": t1 - t0, "pairwise_first_call": t2 - t1, "mc_first_calls": t3 - t2}))
"""


# `meanfield run` on the README's quickstart, timing the launch-to-first-step delay: march is
# wrapped so that its first step call reports the time since the process was launched
_QUICKSTART_PROBE = r"""
import json, sys, time
t_launch = float(sys.argv[1])
import meanfield.run
mr = sys.modules["meanfield.run"]
orig, first = mr.march, []

def march(step, *a, **k):
    def timed(th, kk):
        if not first:
            first.append(time.time() - t_launch)
        return step(th, kk)
    return orig(timed, *a, **k)

mr.march = march
from meanfield.cli import main
main(["run", "experiments/teacher_student_erf.toml", "--out", sys.argv[2]])
print("RESULT" + json.dumps({"quickstart_first_step": first[0],
                             "quickstart_total": time.time() - t_launch}))
"""


def _probe(script, env, root, *args):
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=root,
                         capture_output=True, text=True, timeout=900)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    return json.loads(line[-1][6:]) if line else {"error": out.stderr[-500:]}


def compile_times():
    """Cold (empty cache) and warm (cached) import + first-call times of the numba kernels (s),
    and the delay from launching ``meanfield run`` on the quickstart to its first step."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=root)
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            rec = _probe(_COMPILE_PROBE, env, root)
            rec["process_total"] = time.perf_counter() - t0
            rec.update(_probe(_QUICKSTART_PROBE, env, root, repr(time.time()),
                              os.path.join(cache, f"quickstart-{label}")))
            res[label] = rec
    return res


# ------------------------------------------------------------------ CLI
def main(argv=None):
    """``[--quick] [--json FILE] [--compile]``: run the suite and print the table."""
    p = argparse.ArgumentParser(prog="meanfield bench", description="Benchmark the particle backends.")
    p.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes on 2 cores")
    p.add_argument("--json", metavar="FILE", help="write the records as JSON")
    p.add_argument("--compile", action="store_true", help="also measure cold/warm numba compile times")
    p.add_argument("--only", choices=("particles", "deep", "scan"), action="append",
                   help="run only these groups (repeatable; default: all)")
    args = p.parse_args(argv)
    from meanfield_solvers.heap import retain_freed_memory

    retain_freed_memory()
    groups = set(args.only or ("particles", "deep", "scan"))
    desc = machine()
    print(f"machine: {desc}")
    t0 = time.perf_counter()
    rows = run_suite(quick=args.quick) if "particles" in groups else []
    if "deep" in groups:
        from .deep_bench import bench_deep

        rows += bench_deep(quick=args.quick)
    print(format_table(rows))
    scan = []
    if "scan" in groups:
        from .scan_overhead import bench_scan_overhead

        scan = bench_scan_overhead(quick=args.quick)
    comp = None
    if args.compile:
        comp = compile_times()
        for label, rec in comp.items():
            print(f"numba {label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in rec.items() if isinstance(v, float)))
    print(f"total {time.perf_counter() - t0:.1f} s")
    if args.json:
        records = [dict(r, machine=desc) for r in rows] + [_scan_record(r, desc) for r in scan]
        for label, rec in (comp or {}).items():
            records.append(_compile_record(label, rec, desc))
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)
    return 0


def _scan_record(r, desc):
    """A scan-overhead measurement in the record format (seconds per run in ``seconds_per_step``)."""
    return {
        "workload": r["name"], "backend": "numpy", "dtype": "float64", "N": None, "d": None, "M": None,
        "S": r.get("n_runs"), "seconds_per_step": r["value"], "throughput": None, "throughput_unit": r["unit"],
        "ratio_vs_numpy": None, "ratio_vs_torch": None, "roofline_fraction": None, "machine": desc, "detail": r,
    }


def _compile_record(label, rec, desc):
    """A compile-time measurement in the record format (times in ``detail``, seconds)."""
    return {
        "workload": f"numba_compile_{label}", "backend": "numba", "dtype": "float64",
        "N": None, "d": None, "M": None, "S": None,
        "seconds_per_step": rec.get("process_total"), "throughput": None, "throughput_unit": None,
        "ratio_vs_numpy": None, "ratio_vs_torch": None, "roofline_fraction": None,
        "machine": desc, "detail": rec,
    }


if __name__ == "__main__":
    sys.exit(main())
