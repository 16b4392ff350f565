r"""What a dynamics term is, and how a list of terms is handed to an integrator.

The dynamics of a :class:`~meanfield_solvers.state.ParticleState` are written as a sum of terms, each a
vector field paired with its control (diffrax's idea, numpy-sized):

.. math::
    \mathrm d\theta_i = v(\theta_i; \mu)\,\mathrm dt + g(\theta_i)\,\mathrm dW_i, \qquad
    \mathrm dm_i = r_i(\theta, m)\, m_i\,\mathrm dt,

with :class:`~meanfield_solvers.terms.drift.Drift` (:math:`v`, control :math:`\mathrm dt`),
:class:`~meanfield_solvers.terms.noise.Noise` (:math:`g`, control a Brownian increment drawn from the
state's stream) and :class:`~meanfield_solvers.terms.reaction.Reaction` (:math:`r`, acting on the masses).
A term only *describes* its part of the dynamics; an integrator decides how to combine them.

Integrators dispatch on a term's ``kind`` (a class attribute), never on its class name, so a new
term (weight decay, say) is a new file whose class declares the kind it contributes to.
"""
from __future__ import annotations

from abc import ABC
from typing import ClassVar, Iterable, Mapping

__all__ = ["Term", "collect_terms"]


class Term(ABC):
    """Base class of dynamics terms.

    Attributes
    ----------
    kind : str (class attribute)
        What the term contributes: ``"drift"`` (a velocity of the positions), ``"noise"`` (a
        diffusion of the positions), ``"reaction"`` (a growth rate of the masses) or ``"jump"``
        (birth–death: particles killed and cloned at fixed N). Integrators declare the kinds they
        accept.
    """

    kind: ClassVar[str]

    @classmethod
    def combine(cls, terms: list["Term"]) -> "Term":
        """One term equivalent to the sum of several of this kind (default: refuse)."""
        raise ValueError(f"got {len(terms)} {cls.kind} terms ({', '.join(map(repr, terms))}); "
                         f"give one {cls.__name__} term")

    def remedy(self, integrator) -> str:
        """What to do when ``integrator`` cannot integrate this term (the error message's fix)."""
        return "choose an integrator that accepts it"


def collect_terms(terms: Term | Iterable[Term] | Mapping[str, Term]) -> dict[str, Term]:
    """Map each kind to its term: one term, a sequence of terms (or a map already collected) in;
    ``{kind: term}`` out.

    Several terms of one kind are merged by that kind's :meth:`Term.combine` (drifts add up;
    two noises or two reactions are refused).
    """
    if isinstance(terms, Mapping):  # already collected: idempotent
        terms = terms.values()
    elif isinstance(terms, Term):
        terms = (terms,)
    by_kind: dict[str, list[Term]] = {}
    for term in terms:
        if not isinstance(term, Term):
            raise TypeError(f"expected dynamics terms (meanfield_solvers.terms), got {type(term).__name__}")
        by_kind.setdefault(term.kind, []).append(term)
    return {kind: ts[0] if len(ts) == 1 else type(ts[0]).combine(ts) for kind, ts in by_kind.items()}
