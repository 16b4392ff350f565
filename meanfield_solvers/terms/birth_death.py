r"""Stochastic birth–death jumps of equal-weight particles at fixed N (Rotskoff–Jelassi–Bruna–
Vanden-Eijnden 2019, "RJBV"): the particle version of the Fisher–Rao part of WFR dynamics.

Where :class:`~meanfield_solvers.terms.reaction.Reaction` changes the masses of weighted particles,
:class:`BirthDeath` keeps every mass at 1/N and changes *how many copies* of each position there
are. It is a term of kind ``"jump"``, integrated by
``get_integrator("birth_death", transport=...)`` (transport over h, then one jump step).

One jump step of size h (per system, i.e. per index of the leading axes)
------------------------------------------------------------------------
Ψᵢ = Ψ(θᵢ; μ) from the model's first variation, μ = (1/N) Σ δ_θᵢ, and a centre c (Ψ̄ = mean of the
Ψᵢ by default, ``centred=True``; 0 with ``centred=False``, RJBV's raw rates, which the population
control re-centres). Draw uᵢ ~ U(0, 1) independently and set pᵢ = κh|Ψᵢ − c|:

1. *reaction*: particle i is **killed** if Ψᵢ > c and uᵢ < pᵢ, **cloned** (a copy with the same θ) if
   Ψᵢ < c and uᵢ < pᵢ. A pᵢ > 1 is a probability clipped to 1: counted (``JumpCounts.clipped``) and
   warned about, since the step then under-represents the reaction.
2. *population control*, back to exactly N particles:

   * **scheme 1** (uniform): the N' = N − #killed + #cloned particles are brought back to N by
     N − N' clones of uniformly chosen particles (with replacement) or N' − N kills of uniformly
     chosen distinct particles, chosen among the N' (new clones included);
   * **scheme 2** (prior): every killed particle is replaced by a draw from a full-support prior
     μ_b (``prior(rng, n)``, e.g. the model's ``draw``), with the columns ``zero_on_birth`` set to
     zero (RJBV: the output weight, so a birth leaves f unchanged); each clone then removes one
     uniformly chosen particle among the N + #cloned (newborns and clones included).

   A system in which every particle is killed is refused (:class:`PopulationDiedOut`, naming the
   step): that needs Ψᵢ > c everywhere, impossible when centred, and a sign that κh is far too
   large otherwise.

Particles that are neither killed nor removed keep their rows; new particles (clones, births) fill
the vacated rows in increasing order. ``state.parent`` records, for every row, which particle of
the initial population it descends from (a clone copies its source's entry; a prior birth gets
−1), for coupling analyses; ``state.jumps`` accumulates the :class:`~meanfield_solvers.state.JumpCounts`.
Randomness comes from the state's stream: one Generator draws all systems' uniforms at once and
then each system's control choices in order; a tuple of Generators (one per index of the first,
seed, axis) gives each seed its own draws, so a seed's path is bitwise the same whatever runs
beside it.

Expected change in one step (derived; tested in tests/test_birth_death.py)
--------------------------------------------------------------------------
Write φᵢ = φ(θᵢ), μ(g) = (1/N) Σ gᵢ, pᵢ⁻ = κh(Ψᵢ − c)₊ ∧ 1, pᵢ⁺ = κh(c − Ψᵢ)₊ ∧ 1, ξᵢ ∈ {−1, 0, +1}
the net reaction change of particle i (E ξᵢ = pᵢ⁺ − pᵢ⁻, vᵢ = Var ξᵢ = pᵢ⁺ + pᵢ⁻ − (pᵢ⁺ − pᵢ⁻)²).

*Scheme 1.* After the reaction the population holds N' = Σ(1 + ξᵢ) particles with sum
S' = Σ(1 + ξᵢ)φᵢ. A uniform clone adds, a uniform kill removes, S'/N' in expectation, so the control
gives E[Σφ | reaction] = S'·N/N' exactly and E[μ_new(φ)] = E[S'/N']. Expanding the ratio about its
mean (A = S'/N, B = N'/N − 1 = P + β, P = μ(p⁺ − p⁻), Cov(A, β) = μ(φv)/N, Var β = μ(v)/N):

    E[μ_new(φ)] = Ā/(1 + P) − μ(φv)/(N(1 + P)²) + Ā μ(v)/(N(1 + P)³) + O(κh/N²),
    Ā = μ(φ) + μ((p⁺ − p⁻)φ).

Centred and unclipped, p⁺ − p⁻ = −κh(Ψ − Ψ̄) so P = 0 and

    E[Δμ(φ)] = −κh Cov_μ(φ, Ψ) − (1/N) Cov_μ(φ, v) + O(κh/N²):

the Fisher–Rao reaction −κh μ((Ψ − Ψ̄)φ), plus an O(κh/N) bias from the random population size.

*Scheme 2.* Births replace kills in place (N unchanged); the #cloned = Σ ηᵢ (ηᵢ ~ Bernoulli(pᵢ⁺))
surplus is removed uniformly among N + #cloned: E[Σφ | reaction] = S'·N/(N + #cloned), with
S' = Σφ − Σ_killed φ + Σ_births φ + Σ_cloned φ. The same expansion, now with P = μ(p⁺),
v = p⁺(1 − p⁺) and Ā = μ(φ) − μ(p⁻φ) + μ(p⁻) μ_b(φ) + μ(p⁺φ), gives the same formula. To first
order in κh: E[Δμ(φ)] = −κh Cov_μ(φ, Ψ) + κh D(μ)(μ_b(φ) − μ(φ)) + O(1/N), D(μ) = μ((Ψ − c)₊).

Mean-field limits (derived)
---------------------------
As h → 0 at most one reaction event happens per step and the control answers it at once, so the
jump part becomes a Moran-type process: at rate κ(Ψᵢ − c)₊ particle i dies and (scheme 1) a
uniformly chosen particle is cloned, or (scheme 2) a prior draw takes its place; at rate
κ(c − Ψᵢ)₊ particle i is cloned and a uniformly chosen particle dies. Each event moves μ(φ) by
O(1/N) at a total rate O(N), so the quadratic variation is O(1/N) and as N → ∞ μ(φ) follows its
drift. Scheme 1: κ Σᵢ[(Ψᵢ − c)₊(μ(φ) − φᵢ) + (c − Ψᵢ)₊(φᵢ − μ(φ))]/N = −κ μ((Ψ − c)(φ − μ(φ)))
= −κ Cov_μ(φ, Ψ), whatever c; with the transport this is **balanced WFR**

    ∂_t μ = ∇·(μ Λ∇Ψ) − κ μ (Ψ − ∫Ψ dμ),

the limit of the weighted particles dωᵢ/dt = −κωᵢ(Ψᵢ − Ψ̄) (:class:`~.reaction.Reaction` with
``conserve_mass``). Scheme 2, with D₊ = μ((Ψ − c)₊), D₋ = μ((c − Ψ)₊), D₊ − D₋ = Ψ̄ − c:
κ[D₊ μ_b(φ) − μ((Ψ − c)₊φ) + μ((c − Ψ)₊φ) − D₋ μ(φ)] = −κ Cov_μ(φ, Ψ) + κ D₊ (μ_b(φ) − μ(φ)), i.e.

    ∂_t μ = ∇·(μ Λ∇Ψ) − κ μ (Ψ − ∫Ψ dμ) + κ D(μ) (μ_b − μ),   D(μ) = ∫(Ψ − c)₊ dμ,

balanced WFR plus a mass-conserving source from the prior at the death rate (μ_b is the law of a
birth, zero output weight included). The centre c now matters: it sets the birth rate D.

Floating population (``population="float"``)
--------------------------------------------
Without population control the number of particles changes: every particle carries the unit mass
m₀ = 1/N₀ (N₀ the initial population), μ = m₀ Σ_{alive} δ_θᵢ, so the total mass n·m₀ floats with the
population size n. The particles live in K ≥ N₀ *slots* of a fixed-shape state: a slot holds a
particle (mass m₀) or is empty (mass 0; its position is kept, a zero-mass probe that affects
nothing). One step: with Ψᵢ from the weighted μ, centre c = Σ mⱼΨⱼ / Σ mⱼ (``centred``) or 0, and
pᵢ = κh|Ψᵢ − c| for the occupied slots, particle i is killed (its slot emptied) if Ψᵢ > c and
uᵢ < pᵢ, cloned into the lowest empty slot (clones in increasing order of their source) if Ψᵢ < c
and uᵢ < pᵢ. More clones than empty slots is refused (:class:`PopulationOverflow`, naming the step:
raise the capacity K), every particle killed likewise (:class:`PopulationDiedOut`). One draw per
step: K uniforms per system.

With no control the expected change is exact (unclipped): for any φ,

    E[Δμ(φ)] = m₀ Σᵢ (pᵢ⁺ − pᵢ⁻) φᵢ = −κh μ((Ψ − c) φ),
    Var[Δμ(φ)] = m₀² Σᵢ vᵢ φᵢ² = O(κh m₀),

so as N₀ → ∞ μ follows ∂_t μ = ∇·(μ Λ∇Ψ) − κ μ (Ψ − c). Uncentred (c = 0) this is the
**unbalanced WFR** flow of the weighted particles dωᵢ/dt = −κωᵢΨᵢ (:class:`~.reaction.Reaction`
without ``conserve_mass``): the total mass obeys d|μ|/dt = −κ μ(Ψ). Centred, it is balanced WFR
with a total mass that is a martingale (E Δ|μ| = 0) wandering by O(√(κt/N₀)).

Why scheme 2 replaces each kill rather than refilling the net deficit: with centred rates the net
deficit max(0, #killed − #cloned) is a fluctuation, ≈ #killed when the step holds few events but
≈ √(κhN μ|Ψ − Ψ̄|/π) when it holds many, so its source term would depend on Nh and vanish as
N → ∞ at fixed h. Replacing each kill gives a source with a limit.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Optional, Sequence, Union

import numpy as np

from ..state import DynamicsFailure, JumpCounts
from .base import Term

__all__ = ["BirthDeath", "PopulationDiedOut", "PopulationOverflow"]


class PopulationDiedOut(DynamicsFailure):
    """Every particle of a system was killed in one birth–death step (attributes ``step``, ``system``)."""

    def __init__(self, message, step, system):
        super().__init__(message)
        self.step = step
        self.system = system


class PopulationOverflow(DynamicsFailure):
    """A floating population outgrew its slots in one birth–death step (attributes ``step``, ``system``)."""

    def __init__(self, message, step, system):
        super().__init__(message)
        self.step = step
        self.system = system


class BirthDeath(Term):
    r"""Birth–death jumps of equal-weight particles at fixed N (see the module docstring).

    Parameters
    ----------
    potential : callable ``(theta, mass) -> ndarray``
        The first variation :math:`\Psi(\theta_i;\mu)` of every particle, shape (..., N), for
        ``theta`` (..., N, p) and ``mass`` None (uniform 1/N) — e.g. ``model.first_variation``
        over the data (:meth:`from_model`).
    rate : float
        κ ≥ 0, in 1/time. κ = 0 jumps nothing (positions bitwise kept), but the step still draws
        its variates, so the stream advances the same way at every κ.
    scheme : 1 or 2
        Population control: 1, uniform clones/kills of the population; 2, births from ``prior``.
    prior : callable ``(rng, n) -> (n, p) array``, scheme 2 only
        Draws n iid particles from the full-support prior μ_b (a model's ``draw`` fits, without
        ``antithetic``, whose rows come in pairs). Called once per step and generator, for all
        its systems' N slots; the killed rows take their slots' draws.
    zero_on_birth : int, slice or sequence of int, scheme 2 only
        Columns set to zero in every birth (two-layer network: ``0`` or ``model.groups["a"]``, the
        output weight, so that a birth leaves f unchanged).
    centred : bool
        Rates from Ψᵢ − Ψ̄ (default) or from the raw Ψᵢ (RJBV's notebook; the control re-centres
        in scheme 1; in scheme 2 the centre sets the prior's birth rate).
    population : {"fixed", "float"}
        ``fixed`` (default): the population is restored to N every step by ``scheme``. ``float``:
        no control; the state's masses (m₀ in occupied slots, 0 in empty ones) carry the population
        (module docstring); ``scheme`` must be 1 and there is no prior.
    """

    kind = "jump"

    def __init__(self, potential: Callable, rate: float, scheme: int = 1, prior: Optional[Callable] = None,
                 zero_on_birth: Union[None, int, slice, Sequence[int]] = None, centred: bool = True,
                 population: str = "fixed"):
        rate = float(rate)
        if population not in ("fixed", "float"):
            raise ValueError(f"birth-death population must be 'fixed' (restored to N every step) or 'float' "
                             f"(no population control, masses in slots), got {population!r}")
        if population == "float" and (scheme != 1 or prior is not None):
            raise ValueError("a floating birth-death population has no population control: births from a "
                             "prior (scheme 2) belong to population='fixed'")
        if not (rate >= 0.0 and math.isfinite(rate)):
            raise ValueError(f"birth-death rate kappa must be finite and >= 0, got {rate}")
        if scheme not in (1, 2):
            raise ValueError(f"birth-death scheme must be 1 (uniform population control) or 2 (births "
                             f"from a prior), got {scheme!r}")
        if scheme == 2 and not callable(prior):
            raise ValueError("birth-death scheme 2 needs prior=callable(rng, n) -> (n, p) particles, "
                             "e.g. the model's draw")
        if scheme == 1 and (prior is not None or zero_on_birth is not None):
            raise ValueError("prior and zero_on_birth belong to scheme 2 (births from a prior); "
                             "scheme 1 restores N by uniform clones and kills")
        self.potential = potential
        self.rate = rate
        self.scheme = scheme
        self.prior = prior
        self.zero_on_birth = zero_on_birth
        self.centred = bool(centred)
        self.population = population

    @classmethod
    def from_model(cls, model, backend, data, rate, **options) -> "BirthDeath":
        """The jumps driven by ``model.first_variation(backend, theta, data)`` (Ψ of R/α² for the
        two-layer network, the same Ψ as the transport's velocity −Λ∇Ψ)."""
        def potential(theta, mass):
            return model.first_variation(backend, theta, data, mass=mass)

        potential.__name__ = f"{getattr(model, 'kind', type(model).__name__)}_first_variation"
        return cls(potential, rate, **options)

    # ------------------------------------------------------------------ the step
    def jump(self, state, dt: float):
        """The state after one jump step of size ``dt`` (positions, ``parent`` and ``jumps`` new
        arrays; the stream advanced; the step count left alone, as for every ``advance``).

        Vectorised over the systems. Every system draws the same numbers of variates whatever
        happens (N event uniforms, 2N selection keys, N pick uniforms, and N prior particles in
        scheme 2), so the stream advances identically at every κ and outcome.
        """
        theta, rng = state.theta, state.rng
        if rng is None:
            raise ValueError("a BirthDeath term needs a random stream: build the ParticleState with "
                             "rng=np.random.default_rng(seed), or a tuple of generators, one per seed")
        if self.population == "float":
            return self._jump_float(state, dt)
        mass = state.mass
        if mass is not None and np.any(mass != mass[..., :1]):
            raise ValueError("birth-death jumps act on equal-weight particles (mass None or uniform "
                             "per system); weighted particles react through a Reaction term instead")
        N, p = theta.shape[-2], theta.shape[-1]
        batch = theta.shape[:-2]
        S = int(np.prod(batch, dtype=np.int64))
        step_no = state.step + 1
        psi = self._psi(theta, mass, None, step_no)
        u, keys, picks, born = self._draws(rng, batch, N, p, theta.dtype)

        # 1. reaction events
        dev = psi - psi.mean(axis=-1, keepdims=True) if self.centred else psi
        prob = (self.rate * dt) * np.abs(dev)
        hit = u < prob  # a clipped probability (> 1) always hits
        kill = hit & (dev > 0)
        clone = hit & (dev < 0)
        nk, nc = kill.sum(axis=-1), clone.sum(axis=-1)
        dead = np.flatnonzero(nk == N)
        if dead.size:
            s = int(dead[0])
            raise PopulationDiedOut(
                f"birth-death step {step_no}: every one of the N = {N} particles of system "
                f"{self._where(s, batch)} was killed (max kappa*h*|Psi - c| = {prob[s].max():.3g}, "
                f"c = {'mean Psi' if self.centred else '0'}); the population would die out: reduce "
                f"kappa*h{'' if self.centred else ' or centre the rates (centred=True)'}",
                step=step_no, system=self._where(s, batch))

        # 2. population control. Slots 0..N-1: the rows after the reaction (scheme 1: survivors;
        # scheme 2: survivors and, in the killed rows, newborns); slots N..2N-1: clone j of row j.
        th = theta.reshape(S, N, p)
        par = np.asarray(state.lineage(), dtype=np.int64).reshape(S, N)
        if self.scheme == 1:
            base, base_par = th, par
            valid = np.concatenate([~kill, clone], axis=-1)
            n1 = N - nk + nc
            n_remove = np.maximum(n1 - N, 0)
            n_dup = np.maximum(N - n1, 0)
        else:
            if self.zero_on_birth is not None:
                born[..., np.arange(p)[self.zero_on_birth]] = 0
            base = np.where(kill[..., None], born, th)
            base_par = np.where(kill, -1, par)
            valid = np.concatenate([np.ones_like(kill), clone], axis=-1)
            n1 = N + nc
            n_remove = nc
            n_dup = np.zeros_like(nc)
        removed = _uniform_subset(keys, valid, n_remove)
        alive = valid & ~removed
        stay = alive[:, :N]
        # the new particles: surviving clones, then (scheme 1, deficit) uniform picks, with
        # replacement, among the valid slots (survivors and clones)
        order_valid = np.argsort(~valid, axis=-1, kind="stable")
        k = np.minimum((picks * n1[:, None]).astype(np.int64), n1[:, None] - 1)
        pick_rows = np.take_along_axis(order_valid, k, axis=-1) % N
        src_row = np.concatenate([np.broadcast_to(np.arange(N), (S, N)), pick_rows], axis=-1)
        src_ok = np.concatenate([alive[:, N:], np.arange(N) < n_dup[:, None]], axis=-1)
        n_new = src_ok.sum(axis=-1)
        vacant = np.argsort(stay, axis=-1, kind="stable")  # the rows to refill first, increasing
        n_vac = N - stay.sum(axis=-1)
        if not np.array_equal(n_new, n_vac):  # pragma: no cover - a bookkeeping bug
            raise AssertionError(f"birth-death bookkeeping: {n_new} new particles for {n_vac} vacant rows")
        src = np.take_along_axis(src_row, np.argsort(~src_ok, axis=-1, kind="stable")[:, :N], axis=-1)
        fill = np.arange(N) < n_vac[:, None]
        sys_idx = np.broadcast_to(np.arange(S)[:, None], (S, N))[fill]
        rows, srcs = vacant[fill], src[fill]
        # (scheme 2's base is already a new array; the right-hand sides are gathered before writing)
        new_theta = base.copy() if base is th else base
        new_parent = base_par.copy() if base_par is par else base_par
        new_theta[sys_idx, rows] = base[sys_idx, srcs]
        new_parent[sys_idx, rows] = base_par[sys_idx, srcs]

        counts = _tally(state, batch, prob, nk, nc, n_remove, n_dup, nk if self.scheme == 2 else np.zeros_like(nk))
        return state.replace(theta=new_theta.reshape(theta.shape), parent=new_parent.reshape(batch + (N,)),
                             jumps=counts)

    def _jump_float(self, state, dt: float):
        """One step of the floating population (module docstring, "Floating population")."""
        theta, mass = state.theta, state.mass
        if mass is None:
            raise ValueError("a floating birth-death population lives in slots with masses: build the state "
                             "with mass = 1/N0 in the occupied slots and 0 in the empty ones")
        K, p = theta.shape[-2], theta.shape[-1]
        batch = theta.shape[:-2]
        S = int(np.prod(batch, dtype=np.int64))
        step_no = state.step + 1
        m = np.asarray(mass, dtype=np.float64).reshape(S, K)
        occ = m > 0
        m0 = m.max(axis=-1)
        if np.any(occ & (m != m0[:, None])):
            raise ValueError("a floating birth-death population needs equal masses in its occupied slots "
                             "(m0 = 1/N0 each); weighted particles react through a Reaction term instead")
        psi = self._psi(theta, mass, occ, step_no)
        gens = state.rng if isinstance(state.rng, tuple) else (state.rng,)
        per = S // len(gens)
        u = np.empty((S, K))
        for g, gen in enumerate(gens):
            gen.random(out=u[g * per:(g + 1) * per])
        c = (np.sum(m * psi, axis=-1) / np.sum(m, axis=-1))[:, None] if self.centred else 0.0
        dev = psi - c
        prob = np.where(occ, (self.rate * dt) * np.abs(dev), 0.0)
        hit = occ & (u < prob)
        kill, clone = hit & (dev > 0), hit & (dev < 0)
        nk, nc = kill.sum(axis=-1), clone.sum(axis=-1)
        n_occ = occ.sum(axis=-1)
        dead = np.flatnonzero(nk == n_occ)
        if dead.size:
            s = int(dead[0])
            raise PopulationDiedOut(
                f"birth-death step {step_no}: every one of the {int(n_occ[s])} particles of system "
                f"{self._where(s, batch)} was killed (max kappa*h*|Psi - c| = {prob[s].max():.3g}); the "
                f"floating population died out: reduce kappa*h", step=step_no, system=self._where(s, batch))
        new_occ = occ & ~kill
        n_free = K - new_occ.sum(axis=-1)
        over = np.flatnonzero(nc > n_free)
        if over.size:
            s = int(over[0])
            raise PopulationOverflow(
                f"birth-death step {step_no}: the floating population of system {self._where(s, batch)} "
                f"would grow to {int(new_occ[s].sum() + nc[s])} particles, more than its {K} slots "
                f"({K * m0[s]:.3g} of initial mass): raise the capacity", step=step_no,
                system=self._where(s, batch))
        th = theta.reshape(S, K, p)
        par = np.asarray(state.lineage(), dtype=np.int64).reshape(S, K)
        new_theta, new_parent = th.copy(), par.copy()
        new_mass = np.where(new_occ, m, 0.0)
        # clone j (in increasing j) goes to the j-th lowest empty slot
        src = np.argsort(~clone, axis=-1, kind="stable")
        dst = np.argsort(new_occ, axis=-1, kind="stable")
        fill = np.arange(K) < nc[:, None]
        sys_idx = np.broadcast_to(np.arange(S)[:, None], (S, K))[fill]
        srcs, dsts = src[fill], dst[fill]
        new_theta[sys_idx, dsts] = th[sys_idx, srcs]
        new_parent[sys_idx, dsts] = par[sys_idx, srcs]
        new_mass[sys_idx, dsts] = m0[sys_idx]
        zero = np.zeros_like(nk)
        counts = _tally(state, batch, prob, nk, nc, zero, zero, zero)
        return state.replace(theta=new_theta.reshape(theta.shape), parent=new_parent.reshape(batch + (K,)),
                             mass=new_mass.astype(np.asarray(mass).dtype, copy=False).reshape(np.shape(mass)),
                             jumps=counts)

    def _psi(self, theta, mass, occupied, step_no):
        """Ψ of every particle as float64 (S, N) over the flat systems (0 where ``occupied`` is
        False), checked for shape and finiteness."""
        batch, n = theta.shape[:-2], theta.shape[-2]
        psi = np.asarray(self.potential(theta, mass))
        if psi.shape != theta.shape[:-1]:
            raise ValueError(f"BirthDeath potential must return shape theta.shape[:-1] = "
                             f"{theta.shape[:-1]} (one Psi per particle), got {psi.shape}")
        psi = psi.reshape(-1, n).astype(np.float64, copy=False)
        if occupied is not None:
            psi = np.where(occupied, psi, 0.0)
        if not np.all(np.isfinite(psi)):
            bad = int(np.flatnonzero(~np.isfinite(psi).all(axis=-1))[0])
            raise ValueError(f"birth-death step {step_no}: non-finite first variation Psi in system "
                             f"{self._where(bad, batch)}")
        return psi

    @staticmethod
    def _where(s, batch):
        """The index tuple of flat system ``s``."""
        return tuple(int(i) for i in np.unravel_index(s, batch)) if batch else ()

    def _draws(self, rng, batch, N, p, dtype):
        """The step's variates, (S, N), (S, 2N), (S, N) uniforms and (S, N, p) prior draws (scheme 2;
        else None): one draw of each from a Generator, or each generator its seed's share."""
        S = int(np.prod(batch, dtype=np.int64))
        gens = rng if isinstance(rng, tuple) else (rng,)
        per = S // len(gens)
        u, keys, picks = np.empty((S, N)), np.empty((S, 2 * N)), np.empty((S, N))
        born = np.empty((S, N, p), dtype=dtype) if self.scheme == 2 else None
        for g, gen in enumerate(gens):
            sl = slice(g * per, (g + 1) * per)
            gen.random(out=u[sl])
            gen.random(out=keys[sl])
            gen.random(out=picks[sl])
            if born is not None:
                draw = np.asarray(self.prior(gen, per * N))
                if draw.shape != (per * N, p):
                    raise ValueError(f"prior(rng, n) must return shape (n, p) = {(per * N, p)}, got {draw.shape}")
                born[sl] = draw.reshape(per, N, p)
        return u, keys, picks, born

    def remedy(self, integrator) -> str:
        return ("birth-death jumps change the particles themselves; use "
                f"get_integrator('birth_death', transport={integrator.name!r}) (transport, then jumps)")

    def __repr__(self):
        return (f"BirthDeath({getattr(self.potential, '__name__', self.potential)!s}, rate={self.rate}, "
                f"scheme={self.scheme}, centred={self.centred}, population={self.population!r})")


def _tally(state, batch, prob, killed, cloned, control_killed, control_cloned, born) -> JumpCounts:
    """The state's jump counters plus one step's events (per flat system), with one warning when a
    probability κh|Ψᵢ − c| was clipped at 1."""
    clipped = np.count_nonzero(prob > 1.0, axis=-1)
    if clipped.any():
        warnings.warn("birth-death probabilities clipped at 1 (kappa*h*|Psi - c| > 1): the step is too "
                      "large for the rate; the counts are in state.jumps.clipped", RuntimeWarning, stacklevel=4)
    counts = state.jumps if state.jumps is not None else JumpCounts.zeros(batch)
    shape = lambda x: np.asarray(x, dtype=np.int64).reshape(batch)  # noqa: E731
    return JumpCounts(
        killed=counts.killed + shape(killed), cloned=counts.cloned + shape(cloned),
        control_killed=counts.control_killed + shape(control_killed),
        control_cloned=counts.control_cloned + shape(control_cloned), born=counts.born + shape(born),
        clipped=counts.clipped + shape(clipped), clipped_steps=counts.clipped_steps + shape(clipped > 0),
        max_prob=np.maximum(counts.max_prob, prob.max(axis=-1, initial=0.0).reshape(batch)))


def _uniform_subset(keys, valid, m):
    """A uniformly random subset of ``m[s]`` of the ``valid[s]`` slots of each row, from iid U(0, 1)
    ``keys``: the m valid slots with the smallest keys (invalid slots sort last)."""
    k = np.where(valid, keys, 2.0)
    rank = np.argsort(np.argsort(k, axis=-1, kind="stable"), axis=-1, kind="stable")
    return valid & (rank < m[:, None])
