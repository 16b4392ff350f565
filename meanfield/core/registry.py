r"""Registries of the product: limit methods and model kinds.

**Limit methods** (``limit.method``) are small adapters, one per method, registered by the wing
that provides them: ``check(config) -> problems`` (what this method cannot do with this config,
each a sentence naming the fix) and ``run(setup, grid, progress, log) -> Side`` (the recorded
arrays of the limit, its summary entries and its divergence, if any). The orchestrator looks the
method up by name; there is no ``if/elif`` over method names anywhere, and a name nobody
registered is a config error listing the registered ones.

**Model kinds** (``model.kind``) name model families beyond the built-in networks: a model kind
builds a particle model and its task from a config (``build(config) -> (model, task)``), may
declare extra ``[model]`` keys (``fields``), and runs through the same particle pipeline as the
two-layer network (``experiments/custom_model.py`` registers one from outside the package).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

__all__ = ["CONFIG_CHECKS", "register_config_check", "LimitMethod", "LIMIT_METHODS", "register_limit_method", "get_limit_method", "Side",
           "ModelKind", "MODEL_KINDS", "register_model", "get_model_kind"]


@dataclass
class Side:
    """What one side of a run (the limit, or the networks) recorded.

    Attributes
    ----------
    arrays : result arrays under their canonical names (see :mod:`meanfield.core.result`)
    summary : entries for ``summary.json`` (timings, solver records)
    diverged : divergence records ``{side, step, time, message}``
    messages : notices worth keeping in the summary
    extra : anything the other side needs (e.g. the limit's initial particles, for coupling)
    """

    arrays: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    diverged: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


class LimitMethod(abc.ABC):
    """One infinite-width method. Subclasses set :attr:`name`, :attr:`family` and :attr:`doc`."""

    #: the value of ``limit.method`` that selects it
    name: str = ""
    #: the model family it serves: ``"particle"`` (any particle model) or ``"deep"``
    family: str = ""
    #: one line for the config reference
    doc: str = ""

    def check(self, c: dict) -> list:
        """Problems of this method with the resolved config dict ``c`` (empty when it can run)."""
        return []

    @abc.abstractmethod
    def run(self, setup, grid, progress, log) -> Side:
        """Solve the limit on the run's time grid; ``setup`` is the wing's prepared run."""


LIMIT_METHODS: dict = {}


def register_limit_method(method: LimitMethod) -> LimitMethod:
    """Register an instance under ``method.name`` (a second registration of a name is an error)."""
    if not method.name:
        raise ValueError(f"{type(method).__name__} must set a name")
    if method.name in LIMIT_METHODS and type(LIMIT_METHODS[method.name]) is not type(method):
        raise ValueError(f"limit method {method.name!r} is already registered by "
                         f"{type(LIMIT_METHODS[method.name]).__name__}")
    LIMIT_METHODS[method.name] = method
    return method


def get_limit_method(name: str) -> LimitMethod:
    try:
        return LIMIT_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown limit method {name!r}; registered: {sorted(LIMIT_METHODS)} "
                         "(or 'none' to skip the limit)") from None


class ModelKind(abc.ABC):
    """A model family selectable by ``model.kind``: builds a particle model and its task."""

    #: the value of ``model.kind``
    name: str = ""
    #: extra ``[model]`` keys of this kind: ``name -> meanfield.config.Field``
    fields: dict = {}
    #: one line for the config reference
    doc: str = ""

    def check(self, c: dict) -> list:
        """Problems of the resolved config dict ``c`` for this kind."""
        return []

    @abc.abstractmethod
    def build(self, cfg):
        """``(model, task)`` for a validated config: a :class:`meanfield_solvers.models.ParticleModel` and
        a task (see :class:`meanfield.tasks.Task`: ``loss``, ``population``, ``sample``, ...)."""

    def analytic_obstacles(self, c: dict) -> list:
        """Why closed-form expectations are impossible for ``c`` ([] when they are possible)."""
        return []


MODEL_KINDS: dict = {}


def register_model(kind: ModelKind) -> ModelKind:
    """Make ``kind`` selectable as ``model.kind = kind.name`` (re-registering the same name replaces it,
    so a script can be re-run in one session)."""
    if not kind.name:
        raise ValueError(f"{type(kind).__name__} must set a name")
    MODEL_KINDS[kind.name] = kind
    return kind


def get_model_kind(name: str) -> ModelKind:
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; registered: {sorted(MODEL_KINDS)}") from None


#: config checks contributed by the wings: ``check(resolved, given) -> problems`` (may resolve values)
CONFIG_CHECKS: list = []


def register_config_check(check):
    """Add a wing's config check (run after the generic checks; each returns a list of problems)."""
    if check not in CONFIG_CHECKS:
        CONFIG_CHECKS.append(check)
    return check
