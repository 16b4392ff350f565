"""Fused fast paths that know a model's column layout, registered per (backend, model kind, operation).

Backends compute expectations only (pairwise sums, Monte Carlo forward and backward passes, each
with a seed axis) and know nothing of a model's columns. A kernel that goes further for one
model — numba's per-seed Monte Carlo kernel writing the two-layer velocity rows
(``velocity_rows``), the CUDA flow keeping two-layer particles resident on the GPU
(``resident``) — is registered here for that model kind explicitly; any other model takes the
generic path (the product says so once in its log).
"""
from __future__ import annotations

__all__ = ["FUSED", "register_fused", "fused_for"]

#: registered (backend name, model kind, operation) triples
FUSED: set = set()


def register_fused(backend_name: str, model_kind: str, op: str):
    """Declare that backend ``backend_name`` has a fused ``op`` for models of kind ``model_kind``."""
    FUSED.add((backend_name, model_kind, op))


def fused_for(backend, model, op: str) -> bool:
    """Whether ``backend`` (an instance with a ``name``) has a fused ``op`` registered for ``model``'s kind."""
    return (getattr(backend, "name", ""), getattr(model, "kind", ""), op) in FUSED


# the numba per-seed Monte Carlo kernel writes the two-layer velocity rows [ka g^a, kw a g^w, kb a g^b]
register_fused("numba", "two_layer", "velocity_rows")
# the CUDA resident flow (meanfield_solvers.particles.backends.cuda_flow.CudaFlow) steps two-layer particles on the GPU
register_fused("cuda", "two_layer", "resident")
