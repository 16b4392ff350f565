"""What a backend supports: each backend declares it through :meth:`supports`, answered from the
activation registry (:mod:`meanfield_solvers.activations`), never from a list of names.

The protocol's operations are ``pairwise`` (closed-form Gaussian kernel sums, analytic
expectations), ``mc_forward`` and ``mc_backward`` (Monte Carlo passes). The numpy reference
runs any registered activation in Monte Carlo and any activation with a closed-form kernel in
``pairwise``; a compiled backend runs what the registry holds an implementation of for its
target (``operations`` maps the protocol's operations to the target's registered ones).
"""
from __future__ import annotations

from ...activations import MissingImplementation, UnknownActivation, closed_form, implementation

__all__ = ["OPERATIONS", "supports"]

#: the operations of the backend protocol
OPERATIONS = ("pairwise", "mc_forward", "mc_backward")


def supports(target, operations, op: str, activation: str) -> str:
    """Why ``op`` with ``activation`` cannot run on a backend ('' when it can).

    ``target``: the backend's registry target (None for the numpy reference); ``operations``:
    protocol operation -> the target's registered operation.
    """
    if op not in OPERATIONS:
        raise ValueError(f"unknown backend operation {op!r}; the protocol has {list(OPERATIONS)}")
    try:
        if target is None:
            if op == "pairwise":
                closed_form(activation, "kernel_and_grad")
            else:
                from ...activations import get_activation

                get_activation(activation)
        else:
            implementation(activation, target, operations[op])
    except (UnknownActivation, MissingImplementation) as e:
        return str(e)
    return ""
