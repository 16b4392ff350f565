r"""The integrator contract, and the registry that names integrators.

An integrator advances a :class:`~meanfield_solvers.state.ParticleState` by one step ``dt`` of the dynamics
described by a set of terms (:mod:`meanfield_solvers.terms`):

.. math::
    \mathrm d\theta_i = v(\theta_i; \mu)\,\mathrm dt + g(\theta_i)\odot\mathrm dW_i, \qquad
    \mathrm dm_i = r_i(\theta, m)\, m_i\,\mathrm dt .

``step(terms, state, dt) -> new state``: positions and/or masses advanced, ``step`` count + 1,
the random stream carried (and advanced by what the step drew). The input state is never
modified.

Each integrator declares, as class attributes,

* ``name``: its registry key;
* ``order``: the deterministic global order :math:`q`, i.e. :math:`\max|y_n - y(T)| = O(\Delta
  t^q)` at fixed :math:`T` for smooth drifts and rates with the noise switched off;
* ``strong_order``: :math:`\gamma` with :math:`\mathbb E|\theta_n - \theta(T)| = O(\Delta
  t^\gamma)` on the same Brownian path, or None if it takes no noise (:meth:`strong_order_for`
  refines it for given terms, e.g. additive noise);
* ``accepts`` and ``requires``: the term kinds it can integrate and the ones it needs.

A term of a kind it does not accept is refused with :class:`UnsupportedTermError`, naming the
term, the integrators that accept it and the fix (:meth:`~meanfield_solvers.terms.base.Term.remedy`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Iterable, Mapping

from ..state import ParticleState
from ..terms.base import Term, collect_terms

__all__ = ["Integrator", "UnsupportedTermError", "INTEGRATORS", "register_integrator",
           "get_integrator"]


class UnsupportedTermError(TypeError):
    """An integrator was handed a term (or a set of terms) it cannot integrate."""


class Integrator(ABC):
    """Base class: one fixed step of a set of terms. See the module docstring for the contract."""

    name: ClassVar[str]
    order: ClassVar[float]
    strong_order: ClassVar[float | None] = None
    accepts: ClassVar[frozenset] = frozenset({"drift"})
    requires: ClassVar[frozenset] = frozenset({"drift"})

    def step(self, terms: Term | Iterable[Term], state: ParticleState, dt: float) -> ParticleState:
        """One step of size ``dt``: a new state with ``step + 1`` (``state`` is left as it was)."""
        new = self.advance(self.check(terms), state, dt)
        return new.replace(step=state.step + 1)

    @abstractmethod
    def advance(self, terms: Mapping[str, Term], state: ParticleState, dt: float) -> ParticleState:
        """The step itself, on checked terms ``{kind: term}``; leaves the step count alone.

        Composite integrators (splitting) call their parts' ``advance`` on the same state type.
        """

    def check(self, terms: Term | Iterable[Term]) -> dict[str, Term]:
        """``{kind: term}`` for ``terms``, or :class:`UnsupportedTermError` saying what to do instead."""
        collected = collect_terms(terms)
        for kind, term in collected.items():
            if kind not in self.accepts:
                takers = sorted(n for n, c in INTEGRATORS.items() if kind in c.accepts)
                raise UnsupportedTermError(
                    f"{self!r} cannot integrate a {type(term).__name__} term ({term!r}): "
                    f"{term.remedy(self)}. Integrators that accept a {kind} term: {takers}")
        missing = sorted(self.requires - collected.keys())
        if missing:
            raise UnsupportedTermError(f"{self!r} needs a {' and a '.join(missing)} term; got "
                                       f"{sorted(collected) or 'none'}")
        return collected

    def order_for(self, terms) -> float:
        """Deterministic global order for these terms (default: the declared ``order``)."""
        return self.order

    def strong_order_for(self, terms) -> float | None:
        """Strong order for these terms (default: the declared ``strong_order``)."""
        return self.strong_order

    def __repr__(self):
        return self.name


INTEGRATORS: dict[str, type[Integrator]] = {}


def register_integrator(cls: type[Integrator]) -> type[Integrator]:
    """Class decorator: make ``cls`` available as ``get_integrator(cls.name)``."""
    for attr in ("name", "order"):
        if not hasattr(cls, attr):
            raise TypeError(f"integrator {cls.__name__} must declare a class attribute {attr!r}")
    if cls.name in INTEGRATORS and INTEGRATORS[cls.name] is not cls:
        raise ValueError(f"integrator name {cls.name!r} is already registered by "
                         f"{INTEGRATORS[cls.name].__qualname__}")
    INTEGRATORS[cls.name] = cls
    return cls


def get_integrator(name: str, **options) -> Integrator:
    """An instance of the integrator registered as ``name`` (``options`` go to its constructor)."""
    try:
        cls = INTEGRATORS[name]
    except KeyError:
        raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}") from None
    return cls(**options)
