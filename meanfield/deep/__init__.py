r"""Deep networks: finite-width muP ensembles, their trainers and observables, and deep runs.

* :mod:`~meanfield.deep.parametrisation` — parametrisations (muP, NTK, standard; residual options)
* :mod:`~meanfield.deep.network` — :class:`DeepNet`
  (hand-written backprop, batched over seeds; depth 1 dispatches to the two-layer model).
* :mod:`~meanfield.deep.train` — gradient flow (Heun/RK4), full-batch GD (Euler), SGD, online SGD.
* :mod:`~meanfield.deep.observe` — losses, outputs, per-layer kernels, NTK and alignment.
* :mod:`~meanfield.deep.run` — the orchestrator of deep configs (limit: dmft, dmft_linear, ntk).
* :mod:`~meanfield.deep.plot` — figures of a deep run.
"""
from .network import DeepNet, Fields, init_weights
from .parametrisation import PARAMETRISATIONS, LayerScales, MuP, NTKParam, Standard, make_parametrisation

__all__ = ["DeepNet", "Fields", "LayerScales", "MuP", "NTKParam", "Standard", "PARAMETRISATIONS", "init_weights", "make_parametrisation"]
