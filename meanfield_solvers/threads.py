"""Limiting the BLAS thread pool around code that issues many small matrix products.

On the 2-core machines this project targets, a multi-threaded BLAS spends most of its time
synchronising its threads on skinny or small GEMMs: measured under load, one DMFT causal sweep
took 40 s with 2 threads and 1.8 s with 1, and a batched deep-network step was up to 38× slower.
The DMFT solver, the deep networks and the Numba backend's chunk loops therefore run their BLAS
calls on one thread by default, through this single helper.
"""
from __future__ import annotations

import contextlib

__all__ = ["blas_threads", "blas_threads_for", "SMALL_GEMM_FLOPS"]

#: below this many floating-point operations in the largest product of a step, a second BLAS thread
#: costs more in synchronisation than it saves: the two-layer quickstart (512 particles, products of
#: ~1e7 flops) ran 5.9 s with one thread and 13.5 s with two on the shared 2-core machine at load 2.5
#: (the limit side; 2.5 against 3.6 s for its networks), and a 1e8-flop product takes ~10 ms on one core
SMALL_GEMM_FLOPS = 1e8

_CONTROLLER = []
# the limit this module has in force (None: none); BLAS pools are process-wide, so is this
_ACTIVE = [None]


@contextlib.contextmanager
def _limit(n):
    prev = _ACTIVE[0]
    with _CONTROLLER[0].limit(limits=n, user_api="blas"):
        _ACTIVE[0] = n
        try:
            yield
        finally:
            _ACTIVE[0] = prev


def blas_threads(n):
    """Context manager limiting BLAS to ``n`` threads (``None``: leave the pool as it is).

    The threadpoolctl controller is built once (inspecting the loaded libraries is not free) and
    reused. Entering a limit costs ~10 µs, so a context nested inside one with the same ``n``
    (a hot kernel called from an already limited method) is a no-op.
    """
    if n is None or _ACTIVE[0] == int(n):
        return contextlib.nullcontext()
    if not _CONTROLLER:
        # numba's np.dot calls scipy's BLAS (a library of its own, beside numpy's): load it first
        # so that the controller, which sees only the libraries loaded when it is built, limits it
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _limit(int(n))


def blas_threads_for(gemm_flops):
    """:func:`blas_threads` (1) for a computation whose largest matrix product has fewer than
    :data:`SMALL_GEMM_FLOPS` floating-point operations; the pool as it is (a no-op) otherwise."""
    return blas_threads(1 if gemm_flops < SMALL_GEMM_FLOPS else None)
