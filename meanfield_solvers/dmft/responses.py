r"""Estimators of the response functions :math:`R_A, R_B`, by name (a registry).

Each estimator gives the responses of one layer in the two places the sampled solver needs them:

* ``jacobi(smap, l, pm, H, Z, grid)`` — all rows at once, inside one application of the Jacobi map
  (:class:`~meanfield_solvers.dmft.sampled.SampledMap`), from the layer's primal histories ``pm``;
* ``tracker(...)`` — an object advanced step by step by the causal sweep
  (:class:`~meanfield_solvers.dmft.causal.CausalSweep`): ``sweep_h(k, Hk)``, ``sweep_z(k, Zk)``, then
  ``ra_rows(k)`` / ``rb_rows(k)`` give block row ``k``;

and states its memory footprint (``memory``, used by :mod:`~meanfield_solvers.dmft.memory` before anything
is allocated) and how many samples it uses (``samples``).

Registered:

* ``'tangent'`` — exact forward-mode tangents with unit seeds on the first ``n_tangent`` samples
  (docs/dmft.md §3.3(a); :mod:`~meanfield_solvers.dmft.march`, :mod:`~meanfield_solvers.dmft.triangular`).
  Cost ∝ (PT)³ per tangent sample; the reference.
* ``'probe'`` — one tangent per sample along ``probes`` fixed Rademacher directions, correlated with
  the directions (docs/dmft.md §3.3(c); :mod:`~meanfield_solvers.dmft.probes`). Unbiased, exactly causal,
  no inverse; cost ∝ (PT)² per sample, on all ``n_samples`` samples (``n_tangent`` is not used).
"""
from __future__ import annotations

from .march import SeedLayout, tangent_averages
from .probes import ProbeBank, ProbeTangents, probe_averages
from .triangular import TriangularTangents, triangular_rows

__all__ = ["RESPONSE_ESTIMATORS", "get_response_estimator", "TangentResponses", "ProbeResponses"]

_F = 8  # bytes per float64


class TangentResponses:
    """Exact unit-seed tangents (the reference; see module doc)."""

    name = "tangent"
    #: the causal sweep may run on a subset of the tangent samples (a warm start, 'causal_subset')
    subset_sweep = True

    def samples(self, S, n_tangent, probes=1):
        return int(min(n_tangent, S))

    def prepare(self, bank, grid, L, probes, seed):
        """Nothing to add to the noise bank."""

    def jacobi(self, smap, l, pm, H, Z, g):
        L = smap.bank.L
        seeds = SeedLayout(g.n_t, g.n_pts, g.n_train, r_seeds=l <= L - 1, u_seeds=l >= 2, one_seed=False)
        nt = smap.n_tangent
        return tangent_averages(smap.act, pm.h[:, :nt], pm.z[:, :nt], H, Z, g, seeds, smap.chunk,
                                smap.block, smap.workers)

    def tracker(self, act, pm, l, L, g, bank, n_tangent, pool, workers):
        nr, nu = (g.n_train if l <= L - 1 else 0), (g.n_pts if l >= 2 else 0)
        if not nr + nu:
            return None
        return TriangularTangents(act, pm.h[:, :n_tangent], pm.z[:, :n_tangent], nr, nu, g, pool, workers)

    def memory(self, n, n_t, n_pts, Rs, n_tangent, c, busy, probes=1):
        """``(jacobi_tangent_bytes, sweep_tangent_bytes, extra_noise_bytes)`` (memory.py module doc)."""
        R = max(Rs)
        r_t = R // n_t
        jac = _F * (busy * (2 * n * r_t * c + 2 * n * c) + 2 * n * R + 2 * busy * n * R) if R else 0
        tri = triangular_rows(n_t) * n_pts
        sweep = _F * sum((2 * tri + n) * (r // n_t) * n_tangent for r in Rs)
        return jac, sweep, 0


class ProbeResponses:
    """Randomised-probe tangents on all samples (see module doc)."""

    name = "probe"
    subset_sweep = False  # it uses all samples; a smaller sweep would not save what the tangents cost

    def samples(self, S, n_tangent, probes=1):
        return int(S)

    def prepare(self, bank, grid, L, probes, seed):
        """Attach the fixed directions of every sample to the noise bank (``bank.probes``)."""
        bank.probes = ProbeBank(grid.n, grid.n_pts, grid.n_train, L, bank.S, probes, seed)

    def _dirs(self, bank, l, L, n):
        pb = bank.probes
        return (pb.directions("r", l, n) if l <= L - 1 else None,
                pb.directions("u", l, n) if l >= 2 else None, pb.K)

    def jacobi(self, smap, l, pm, H, Z, g):
        Vr, Vu, K = self._dirs(smap.bank, l, smap.bank.L, g.n)
        return probe_averages(smap.act, pm.h, pm.z, H, Z, g, Vr, Vu, K, smap.block, smap.workers)

    def tracker(self, act, pm, l, L, g, bank, n_tangent, pool, workers):
        if L < 2:
            return None
        Vr, Vu, K = self._dirs(bank, l, L, g.n)
        return ProbeTangents(act, pm.h, pm.z, Vr, Vu, g, K, pool=pool, workers=workers)

    def memory(self, n, n_t, n_pts, Rs, n_tangent, c, busy, probes=1):
        """``(jacobi_tangent_bytes, sweep_tangent_bytes, extra_noise_bytes)``: the Jacobi map marches
        chunks of ``CHUNK`` samples, ``busy`` at once, each holding dφ, dg, their past parts and a
        copy of its directions (6 n C_chunk, C_chunk = probes * chunk columns) plus its (n, n) sums;
        the sweep every layer's dφ, dg and directions' copies (4 n C per layer with seeds, C =
        probes * S); the directions themselves live beside the white noise (one n C array per layer
        and kind, ``2 (L-1)`` in all)."""
        from .probes import CHUNK

        C = probes * n_tangent
        kinds = sum((r > 0) for r in Rs)
        chunks = -(-n_tangent // CHUNK)
        busy = min(max(1, busy), chunks)
        jac = _F * busy * (6 * n * probes * min(CHUNK, n_tangent) + 3 * n * n) if kinds else 0
        sweep = _F * 4 * n * C * kinds
        noise = _F * 2 * (len(Rs) - 1) * n * C
        return jac, sweep, noise


RESPONSE_ESTIMATORS = {e.name: e for e in (TangentResponses(), ProbeResponses())}


def get_response_estimator(name):
    """The registered estimator ``name`` (``'tangent'``, ``'probe'``); a clear error otherwise."""
    try:
        return RESPONSE_ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown response_estimator {name!r}; choose one of {sorted(RESPONSE_ESTIMATORS)} "
                         "or 'auto'") from None
