r"""GPU workloads at the sizes of the fast-backends issue's GPU targets.

:func:`benchmarks.suite.run_suite` adds these rows when a real GPU and numba-cuda are usable
(the CPU workloads' sizes are far too small to occupy a GPU). Every cuda call is device-resident
(:func:`benchmarks.suite._cuda_calls`) and ends with a synchronisation.

``pairwise_erf`` (float32, d = 20)
    N = 32768, 262144, 1048576 (quick: 32768). Beside it, on the same GPU, the dense PyTorch
    step a researcher would write: the N×N Gram matrix, the closed-form erf kernel, F = K c and
    the gradient by autograd (backend ``torch dense``), at every N where it fits in memory; an
    out-of-memory error is logged and the ratio left null. Targets: ≥ 3e11 pairs/s at N = 262144,
    ≥ 20× dense PyTorch at N = 32768, and N = 10⁶ without running out of memory.
``mc_step`` (float32, N = 10⁶, d = 100, M = 10⁴; quick: N = 10⁵)
    One resident Monte Carlo velocity evaluation (forward, residual, backward, assembly). The
    record carries ``two_gemm_seconds``: the time of the two matrix products of the step alone,
    Z = X Wᵀ and G = Zᵀ X on cuBLAS (through torch, else CuPy; particle chunks of 65536 so that
    Z fits), and ``ratio_vs_two_gemms`` = t / that. Target: ≤ 1.5.
"""
from __future__ import annotations

import numpy as np

__all__ = ["gpu_rows"]


def _torch_dense_pairwise(torch, w, c):  # pragma: no cover - needs a GPU and torch
    """The dense reference: returns a closure doing one F, G evaluation (N×N matrices)."""
    dev = torch.device("cuda")
    W0 = torch.as_tensor(w, device=dev)
    cc = torch.as_tensor(c, device=dev)
    two_pi = 2.0 / np.pi

    def call():
        W = W0.detach().requires_grad_(True)
        q = (W * W).sum(1)
        C = W @ W.T
        P = (1 + q)[:, None] * (1 + q)[None, :]
        K = two_pi * torch.asin(torch.clamp(C / torch.sqrt(P), -1, 1))
        F = K @ cc
        (G,) = torch.autograd.grad(0.5 * (cc * F).sum(), W)
        torch.cuda.synchronize()
        return F, G

    return call


def _two_gemms(torch, x, w, chunk=65536):  # pragma: no cover - needs a GPU
    """Closure timing Z = X Wᵀ and G = Zᵀ X over particle chunks on cuBLAS, or None."""
    if torch is not None:
        dev = torch.device("cuda")
        X = torch.as_tensor(x, device=dev)
        W = torch.as_tensor(w, device=dev)
        G = torch.empty_like(W)

        def call():
            for lo in range(0, W.shape[0], chunk):
                Z = X @ W[lo:lo + chunk].T
                torch.matmul(Z.T, X, out=G[lo:lo + chunk])
            torch.cuda.synchronize()
        return call
    try:
        import cupy as cp
    except Exception:
        return None
    X = cp.asarray(x)
    W = cp.asarray(w)
    G = cp.empty_like(W)

    def call():
        for lo in range(0, W.shape[0], chunk):
            Z = X @ W[lo:lo + chunk].T
            cp.matmul(Z.T, X, out=G[lo:lo + chunk])
        cp.cuda.Device().synchronize()
    return call


def gpu_rows(be, torch=None, quick=False, sizes=None, mc_size=None, repeats=3, log=print, peak=None):
    """Records (the suite's format) of the GPU workloads on the cuda backend ``be``.

    ``sizes`` (pairwise N list) and ``mc_size`` ((N, d, M)) override the defaults (the tests use
    tiny ones in the CUDA simulator). ``torch`` is the torch module when it is importable and
    sees a GPU, else None. ``peak``: the float32 calibration GEMM's flop rate on this GPU.
    """
    from .suite import _cuda_calls, _median_time, _row

    if sizes is None:
        sizes = [32768] if quick else [32768, 262144, 1048576]
    if mc_size is None:
        mc_size = (10**5 if quick else 10**6, 100, 10**4)
    rows = []
    rng = np.random.default_rng(7)
    d = 20
    dt = np.float32
    for N in sizes:
        w = (rng.standard_normal((N, d)) / np.sqrt(d)).astype(dt)
        c = (rng.standard_normal(N) / N).astype(dt)
        t = _median_time(_cuda_calls(be, "pairwise_erf", w, c), repeats)
        t_torch = None
        if torch is not None:  # pragma: no cover - needs a GPU and torch
            try:
                t_torch = _median_time(_torch_dense_pairwise(torch, w, c), repeats)
            except torch.cuda.OutOfMemoryError:
                log(f"pairwise_erf N={N}: dense PyTorch ran out of GPU memory")
                torch.cuda.empty_cache()
        flops = N * N * (4 * d + 40)
        rows.append(_row("pairwise_erf", "cuda", dt, N, d, N, None, t, N * N / t, "pairs/s",
                         None, t_torch, flops, peak))
        if t_torch is not None:  # pragma: no cover
            rows.append(_row("pairwise_erf", "torch dense", dt, N, d, N, None, t_torch,
                             N * N / t_torch, "pairs/s", None, t_torch, flops, peak))
    N, dm, M = mc_size
    x = rng.standard_normal((M, dm)).astype(dt)
    w = (rng.standard_normal((N, dm)) / np.sqrt(dm)).astype(dt)
    a = rng.standard_normal(N).astype(dt)
    y = rng.standard_normal(M).astype(dt)
    t = _median_time(_cuda_calls(be, "mc_step", x, w, a, y), repeats)
    gemms = None if be.simulator else _two_gemms(torch, x, w)
    t_gemm = _median_time(gemms, repeats) if gemms is not None else None
    flops = 6.0 * N * M * dm + 80.0 * N * M
    row = _row("mc_step", "cuda", dt, N, dm, M, None, t, N * M / t, "particle*samples/s",
               None, None, flops, peak)
    row["two_gemm_seconds"] = t_gemm
    row["ratio_vs_two_gemms"] = None if t_gemm is None else t / t_gemm
    rows.append(row)
    if t_gemm is not None:  # pragma: no cover
        log(f"mc_step N={N} d={dm} M={M}: {t:.3g} s = {t / t_gemm:.2f}x its two GEMMs ({t_gemm:.3g} s)")
    return rows


def torch_on_gpu():
    """The torch module when it is importable and sees a CUDA GPU, else None."""
    try:
        import torch
    except Exception:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # pragma: no cover
        return None

