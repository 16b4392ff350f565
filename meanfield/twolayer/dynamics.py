r"""Mean-field Langevin dynamics of a particle model: the terms each side steps (``[dynamics]``).

With temperature τ = 1/β and weight decay λ, every particle (and every neuron of a finite network)
follows

.. math:: d\theta_i = -\Lambda\big[\nabla_\theta\Psi(\theta_i;\mu) + \lambda\theta_i\big]\,dt
          + \sqrt{2\tau}\,\Lambda^{1/2}\,dB_i,

Λ the model's learning-rate multipliers (:attr:`ParticleModel.lr_multipliers`). Preconditioning
the decay and the noise by the same Λ as the gradient keeps the stationary law Gibbs,
:math:`\mu^\ast\propto\exp(-\beta[\Psi(\theta;\mu^\ast)+\lambda|\theta|^2/2])` on the trained
coordinates, whatever Λ (frozen coordinates, Λ = 0, get neither drift, decay nor noise).

The noise does not scale with the width: a network step of size η adds √(2τη) Λ^{1/2} ξ per
neuron at every N, so one step is still η of mean-field time. Increments come from the state's
random streams: the limit's from the ``noise`` stream, each network's from its own
``nn_noise`` (width, seed) stream, so a seed's path does not depend on the other seeds.

With τ = λ = 0 (and ``transport_rate`` 1) the terms are the model's drift alone and every result is
bit for bit the noiseless one. ``transport_rate`` scales the transport velocity (the α of
Wasserstein–Fisher–Rao beside the reaction rate κ; α = 0 with κ > 0 is pure Fisher–Rao
reweighting; the conic particle gradient descent of Chizat (2022) for 2-homogeneous units is the
unbalanced reaction with the ratio κ/α of its radial and tangential step sizes).
"""
from __future__ import annotations

import numpy as np

from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.terms import Drift, Noise, Reaction

__all__ = ["drift", "side_terms", "langevin_terms", "active", "noisy", "reacting", "jumping", "floating",
           "initial_masses", "needs_stream", "reaction_term",
           "jump_term", "extra_terms", "side_integrator"]


def drift(model, backend, data):
    r"""The model's Wasserstein drift :math:`-\Lambda\nabla\Psi` over ``data`` as a :class:`Drift` term."""
    def velocity(theta, mass):
        return model.risk_velocity(backend, theta, data, mass=mass)[1]

    return Drift(velocity)


def side_terms(cfg, model, backend, data):
    """Everything one side steps over ``data``: the drift, with the decay and noise of ``[dynamics]``,
    and the reaction on weights or the birth-death jumps; the drift alone when nothing is asked
    (then every step is bit for bit the noiseless one)."""
    terms = langevin_terms(cfg, model, drift(model, backend, data))
    more = extra_terms(cfg, model, backend, data)
    return (terms if isinstance(terms, list) else [terms]) + more if more else terms


def active(cfg) -> bool:
    """Whether the config asks for noise, weight decay, a reaction or a transport rate other than 1."""
    d = cfg.dynamics
    return d.temperature > 0 or d.weight_decay > 0 or d.reaction_rate > 0 or d.transport_rate != 1.0


def reacting(cfg) -> bool:
    """Whether particle masses change (Wasserstein-Fisher-Rao on weights)."""
    return cfg.dynamics.reaction_rate > 0 and cfg.dynamics.reaction_scheme == "weights"


def jumping(cfg) -> bool:
    """Whether equal-weight particles are killed and cloned (stochastic birth-death)."""
    return cfg.dynamics.reaction_rate > 0 and cfg.dynamics.reaction_scheme != "weights"


def floating(cfg) -> bool:
    """Whether a birth-death population changes size (slots with masses 1/N0 or 0)."""
    return jumping(cfg) and cfg.dynamics.population == "float"


def initial_masses(cfg, theta0):
    """``(theta, mass)`` of a side's first state from its initial particles ``theta0`` (..., N, p).

    Masses only where they move, so every other run keeps the uniform 1/N code path bit for bit:
    Wasserstein-Fisher-Rao on weights (1/N each), and a floating birth-death population
    (``ceil(capacity N)`` slots, the first N holding the particles at mass 1/N, the rest empty copies
    of them at mass 0: zero-mass probes that change nothing until a clone lands there).
    """
    N = theta0.shape[-2]
    if floating(cfg):
        K = int(np.ceil(cfg.dynamics.capacity * N))
        reps = -(-K // N)
        theta = np.concatenate([theta0] * reps, axis=-2)[..., :K, :]
        mass = np.zeros(theta.shape[:-1], dtype=theta0.dtype)
        mass[..., :N] = 1.0 / N
        return np.ascontiguousarray(theta), mass
    if reacting(cfg):
        return theta0, np.full(theta0.shape[:-1], 1.0 / N, dtype=theta0.dtype)
    return theta0, None


def needs_stream(cfg) -> bool:
    """Whether a side's state needs a random stream (noise or birth-death jumps)."""
    return noisy(cfg) or jumping(cfg)


def noisy(cfg) -> bool:
    return cfg.dynamics.temperature > 0


def langevin_terms(cfg, model, drift_term):
    """``drift_term`` (the model's −Λ∇Ψ over the side's data), plus the decay and noise terms asked for."""
    lam, tau, rate = cfg.dynamics.weight_decay, cfg.dynamics.temperature, cfg.dynamics.transport_rate
    if rate != 1.0:  # the (alpha, beta) of Wasserstein-Fisher-Rao: the transport's own rate
        velocity = drift_term.velocity

        def scaled(theta, mass):
            v = velocity(theta, mass)
            v *= rate
            return v

        drift_term = Drift(scaled)
    if lam == 0 and tau == 0:
        return drift_term
    terms = [drift_term]
    Lam = np.asarray(model.lr_multipliers, dtype=float)
    if lam > 0:
        coef = -lam * Lam

        def decay(theta, mass):
            return theta * coef.astype(theta.dtype, copy=False)

        terms.append(Drift(decay))
    if tau > 0:
        terms.append(Noise(np.sqrt(2.0 * tau * Lam)))
    return terms


def reaction_term(cfg, model, backend, data):
    r"""The Wasserstein–Fisher–Rao reaction on the masses, from the model's first variation:

    .. math:: \dot m_i = -\kappa\,(\Psi_i - \bar\Psi)\,m_i,\quad
              \bar\Psi = \textstyle\sum_j m_j\Psi_j / \sum_j m_j \quad\text{(balanced)},
              \qquad \dot m_i = -\kappa\,\Psi_i\,m_i \quad\text{(unbalanced)}.

    Balanced keeps the total mass: the exact reaction step for frozen rates is renormalised to the
    previous total (``conserve_mass``), so it holds to rounding. The transport velocity is not
    scaled by the masses (every bit of a particle's mass moves at −Λ∇Ψ).
    """
    kappa = cfg.dynamics.reaction_rate
    balanced = cfg.dynamics.reaction == "balanced"

    def rate(theta, mass):
        psi = model.first_variation(backend, theta, data, mass=mass)
        if balanced:
            psi = psi - (np.sum(mass * psi, axis=-1) / np.sum(mass, axis=-1))[..., None]
        return -kappa * psi

    return Reaction(rate, conserve_mass=balanced)


def side_integrator(cfg, transport: str):
    """The integrator of a side: ``transport`` alone, transport and reaction split (Lie/Strang), or
    transport then birth-death jumps."""
    if reacting(cfg):
        return get_integrator(cfg.dynamics.splitting, transport=transport)
    if jumping(cfg):
        return get_integrator("birth_death", transport=transport)
    return get_integrator(transport)


def jump_term(cfg, model, backend, data):
    """Stochastic birth-death (Rotskoff-Jelassi-Bruna-Vanden-Eijnden 2019) at rate kappa from the model's Psi.

    ``birth_death``: kills and clones, the population restored by uniform clones/kills (its limit is
    balanced WFR). ``birth_death_prior``: kills replaced by draws from the model's full-support prior
    (``model.draw_prior``) with the output weight (``model.output_group``) set to zero, so a birth
    leaves f unchanged.
    ``reaction = "unbalanced"`` uses the uncentred rates of RJBV (with a fixed population the control
    re-centres them: the limit is still balanced WFR). ``population = "float"``: no control, the
    population of unit masses 1/N0 changes size; uncentred, its limit is unbalanced WFR.
    """
    from meanfield_solvers.terms import BirthDeath

    opts = {"centred": cfg.dynamics.reaction == "balanced", "population": cfg.dynamics.population}
    if cfg.dynamics.reaction_scheme == "birth_death_prior":
        opts.update(scheme=2, prior=model.draw_prior)
        if model.output_group is not None:
            opts["zero_on_birth"] = model.groups[model.output_group]
    return BirthDeath.from_model(model, backend, data, cfg.dynamics.reaction_rate, **opts)


def extra_terms(cfg, model, backend, data) -> list:
    """The reaction-side terms of a side: the WFR reaction on weights or the birth-death jumps."""
    if reacting(cfg):
        return [reaction_term(cfg, model, backend, data)]
    if jumping(cfg):
        return [jump_term(cfg, model, backend, data)]
    return []
