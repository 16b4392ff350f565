"""The particle backend a run uses (``run.backend``), with the choice of ``auto`` said once."""
from __future__ import annotations

from meanfield_solvers.particles.backends import get_backend, resolve_backend

__all__ = ["choose_backend"]


def choose_backend(name, log):
    """``(name, backend instance)`` for ``run.backend``; ``auto`` logs which it chose and why."""
    if name == "auto":
        name, why = resolve_backend("auto")
        log(why)
    return name, get_backend(name)
