"""Limiting the BLAS thread pool around code that issues many small matrix products.

On the 2-core machines this project targets, a multi-threaded BLAS spends most of its time
synchronising its threads on skinny or small GEMMs: measured under load, one DMFT causal sweep
took 40 s with 2 threads and 1.8 s with 1, and a batched deep-network step was up to 38× slower.
The DMFT solver, the deep networks and the Numba backend's chunk loops therefore run their BLAS
calls on one thread by default, through this single helper.
"""
from __future__ import annotations

import contextlib

__all__ = ["blas_threads"]

_CONTROLLER = []


def blas_threads(n):
    """Context manager limiting BLAS to ``n`` threads (``None``: leave the pool as it is).

    The threadpoolctl controller is built once (inspecting the loaded libraries is not free) and
    reused, so the context is cheap enough to enter on every call of a hot method.
    """
    if n is None:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=int(n), user_api="blas")
