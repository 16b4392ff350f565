"""Particle backends behind one small protocol.

A backend is an object with ``name`` and the methods ``pairwise``, ``mc_forward`` and
``mc_backward`` defined (and documented) by the numpy reference,
:class:`~meanfield_solvers.particles.backends.numpy_backend.NumpyBackend`. Fast backends register a
factory here and are tested against that reference.

Registered: ``numpy`` (reference), ``numba`` (CPU, :mod:`.numba_backend`), ``cuda``
(numba-cuda, optional extra ``[cuda]``, :mod:`.cuda_backend`). The fast backends are imported
lazily (on first use), so ``import meanfield_solvers`` does not pay for numba's import or compilation.
``"auto"`` is resolved by :func:`resolve_backend`: CUDA when a GPU and numba-cuda are usable,
else numba.
"""
from __future__ import annotations

from .numpy_backend import NumpyBackend

__all__ = ["NumpyBackend", "get_backend", "register_backend", "resolve_backend", "BACKENDS", "register_fused",
           "fused_for", "FUSED"]

#: name -> (factory, availability probe returning (ok, reason))
BACKENDS: dict = {}


def register_backend(name, factory, probe=lambda: (True, "")):
    """Make a backend selectable by name. ``probe()`` says whether it can run here, and why not."""
    BACKENDS[name] = (factory, probe)


register_backend("numpy", NumpyBackend)

# fused fast paths that know a model (velocity rows, GPU residency) are registered in meanfield_solvers.fused
from ...fused import FUSED, fused_for, register_fused  # noqa: E402  (re-exported)


def _numba_factory(**kwargs):
    from .numba_backend import NumbaBackend

    return NumbaBackend(**kwargs)


def _numba_probe():
    try:
        import numba  # noqa: F401
    except Exception as exc:  # pragma: no cover - numba is a dependency
        return False, f"numba is not importable: {exc}"
    return True, ""


def _cuda_factory(**kwargs):
    from .cuda_backend import CudaBackend

    return CudaBackend(**kwargs)


def _cuda_probe():
    from .cuda_backend import probe

    return probe()


register_backend("numba", _numba_factory, _numba_probe)
register_backend("cuda", _cuda_factory, _cuda_probe)


def resolve_backend(name: str = "auto"):
    """Map a requested backend name to ``(backend_name, reason)``.

    ``"auto"`` becomes ``"cuda"`` when a real GPU and numba-cuda are usable (the CUDA simulator
    does not count: it is for correctness tests only), else ``"numba"``, else ``"numpy"``.
    ``reason`` is a one-line explanation meant to be printed once by the caller. Any other name
    is returned unchanged with an empty reason (:func:`get_backend` checks it).
    """
    if name != "auto":
        return name, ""
    from .cuda_backend import probe as cuda_probe

    ok, why = cuda_probe()
    if ok and "simulator" not in why:
        return "cuda", "backend auto -> cuda (a CUDA GPU and numba-cuda are usable)"
    ok_nb, why_nb = _numba_probe()
    if ok_nb:
        return "numba", f"backend auto -> numba (CUDA not used: {why or 'simulator only'})"
    return "numpy", f"backend auto -> numpy (numba unusable: {why_nb})"


def get_backend(name: str = "numpy", **kwargs):
    """Instantiate a backend by name (or ``"auto"``, see :func:`resolve_backend`), with an error
    that says why it is unavailable."""
    if name == "auto":
        name, _ = resolve_backend(name)
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    factory, probe = BACKENDS[name]
    ok, why = probe()
    if not ok:
        raise RuntimeError(f"backend {name!r} is not usable here: {why}")
    return factory(**kwargs)
