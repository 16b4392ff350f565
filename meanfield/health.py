r"""When a recorded risk may be reported as a number: the criteria every side of every run obeys.

A run is ``completed`` only if every record of every side passed :meth:`Health.check`. The criteria
(README, *Reliability*):

1. **Available risks are finite.** An observer says which risks it computes (its ``available``
   attribute, e.g. no ``risk_test`` without test points). Every available risk must be finite at
   every record, step 0 included: a risk that is NaN at step 0 is a failure (``failed``), not
   "not available"; one that becomes non-finite later is a divergence (``diverged``). An observer
   with no available risk at all cannot vouch for anything and fails at step 0.
2. **In range, above its rounding error.** A risk is a mean of non-negative losses. Where it is
   computed as a difference of large terms (the closed-form population risk
   :math:`\tfrac12E y^2 - E[yf] + \tfrac12E f^2`), the observer also returns
   ``<name>_rounding``, a bound b on its rounding error; a value below b has lost its precision
   and is never reported. At the first record that is a failure (``failed``: the closed form cannot
   resolve this run's risk at all, e.g. a lazy model.alpha); later it means the risk has fallen
   to the closed form's *precision floor*: those values are recorded as NaN, the side goes on and
   says so once (:attr:`Health.floored`), since the dynamics itself is sound. A value below −b
   contradicts the bound and fails. Without a bound the risk must be :math:`\ge 0`.
3. **Divergence.** With :math:`R_0` the largest available risk at step 0 and :math:`s` the scale of
   the target (the risk of the zero predictor, the observer's ``scale``), a record with some risk
   above ``factor`` · max(R_0, s) is a divergence (``diverged``) — a learning rate too large for the
   flow shows up as a finite loss of 1e120 long before the parameters overflow.
   ``factor`` is ``train.divergence_factor`` (default 1e6). (If both R_0 and s are 0 there is no
   scale to compare with and only criteria 1–2 apply.)

The checks read only the observation dict, so the time loop (:func:`meanfield.march.march`) and
the closed-form limits (:mod:`meanfield.deep.limits`) apply the same rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Health", "Verdict", "DEFAULT_DIVERGENCE_FACTOR", "first_unhealthy", "floor_notes"]

#: a risk above this multiple of max(initial risk, target scale) is a divergence
DEFAULT_DIVERGENCE_FACTOR = 1e6


@dataclass(frozen=True)
class Verdict:
    """Why a record may not be reported: ``status`` ('failed' or 'diverged') and a sentence."""

    status: str
    reason: str


class Health:
    """The record criteria of one side (see the module docstring).

    Parameters
    ----------
    available : sequence of str or None
        The risks the observer computes; None: every key starting with ``risk`` that is not a
        ``_rounding`` bound.
    factor : float
        Divergence factor (> 1); ``inf`` disables criterion 3.
    scale : float
        The target's scale s (risk of the zero predictor); 0 if unknown.
    """

    def __init__(self, available=None, factor=DEFAULT_DIVERGENCE_FACTOR, scale=0.0):
        self.available = None if available is None else tuple(available)
        self.factor = float(factor)
        self.scale = float(scale) if np.isfinite(scale) else 0.0
        self.reference = None  # max(R_0, s), set by the first record
        self.floored = {}  # risk name -> (first step, time, bound) where it reached its precision floor

    @classmethod
    def of(cls, observe, factor=DEFAULT_DIVERGENCE_FACTOR):
        """The health of an observer, from its ``available`` and ``scale`` attributes."""
        return cls(getattr(observe, "available", None), factor, getattr(observe, "scale", 0.0))

    def _risks(self, obs):
        if self.available is not None:
            return [n for n in self.available if n in obs]
        return [n for n in obs if n.startswith("risk") and not n.endswith("_rounding")]

    def check(self, obs, k, t) -> Verdict | None:
        """None if the record ``obs`` (at step ``k``, time ``t``) may be reported, else the verdict.

        A risk at its precision floor (criterion 2, after the first record) is set to NaN in ``obs``
        in place and noted in :attr:`floored`; the record is then reported without it."""
        names = self._risks(obs)
        at = f"step {k} (t = {t:g})"
        if not names:
            return Verdict("failed", "no risk is available to record (no population, no test and no "
                                     "training set): nothing could vouch for the run")
        for n in names:
            v = np.asarray(obs[n], dtype=float)
            if not np.all(np.isfinite(v)):
                if self.reference is None:
                    return Verdict("failed", f"{n} is not finite at {at}, the first record: it cannot be "
                                             "computed from this data (an empty split?)")
                return Verdict("diverged", f"{n} became non-finite at {at}")
            bound = obs.get(n + "_rounding")
            floor = 0.0 if bound is None else np.asarray(bound, dtype=float)
            low = v < floor
            if np.any(low):
                i = int(np.argmax(low))
                vi, fi = float(v.flat[i]), float(np.broadcast_to(floor, v.shape).flat[i])
                if bound is not None and self.reference is not None and np.all(v[low] >= -np.broadcast_to(
                        floor, v.shape)[low]):  # at the precision floor: not reported, not a failure
                    obs[n] = np.where(low, np.nan, v) if v.ndim else np.float64(np.nan)
                    self.floored.setdefault(n, (k, t, fi))
                    continue
                why = (f"below its rounding error {fi:.3g}: the closed form is a difference of terms too large "
                       "for the working precision (lower model.alpha, or use limit.expectation = 'mc')"
                       if bound is not None else "negative")
                return Verdict("failed", f"{n} = {vi:.6g} at {at} is {why}; it is not reported")
        finite = [np.asarray(obs[n], dtype=float) for n in names]
        top = max((float(np.max(f[np.isfinite(f)])) for f in finite if np.any(np.isfinite(f))), default=0.0)
        if self.reference is None:
            self.reference = max(top, self.scale)
            return None
        limit = self.factor * self.reference
        if self.reference > 0 and top > limit:  # (a zero reference gives no scale to compare with)
            return Verdict("diverged", f"the risk reached {top:.4g} at {at}, above train.divergence_factor "
                                       f"({self.factor:g}) x max(initial risk, target scale) = {limit:.4g}")
        return None


def floor_notes(health, desc) -> list:
    """One sentence per risk of ``health`` that reached its precision floor (criterion 2)."""
    return [f"{desc}: {n} fell below the closed form's rounding-error bound {b:.3g} at step {k} (t = {t:g}); "
            "from there on its values are not reported (NaN): the closed form cannot resolve a smaller risk "
            "(limit.expectation = 'mc' estimates it by sampling)" for n, (k, t, b) in health.floored.items()]


def first_unhealthy(risk, steps, dt, factor=DEFAULT_DIVERGENCE_FACTOR, scale=0.0):
    """Position and verdict of the first record of a risk curve ``risk`` (T,) at step indices
    ``steps`` (time ``step * dt``) that :class:`Health` refuses, or ``(None, None)``: the rule of the
    time loop for sides that are not marched (the closed-form deep limits)."""
    health = Health(None, factor, scale)
    for i, (r, k) in enumerate(zip(risk, steps)):
        v = health.check({"risk": np.asarray(r)}, int(k), float(k) * dt)
        if v is not None:
            return i, v
    return None, None
