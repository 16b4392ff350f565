"""The particle wing: runs of particle models (the two-layer network and any registered model kind).

* :mod:`.limit` — the ``particles`` limit method: the model's mean-field flow, stepped by a
  registered integrator;
* :mod:`.train` — finite-width ensembles (online SGD, multi-pass SGD, GD, population GD);
* :mod:`.observe` — the observables both sides record;
* :mod:`.resident` — GPU-resident stepping where a fused flow is registered for the model.

Never imports :mod:`meanfield.deep` (its sibling); shared pieces live in :mod:`meanfield.core`.
"""
