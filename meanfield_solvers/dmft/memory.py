r"""Memory estimate of a sampled DMFT solve, computed before anything large is allocated.

With ``n = (T+1) * n_pts`` rows, ``S`` samples, ``S_tan`` tangent samples processed in chunks of ``c``
and ``R`` unit seeds per tangent sample (at most ``(T+1)(P + n_pts)`` for an inner layer), the peak
float64 storage is about

* noise (fixed for the whole solve): ``2(L-1) n S + 2 n_pts S``
* primal march of one layer (layers are marched one at a time): ``h, z, φ, g, u, r`` + temporaries,
  ``7 n S``; the all-samples output tangent of the last layer: ``4 n S``
* tangents of one chunk: ``2 n r c`` (histories dφ, dg of the seeds of one time, ``r = R/(T+1)``:
  the seed times are marched one after the other, each from its own time on) ``+ 2 n c``, times the
  chunks marched at once (``workers``), plus the running sums ``2 n R`` and each chunk's sums ``2 n R``.
  The automatic chunk is still sized as if all R seeds were marched at once (``auto_chunk``): a
  conservative size that keeps the chunks, hence the rounding of the sums, as before.
* order parameters: old, new and blended states, memory operators, Cholesky factors: ``(12 L + 6) n²``

The causal sweep (:mod:`meanfield_solvers.dmft.causal`) holds all layers at once and cannot chunk the tangents:
primal ``L (6 n S) + 2 n S``, tangents ``Σ_ℓ (2 n_tri + n) r_ℓ S_tan`` with ``r_ℓ = R_ℓ/(T+1)`` seeds per
time and ``n_tri = n_pts (T+1)(T+2)/2`` (lower-triangular storage, :mod:`meanfield_solvers.dmft.triangular`:
about half of the dense ``2 n R_ℓ S_tan``); it is followed by one chunked Jacobi
application, so its peak is the larger of the two.

With the randomised-probe responses (``response='probe'``, :mod:`meanfield_solvers.dmft.probes`; ``C`` =
probes × samples columns): the directions ``2 (L-1) n C`` beside the noise; the Jacobi map one layer's
dφ, dg and their past parts plus a copy of the directions, ``6 n C``; the causal sweep ``4 n C`` per
layer with seeds. Each estimator states its own term (:mod:`meanfield_solvers.dmft.responses`).

i.e. the brief's ``T × points × M × L`` floats for the samples plus the tangent part.
"""
from __future__ import annotations

from dataclasses import dataclass


__all__ = ["MemoryEstimate", "estimate_memory", "auto_chunk", "DMFTMemoryError"]

_F = 8  # bytes per float64


class DMFTMemoryError(MemoryError):
    """The estimated peak memory of a solve exceeds ``max_bytes``."""


def seeds_per_layer(n_t, n_pts, n_train, L):
    """Unit seeds of each layer l = 1..L (r-seeds on training points if l < L, u-seeds on all if l ≥ 2)."""
    return [n_t * ((n_train if l <= L - 1 else 0) + (n_pts if l >= 2 else 0)) for l in range(1, L + 1)]


def max_seeds(n_t, n_pts, n_train, L):
    """Largest number of unit seeds over the layers."""
    return max(seeds_per_layer(n_t, n_pts, n_train, L))


def auto_chunk(n, R, n_tangent, budget_bytes):
    """Largest tangent chunk (samples) whose histories fit in ``budget_bytes`` (at least 1)."""
    if R == 0:
        return max(1, n_tangent)
    per_sample = _F * (2 * n * R + 2 * n)
    return int(max(1, min(n_tangent, budget_bytes // per_sample)))


@dataclass(frozen=True)
class MemoryEstimate:
    noise: int
    primal: int
    tangents: int
    state: int
    chunk: int

    @property
    def total(self) -> int:
        return self.noise + self.primal + self.tangents + self.state

    def describe(self) -> str:
        gb = 1e9
        return (f"noise {self.noise / gb:.2f} GB + primal {self.primal / gb:.2f} GB + tangents "
                f"{self.tangents / gb:.2f} GB (chunk of {self.chunk} samples) + order parameters "
                f"{self.state / gb:.2f} GB = {self.total / gb:.2f} GB")


def estimate_memory(T, n_pts, n_train, L, n_samples, n_tangent, chunk=None, chunk_budget=512e6,
                    sweep="jacobi", workers=1, response="tangent", probes=1):
    """Peak memory (bytes) of one sampled solve; see module doc for the terms.

    ``sweep='causal'`` adds the causal sweep's all-at-once storage (the peak is the larger phase).
    ``workers`` chunks are marched at once: the automatic chunk shares ``chunk_budget`` among them,
    and the tangent term counts each worker's chunk. ``response`` names the response estimator
    (:mod:`meanfield_solvers.dmft.responses`, which states its own tangent footprint; ``'probe'`` uses
    ``probes`` directions on each of ``n_tangent`` samples, the solver passing all ``n_samples``).
    """
    from .responses import get_response_estimator

    est = get_response_estimator(response)
    n = (T + 1) * n_pts
    S = n_samples
    Rs = seeds_per_layer(T + 1, n_pts, n_train, L)
    R = max(Rs)
    workers = max(1, int(workers))
    c = auto_chunk(n, R, n_tangent, chunk_budget / workers) if chunk is None else int(min(chunk, n_tangent))
    busy = min(workers, -(-n_tangent // c))  # chunks alive at once
    noise = _F * (2 * (L - 1) * n * S + 2 * n_pts * S + S)
    primal = _F * (7 * n * S + 4 * n * S)
    # tangent term: the estimator's (the exact tangents: each chunk marches one seed time at a time,
    # histories of at most n rows and R / (T+1) seeds, plus the chunk's sums over all R seeds)
    n_t = T + 1
    tangents, c_tangents, extra = est.memory(n, n_t, n_pts, Rs, n_tangent, c, busy, probes)
    noise += extra
    state = _F * (12 * L + 6) * n * n
    if sweep == "causal":
        c_primal = _F * (6 * L * n * S + 2 * n * S)
        # exact tangents: seed-time groups store only the times at or after their seed
        # (meanfield_solvers.dmft.triangular): dφ, dg on (T+1)(T+2)/2 time rows of n_pts per group instead
        # of (T+1)^2, plus the dh of the current time of every group (one dense time row's worth)
        c_state = _F * (8 * L + 2) * n * n
        if c_primal + c_tangents + c_state > primal + tangents + state:
            primal, tangents, state = c_primal, c_tangents, c_state
            if chunk is None and R and est.subset_sweep:
                # the certifying Jacobi map may use larger chunks, up to the memory the sweep's tangents
                # already took (its dense chunks are (T+1)^2 rows, the sweep's triangle about half that:
                # all n_tangent in one chunk would exceed the sweep, issue 19)
                c = max(c, auto_chunk(n, R, n_tangent, c_tangents / (workers + 1)))
    elif sweep != "jacobi":
        raise ValueError(f"unknown sweep {sweep!r}")
    return MemoryEstimate(noise, primal, tangents, state, c)


def check_memory(est: MemoryEstimate, max_bytes):
    """Raise :class:`DMFTMemoryError` naming the settings to change if ``est.total > max_bytes``."""
    if max_bytes is not None and est.total > max_bytes:
        raise DMFTMemoryError(
            f"estimated peak memory {est.describe()} exceeds max_bytes={max_bytes:.3g}. "
            "Reduce n_samples (noise and primal scale with T*points*n_samples*L), tangent_chunk or "
            "n_tangent (tangents scale with T^2*points^2*chunk, times the chunks marched at once, "
            "workers; sweep='jacobi' processes tangents in chunks, sweep='causal' holds all "
            "n_tangent at once), T or the number of points "
            "(order parameters scale with (T*points)^2*L), or raise max_bytes."
        )
