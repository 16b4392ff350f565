r"""Keep freed memory in the process heap (glibc), so that numpy temporaries do not page-fault.

Why
---
glibc's allocator returns the top of the heap to the kernel once more than ``M_TRIM_THRESHOLD``
bytes are free there, and serves blocks above ``M_MMAP_THRESHOLD`` with fresh ``mmap`` calls;
both thresholds adapt to the sizes the program frees. A numpy expression like ``1.0 - t * t``
on arrays of 32k–1M doubles (the per-step temporaries of the ensembles and solvers here) then
gets its memory back from the kernel on *every* evaluation, zero-filled page by page. Measured
on the 2-core development machine (glibc 2.36, numpy 2.4): ``1.0 - u*u`` on 32 768 doubles took
208 µs instead of 13 µs, on 10⁶ doubles 3.0 ms instead of 0.53 ms, and a batched deep-network
step (S = 16, N = 32) 2.4–2.7 ms instead of 0.93 ms — depending on the heap's history, so the
same code was fast in one process and 3× slower in the next.

:func:`retain_freed_memory` fixes both thresholds (``M_TRIM_THRESHOLD`` = 256 MiB,
``M_MMAP_THRESHOLD`` = 32 MiB, glibc's largest): blocks up to 32 MiB are recycled within the
heap, and up to 256 MiB of freed heap stays mapped. The cost is that much resident memory
after a peak. The entry points (``meanfield`` CLI, :func:`meanfield.run.run`, the benchmarks)
call it; library code does not. Set ``MEANFIELD_NO_MALLOPT=1`` to leave the allocator alone. It
does nothing on other C libraries (macOS, musl, Windows), where this pathology is not known.
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DONE = []


def retain_freed_memory(trim_bytes: int = 256 << 20, mmap_bytes: int = 32 << 20) -> bool:
    """Fix glibc's trim and mmap thresholds (see the module docstring); once per process.

    Returns True when the thresholds are (now or already) set, False where nothing was done
    (not glibc, ``MEANFIELD_NO_MALLOPT`` set, or ``mallopt`` refused).
    """
    if _DONE:
        return _DONE[0]
    ok = False
    if not os.environ.get("MEANFIELD_NO_MALLOPT") and platform.system() == "Linux" \
            and platform.libc_ver()[0] == "glibc":
        try:
            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            ok = bool(mallopt(_M_TRIM_THRESHOLD, int(trim_bytes))) and bool(
                mallopt(_M_MMAP_THRESHOLD, int(mmap_bytes)))
        except (OSError, AttributeError):
            ok = False
    _DONE.append(ok)
    return ok
