r"""Deep networks: finite-width muP ensembles, their trainers and observables, and deep runs.

* :mod:`~meanfield.deep.network` — parametrisations (:class:`MuP`) and :class:`DeepNet`
  (hand-written backprop, batched over seeds; depth 1 dispatches to the two-layer model).
* :mod:`~meanfield.deep.train` — gradient flow (Heun/RK4), full-batch GD (Euler), SGD, online SGD.
* :mod:`~meanfield.deep.observe` — losses, outputs, per-layer kernels, NTK and alignment.
* :mod:`~meanfield.deep.run` — the orchestrator of deep configs (limit: dmft, dmft_linear, ntk).
* :mod:`~meanfield.deep.plot` — figures of a deep run.
"""
from .network import PARAMETRISATIONS, DeepNet, Fields, LayerScales, MuP, init_weights, make_parametrisation

__all__ = ["DeepNet", "Fields", "LayerScales", "MuP", "PARAMETRISATIONS", "init_weights", "make_parametrisation"]
