r"""Adam for the finite-width deep networks, with each parametrisation's per-layer step sizes.

``train.optimizer = 'adam'`` replaces the plain step :math:`W\leftarrow W-\eta c_\ell\nabla\hat L` of every
training algorithm (``gd``: full batch; ``sgd``/``online_sgd``: the minibatch gradient) by Adam
(Kingma & Ba 2015) with bias correction, per weight group ℓ = 0..L and per entry:

.. math::
    \hat g = \nabla_{W^\ell}\hat L/\sigma_\ell,\qquad m\leftarrow\beta_1m+(1-\beta_1)\hat g,\qquad
    v\leftarrow\beta_2v+(1-\beta_2)\hat g^2,

    W^\ell\leftarrow W^\ell-\eta\,a_\ell\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)}+\epsilon}
    \qquad(t = 1, 2, \dots\ \text{the step count}).

* :math:`a_\ell` (``LayerScales.adam``) is the parametrisation's per-entry step multiplier
  (:mod:`meanfield.deep.parametrisation`, docs/residual.md §4). Adam normalises every entry of the
  gradient, so the size of an update no longer follows the gradient's width dependence: the
  parametrisation must scale the step itself. muP: :math:`a_0 = \gamma_0/\sqrt D`,
  :math:`a_\ell = \gamma_0/\sqrt N` for the N×N hidden matrices, :math:`a_L = \gamma_0` for the
  readout — in the stored units :math:`W' = s_\ell W` of practitioners, Adam rate
  :math:`\gamma_0\eta/\text{fan-in}` on the input and hidden matrices and :math:`\gamma_0\eta` on the
  :math:`N(0,1)` readout with output multiplier :math:`1/(\gamma_0N)`: the muP Adam rule of Yang et al.
  2022 (Tensor Programs V, Table 3 and its Table 8 form), which ``mup.MuAdam`` implements by dividing the
  learning rate of every matrix with two width-like dimensions by its fan-in multiplier. (For the input
  layer fan-in = D is not a width, so TP5's unscaled η and our η/D differ by a width-independent
  constant, which keeps every layer's features moving by O(γ₀η) per step.)
* :math:`\sigma_\ell` is the nominal size of one gradient entry at initialisation,
  :math:`\sigma_\ell = s_\ell/\text{g\_scale}` (ℓ < L; :math:`\partial f/\partial W^\ell = s_\ell
  e^{\ell+1}a^{\ell\top}` with :math:`e = g/\text{g\_scale}` and O(1) fields) and :math:`\sigma_L = s_L`.
  Adam is invariant to a constant rescaling of a group's gradient except through ε; dividing by
  :math:`\sigma_\ell` makes ε mean the same at every width (with raw gradients, which vanish like
  :math:`N^{-3/2}` on the hidden matrices under muP, a fixed ε would eventually dominate — TP5 notes
  that ε must be scaled with the gradients for exactly this reason). Equivalently: Adam on raw
  gradients with :math:`\epsilon_\ell = \epsilon\sigma_\ell`.

A step that leaves the finite numbers, or a loss above ``train.divergence_factor`` times its reference,
is recorded as ``diverged`` with its step by the shared time loop (:func:`meanfield.march.march`,
:mod:`meanfield.health`), as for every other step function.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OPTIMIZERS", "AdamSpec", "Adam", "gradient_units"]

#: ``train.optimizer`` values: 'sgd' is the plain step of :mod:`meanfield.deep.train`
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class AdamSpec:
    """Adam's constants (``train.adam_beta1``, ``train.adam_beta2``, ``train.adam_eps``)."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise ValueError(f"Adam needs 0 <= beta1, beta2 < 1 and eps > 0, got {self}")


def gradient_units(sc) -> tuple:
    r""":math:`\sigma_0..\sigma_L`, the nominal per-entry gradient size of each group (module docstring)."""
    L = len(sc.forward) - 1
    return tuple(sc.forward[l] / sc.g_scale for l in range(L)) + (sc.forward[L],)


class Adam:
    r"""Adam state and step for an ensemble of S networks of :class:`~meanfield.deep.network.DeepNet`.

    ``Adam(net, lr, spec)(theta, X, y)`` returns the next state (a new array) and advances the moments.
    The moments are per network (the leading axis S), so S seeds train independently, as with the
    plain step. Works at every depth (depth 1 through the per-group weights of the two-layer layout).

    Parameters
    ----------
    net : DeepNet (its parametrisation must declare ``adam`` rates)
    lr : float, η
    spec : AdamSpec
    """

    def __init__(self, net, lr: float, spec: AdamSpec | None = None):
        sc = net.sc
        if sc.adam is None:
            raise ValueError(f"parametrisation {type(net.param).__name__} declares no Adam rates")
        self.net, self.lr, self.spec = net, float(lr), spec or AdamSpec()
        sigma = gradient_units(sc)
        # velocity v = -c grad  ->  normalised gradient g = v * k with k = -1/(c sigma)
        self.k = [-1.0 / (c * s) for c, s in zip(sc.lr, sigma)]
        self.step_size = [self.lr * a for a in sc.adam]
        self.t = 0
        self.m = self.v = None

    # -- the step's memory, for checkpoints (meanfield.checkpoint: ``step.memory``)
    def get_memory(self):
        """The moments and the step count (copies): what a resumed run needs to continue bit for bit."""
        return {"t": int(self.t), "m": None if self.m is None else [a.copy() for a in self.m],
                "v": None if self.v is None else [a.copy() for a in self.v]}

    def set_memory(self, memory):
        self.t = int(memory["t"])
        self.m = None if memory["m"] is None else [np.array(a) for a in memory["m"]]
        self.v = None if memory["v"] is None else [np.array(a) for a in memory["v"]]

    def _groups(self, theta, X, y):
        """(new weights as writable per-group arrays, the new state they live in or None, velocities)."""
        net = self.net
        if net.L == 1:
            Ws = net.weights(theta)  # new arrays in the deep convention
            return Ws, None, net.velocity_weights(Ws, X, y)[1]
        new = np.array(theta, copy=True)
        return net.weights(new), new, net.weights(net.velocity(theta, X, y)[1])

    def __call__(self, theta, X, y):
        b1, b2, eps = self.spec.beta1, self.spec.beta2, self.spec.eps
        Ws, new, Vs = self._groups(theta, X, y)
        if self.m is None:
            self.m = [np.zeros_like(W) for W in Ws]
            self.v = [np.zeros_like(W) for W in Ws]
        self.t += 1
        c1, c2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        for W, g, m, v, k, h in zip(Ws, Vs, self.m, self.v, self.k, self.step_size):
            g *= k
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            g *= g
            g *= 1.0 - b2
            v += g
            den = np.sqrt(v / c2)
            den += eps
            W -= (h / c1) * m / den
        return self.net.pack(Ws) if new is None else new
