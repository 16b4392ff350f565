"""Particle backends behind one small protocol.

A backend is an object with ``name`` and the methods ``pairwise``, ``mc_forward`` and
``mc_backward`` defined (and documented) by the numpy reference,
:class:`~solvers.particles.backends.numpy_backend.NumpyBackend`. Fast backends register a
factory here and are tested against that reference.
"""
from __future__ import annotations

from .numpy_backend import NumpyBackend

__all__ = ["NumpyBackend", "get_backend", "register_backend", "BACKENDS"]

#: name -> (factory, availability probe returning (ok, reason))
BACKENDS: dict = {}


def register_backend(name, factory, probe=lambda: (True, "")):
    """Make a backend selectable by name. ``probe()`` says whether it can run here, and why not."""
    BACKENDS[name] = (factory, probe)


register_backend("numpy", NumpyBackend)


def get_backend(name: str = "numpy", **kwargs):
    """Instantiate a backend by name, with an error that says why it is unavailable."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    factory, probe = BACKENDS[name]
    ok, why = probe()
    if not ok:
        raise RuntimeError(f"backend {name!r} is not usable here: {why}")
    return factory(**kwargs)
