"""Provenance of a result: package and library versions, git commit, command line, threads."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys

import numpy as np

__all__ = ["versions", "provenance", "host_cpu", "command_line"]


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


@functools.lru_cache(maxsize=1)
def host_cpu() -> str:
    """The host CPU's model name (from /proc/cpuinfo on Linux, else the platform's word for it)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line() -> str:
    """The command as the user typed it: ``meanfield run ...`` or ``python -m meanfield run ...``
    rather than the path of an entry-point script."""
    argv = list(sys.argv) or [""]
    prog = os.path.basename(argv[0])
    if prog == "__main__.py":
        argv[0] = f"python -m {os.path.basename(os.path.dirname(os.path.abspath(argv[0])))}"
    elif prog == "meanfield":
        argv[0] = "meanfield"
    return " ".join(argv)


def provenance(backend: str | None = None) -> dict:
    """What produced a result: package version, git commit (when available), command line,
    backend, thread counts (numba, BLAS), host CPU and core count, the time it finished (UTC) and
    library versions."""
    import datetime
    import numba

    from .. import __version__

    try:
        from threadpoolctl import threadpool_info

        blas = sorted({i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"})
    except Exception:  # noqa: BLE001 - provenance is best effort, never fails a run
        blas = []
    return {"package": "meanfield-dynamics", "version": __version__, "git_commit": _git_commit(),
            "command_line": command_line(), "backend": backend,
            "numba_threads": int(numba.get_num_threads()), "blas_threads": blas,
            "host_cpu": host_cpu(), "cpu_count": os.cpu_count(),
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **versions()}
