r"""The discrete adjoint of the explicit Runge–Kutta integrators (Euler, Heun, RK4), with checkpointing.

Each of :class:`~.euler.Euler`, :class:`~.heun.Heun`, :class:`~.rk4.RK4` declares its Butcher tableau
(``tableau = (A, b)``, A strictly lower triangular); one step of the drift :math:`v(\theta; \omega)`
(masses ω frozen) is

.. math:: Y_s = \theta + h\sum_{r<s}a_{sr}k_r,\quad k_s = v(Y_s;\omega),\quad
          \theta^+ = \theta + h\sum_s b_s k_s .

Its exact reverse (the *discrete* adjoint, not a discretised continuous adjoint: only the former
matches finite differences of the map to their precision), given :math:`\bar\theta^+`, runs the
stages backwards,

.. math:: \bar k_s = h\,b_s\bar\theta^+ + h\sum_{q>s}a_{qs}\bar Y_q,\qquad
          (\bar Y_s, \delta\bar\omega) = \mathrm{VJP}_v(Y_s)[\bar k_s],\quad \bar\omega \mathrel{+}= \delta\bar\omega,
          \qquad \bar\theta = \bar\theta^+ + \sum_s\bar Y_s .

:func:`adjoint_sweep` chains it over K steps. The forward states are needed in reverse order:
every ``checkpoint``-th state is kept on the forward pass and each segment is recomputed (by the
registered integrator's own ``step``, so the map differentiated is bit for bit the one that ran)
when the sweep reaches it. Memory: :math:`n p (K/c + c + S + 2C)` numbers for c the checkpoint
interval, S stages, C cotangent channels; time: one extra forward run plus, per step, S velocity
evaluations and S VJPs per channel block. :math:`c=\sqrt K` minimises the memory
(:func:`adjoint_memory_bytes`). Cotangents carry a leading channel axis; an output recorded at an
earlier step is a channel seeded when the sweep reaches that step (``docs/fluctuations.md``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..state import ParticleState
from ..terms import Drift

__all__ = ["DriftVJP", "tableau_of", "rk_step_vjp", "adjoint_sweep", "adjoint_memory_bytes", "default_checkpoint"]


@dataclass(frozen=True)
class DriftVJP:
    r"""A drift with its vector–Jacobian product, for one system.

    velocity : ``(theta (n, p), mass (n,)) -> (n, p)`` (a new array)
    vjp : ``(theta, mass, cot (C, n, p)) -> (theta_bar (C, n, p), mass_bar (C, n))``
    """

    velocity: Callable
    vjp: Callable

    def term(self) -> Drift:
        return Drift(self.velocity)


def tableau_of(integrator):
    """The ``(A, b)`` tableau of a registered explicit integrator, or a TypeError saying which have one."""
    tab = getattr(integrator, "tableau", None)
    if tab is None:
        from .base import INTEGRATORS

        have = sorted(n for n, c in INTEGRATORS.items() if getattr(c, "tableau", None) is not None)
        raise TypeError(f"integrator {integrator!r} has no Runge-Kutta tableau, so no discrete adjoint; "
                        f"integrators with one: {have}")
    return tab


def _stages(field, tab, theta, mass, h):
    """Stage states Y_s of one step (the last stage's velocity is not needed by the reverse pass)."""
    A, b = tab
    Y, k = [], []
    for s in range(len(b)):
        y = theta.copy()
        for r, a in enumerate(A[s]):
            if a:
                y += (h * a) * k[r]
        Y.append(y)
        if s < len(b) - 1:
            k.append(field.velocity(y, mass))
    return Y


def rk_step_vjp(field: DriftVJP, tab, theta, mass, h, cot):
    r"""Reverse of one explicit RK step at ``theta`` (n, p): ``cot`` = :math:`\bar\theta^+` (C, n, p) ->
    ``(theta_bar (C, n, p), mass_bar (C, n))``."""
    A, b = tab
    S = len(b)
    Y = _stages(field, tab, theta, mass, h)
    Ybar = [None] * S
    mbar = np.zeros(cot.shape[:-1])
    for s in range(S - 1, -1, -1):
        kbar = (h * b[s]) * cot if b[s] else np.zeros_like(cot)
        for q in range(s + 1, S):
            a = A[q][s] if s < len(A[q]) else 0.0
            if a:
                kbar = kbar + (h * a) * Ybar[q]
        Ybar[s], dm = field.vjp(Y[s], mass, kbar)
        mbar += dm
    tbar = cot.copy()
    for yb in Ybar:
        tbar += yb
    return tbar, mbar


def default_checkpoint(K: int) -> int:
    """The checkpoint interval that minimises stored states, :math:`\\lceil\\sqrt K\\rceil`."""
    return max(1, int(math.ceil(math.sqrt(max(K, 1)))))


def adjoint_memory_bytes(n, p, K, channels, stages, checkpoint=None, itemsize=8):
    """Peak bytes of :func:`adjoint_sweep` (states, stages, cotangents; the VJPs' own blocks excluded)."""
    c = checkpoint or default_checkpoint(K)
    states = (K // c + 1) + c + stages + 2
    return int(itemsize * n * (p * states + (2 * p + 2) * channels * (1 + stages)))


def adjoint_sweep(field: DriftVJP, integrator, theta0, mass, h, K, seeds: Mapping[int, Callable],
                  checkpoint=None, forward_hook=None):
    r"""Mass cotangents of outputs recorded along a K-step run, by one checkpointed reverse sweep.

    Parameters
    ----------
    field : DriftVJP
    integrator : a registered integrator instance with a ``tableau`` (Euler, Heun, RK4)
    theta0 : (n, p) initial positions; mass : (n,) masses ω (held fixed)
    h : step; K : number of steps
    seeds : ``{step k: fn(theta_k) -> (theta_bar (C_k, n, p), mass_bar (C_k, n))}`` — the gradients of
        the outputs recorded after k steps with respect to the state and masses at that step
    checkpoint : store every ``checkpoint``-th state (default :func:`default_checkpoint`)
    forward_hook : optional ``fn(k, theta_k)`` called on the forward pass at every step (k = 0..K)

    Returns
    -------
    dict ``{step k: (C_k, n) array}``: :math:`\mathrm dO/\mathrm d\omega` (total derivative through the
    whole run, at fixed initial positions) of every output seeded at step k.
    """
    tab = tableau_of(integrator)
    c = checkpoint or default_checkpoint(K)
    term = field.term()
    n = theta0.shape[0]

    def step(th):
        return integrator.step(term, ParticleState(th, mass=mass), h).theta

    bad = [k for k in seeds if not 0 <= k <= K]
    if bad:
        raise ValueError(f"seed steps {bad} outside 0..{K}")
    checkpoints = {0: np.array(theta0, dtype=float)}
    th = checkpoints[0]
    if forward_hook is not None:
        forward_hook(0, th)
    for k in range(K):
        th = step(th)
        if (k + 1) % c == 0 and k + 1 < K:
            checkpoints[k + 1] = th
        if forward_hook is not None:
            forward_hook(k + 1, th)
    p = theta0.shape[1]
    tbar = np.zeros((0, n, p))
    mbar = np.zeros((0, n))
    order = []

    def add(k, th_k, tbar, mbar):
        t_new, m_new = seeds[k](th_k)
        order.append((k, t_new.shape[0]))
        return np.concatenate([tbar, t_new]), np.concatenate([mbar, m_new])

    if K in seeds:
        tbar, mbar = add(K, th, tbar, mbar)
    starts = sorted(checkpoints)
    for i in range(len(starts) - 1, -1, -1):
        s0 = starts[i]
        s1 = starts[i + 1] if i + 1 < len(starts) else K
        seg = [checkpoints[s0]]
        for _ in range(s0, s1 - 1):
            seg.append(step(seg[-1]))
        for k in range(s1 - 1, s0 - 1, -1):
            if tbar.shape[0]:
                tbar, dm = rk_step_vjp(field, tab, seg[k - s0], mass, h, tbar)
                mbar += dm
            if k in seeds:
                tbar, mbar = add(k, seg[k - s0], tbar, mbar)
        del seg
    out, at = {}, 0
    for k, C in order:
        out[k] = mbar[at:at + C]
        at += C
    return out
