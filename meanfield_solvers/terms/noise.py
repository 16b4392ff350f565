r"""The noise term: a diagonal diffusion of the positions driven by Brownian motion.

.. math:: \mathrm d\theta = \dots + g(\theta)\odot\mathrm dW,

one independent Brownian motion per particle and coordinate. For mean-field Langevin dynamics at
inverse temperature :math:`\beta`, :math:`g = \sqrt{2/\beta}` (times :math:`\Lambda^{1/2}` with
learning-rate multipliers), an *additive* noise.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

from .base import Term

__all__ = ["Noise"]


class Noise(Term):
    r"""Diffusion :math:`g(\theta)\odot\mathrm dW` with its Brownian increments.

    Parameters
    ----------
    diffusion : float, array broadcastable to (..., N, p), or callable ``theta -> ndarray``
        The diffusion coefficient :math:`g`. A number or an array is a constant (additive noise),
        e.g. ``sqrt(2 * temperature)``, or a per-coordinate ``sqrt(2 / beta) * sqrt(lr)`` of shape
        (p,) (zero freezes a coordinate). A callable is diagonal multiplicative noise: ``g(theta)``
        returns an array shaped like ``theta``.

    Notes
    -----
    :meth:`increment` draws :math:`\Delta W\sim\mathcal N(0, \Delta t)` iid per entry from the
    state's stream (see :class:`~meanfield_solvers.state.ParticleState`); with a tuple of generators, one
    draw of shape ``theta.shape[1:]`` per generator, so each seed's increments depend only on its
    own generator.
    """

    kind = "noise"

    def __init__(self, diffusion: Union[float, np.ndarray, Callable]):
        if callable(diffusion):
            self.diffusion = diffusion
        elif np.ndim(diffusion) == 0:
            # a Python float, not a 0-d array: a float32 state then stays float32 arithmetic
            self.diffusion = float(diffusion)
        else:
            self.diffusion = np.asarray(diffusion)

    @property
    def additive(self) -> bool:
        """True when :math:`g` does not depend on the state (Euler–Maruyama is then strong order 1)."""
        return not callable(self.diffusion)

    def increment(self, state, dt: float) -> np.ndarray:
        r"""Brownian increments :math:`\Delta W` over a step ``dt``: a new array shaped like ``theta``.

        Advances the state's generator(s).
        """
        theta, rng = state.theta, state.rng
        if rng is None:
            raise ValueError("a Noise term needs a random stream: build the ParticleState with "
                             "rng=np.random.default_rng(seed), or a tuple of generators, one per seed")
        # standard_normal draws float32 or float64 natively; anything else gets float64
        dtype = theta.dtype if theta.dtype in (np.float32, np.float64) else np.float64
        dw = np.empty(theta.shape, dtype=dtype)
        if isinstance(rng, tuple):
            for s, gen in enumerate(rng):  # seed s draws from its own generator only
                gen.standard_normal(dtype=dtype, out=dw[s])
        else:
            rng.standard_normal(dtype=dtype, out=dw)
        dw *= math.sqrt(dt)
        return dw

    def displacement(self, state, dt: float) -> np.ndarray:
        r""":math:`g(\theta)\odot\Delta W` for one step from ``state`` (a new array; draws noise)."""
        dw = self.increment(state, dt)
        g = self.diffusion(state.theta) if callable(self.diffusion) else self.diffusion
        dw *= g
        return dw

    def remedy(self, integrator) -> str:
        return ("adding noise to the stages of a deterministic scheme is not a consistent SDE "
                "discretisation; use euler_maruyama (with a Reaction too: "
                "get_integrator('strang', transport='euler_maruyama'))")

    def __repr__(self):
        g = self.diffusion
        return f"Noise({getattr(g, '__name__', g) if callable(g) else g!s})"
