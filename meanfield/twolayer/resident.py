"""Choose where the particles live during a march: on the GPU when the backend can keep them there.

With ``run.backend = cuda`` the limit and the finite-width ensembles step through
:class:`meanfield_solvers.particles.backends.cuda_flow.CudaFlow`: the particles stay in device memory and
only the recorded observables (and snapshots) come back. Cases the resident kernels do not cover
(d > 128, analytic expectations with a linear activation) run the host-driven loop on the same
backend, with the same results, and say so once.

Samples are drawn on the host, so every backend sees the same ones: fresh Monte Carlo draws
(``mc_resample``) and ``online_sgd`` minibatches are uploaded each step (M·d or S·B·d values);
``sgd`` keeps its training set on the device and sends only the minibatch indices (S·B).
"""
from __future__ import annotations

__all__ = ["resident_flow"]


def resident_flow(backend, model, integrator, h, dtype, loss, population=None, log=None, what=""):
    """A :class:`CudaFlow` for this case, or None (host-driven loop) with the reason logged."""
    from meanfield_solvers.fused import fused_for

    if getattr(backend, "name", "") != "cuda":
        return None
    if integrator not in ("euler", "heun", "rk4"):  # the deterministic schemes CudaFlow fuses
        if log is not None:
            log(f"run.backend = cuda: the GPU-resident flow has no {integrator!r} step; {what} steps with "
                "host-resident particles")
        return None
    if not fused_for(backend, model, "resident"):
        if log is not None:
            log(f"run.backend = cuda: no GPU-resident flow is registered for the {model.kind!r} model; {what} "
                "steps with host-resident particles")
        return None
    from meanfield_solvers.particles.backends.cuda_flow import CudaFlow, unsupported

    why = unsupported(model, "analytic" if population is not None else "mc", loss, population)
    if why:
        if log is not None:
            log(f"run.backend = cuda: {what} steps with host-resident particles ({why}); "
                "the results are the same")
        return None
    return CudaFlow(backend, model, integrator, h, dtype, loss, population)
