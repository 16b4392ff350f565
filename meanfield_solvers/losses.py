r"""Pointwise losses :math:`\ell(y, f)` and their residuals :math:`r = -\partial_f\ell`.

A registry: each loss is one function ``(y, f) -> (loss, residual)``; an unknown name is an error
listing the registered ones.

* square: :math:`\ell = \tfrac12 (y-f)^2`, :math:`r = y - f`;
* logistic (labels ±1): :math:`\ell = \log(1+e^{-yf})`, :math:`r = y\,\mathrm{sigmoid}(-yf)`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["LOSSES", "loss_and_residual", "register_loss"]


def _softplus(z):
    return np.logaddexp(0.0, z)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _square(y, f):
    r = y - f
    return 0.5 * r * r, r


def _logistic(y, f):
    m = y * f
    return _softplus(-m), y * _sigmoid(-m)


_REGISTRY = {"square": _square, "logistic": _logistic}
#: names of the registered losses
LOSSES = tuple(_REGISTRY)


def register_loss(name: str, fn):
    """Register ``fn(y, f) -> (loss, residual)`` under ``name``."""
    global LOSSES
    _REGISTRY[name] = fn
    LOSSES = tuple(_REGISTRY)


def loss_and_residual(loss: str, y, f):
    r"""Pointwise loss and residual :math:`r = -\partial_f\ell` of the loss named ``loss``."""
    try:
        fn = _REGISTRY[loss]
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(map(repr, _REGISTRY))}") from None
    return fn(y, f)
