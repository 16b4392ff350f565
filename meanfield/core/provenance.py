"""Provenance of a result: package and library versions, git commit, command line, threads."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys

import numpy as np

__all__ = ["versions", "provenance"]


def versions() -> dict:
    """Versions of Python, the numerical libraries and the platform."""
    import numba
    import scipy

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "platform": platform.platform()}


@functools.lru_cache(maxsize=1)  # once per process: a scan runs many runs
def _git_commit():
    """The commit of the source tree this package runs from, with '+dirty' if modified (None outside git)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        commit = out.stdout.strip()
        st = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=5)
        return commit + ("+dirty" if st.returncode == 0 and st.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(backend: str | None = None) -> dict:
    """What produced a result: package version, git commit (when available), command line,
    backend, thread counts (numba, BLAS) and library versions."""
    import numba

    from .. import __version__

    try:
        from threadpoolctl import threadpool_info

        blas = sorted({i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"})
    except Exception:  # noqa: BLE001 - provenance is best effort, never fails a run
        blas = []
    return {"package": "meanfield-dynamics", "version": __version__, "git_commit": _git_commit(),
            "command_line": " ".join(sys.argv), "backend": backend,
            "numba_threads": int(numba.get_num_threads()), "blas_threads": blas, **versions()}
