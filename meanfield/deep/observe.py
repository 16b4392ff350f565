r"""Observables of deep runs, computed by the same functions for the finite networks and the limit.

At a recording time, on the ``n = P + Q`` points (P training points first, then Q test points):

* training loss :math:`\hat L = \frac1P\sum_{\mu\le P}\frac12(y_\mu-f_\mu)^2` and test loss (same
  average over the test points, NaN without test targets);
* outputs :math:`f_\mu`, μ = 1..n;
* feature kernels :math:`\Phi^\ell = \phi(h^\ell)^\top\phi(h^\ell)/N` and gradient kernels
  :math:`G^\ell = g^{\ell\top}g^\ell/N` (:math:`g^\ell = \gamma_0N\,\partial f/\partial h^\ell`,
  docs/dmft.md §1.1), ℓ = 1..L, each (n, n);
* the NTK :math:`K = \sum_{\ell=0}^{L}G^{\ell+1}\odot\Phi^\ell` (:math:`\Phi^0 = XX^\top/D`,
  :math:`G^{L+1}\equiv1`), (n, n) — :func:`ntk_from_kernels`;
* kernel–target alignment of the training block,
  :math:`A(K) = y^\top K y/(\lVert K\rVert_F\lVert y\rVert^2)` — :func:`alignment`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ntk_from_kernels", "alignment", "DeepObserver"]


def ntk_from_kernels(Phi0, Phi, G, weights=None):
    r""":math:`K = G^1\odot\Phi^0 + \sum_{\ell=1}^{L-1}G^{\ell+1}\odot\Phi^\ell + \Phi^L`.

    Parameters
    ----------
    Phi0 : (n, n)
    Phi, G : (..., L, n, n) — layers 1..L on the layer axis
    weights : None or (L+1,) floats
        Per-group factors :math:`\omega_\ell` of :math:`K = \sum_\ell\omega_\ell G^{\ell+1}\odot\Phi^\ell`
        (:meth:`meanfield.deep.network.DeepNet.kernel_weights`: :math:`b^2` on residual blocks, width
        factors in the standard parametrisation); None: all ones (muP).

    Returns
    -------
    K : (..., n, n)
    """
    L = Phi.shape[-3]
    if weights is not None:
        w = [float(x) for x in weights]
        K = w[0] * G[..., 0, :, :] * Phi0 + w[L] * Phi[..., L - 1, :, :]
        for l in range(1, L):
            K = K + w[l] * G[..., l, :, :] * Phi[..., l - 1, :, :]
        return K
    K = G[..., 0, :, :] * Phi0 + Phi[..., L - 1, :, :]
    for l in range(1, L):
        K = K + G[..., l, :, :] * Phi[..., l - 1, :, :]
    return K


def alignment(K, y):
    r"""Kernel–target alignment :math:`y^\top K_{PP}y/(\lVert K_{PP}\rVert_F\lVert y\rVert^2)`.

    ``K`` (..., n, n) with n ≥ P = len(y); only the leading (P, P) training block is used. Shape (...).
    """
    y = np.asarray(y, dtype=float)
    P = y.shape[0]
    Kp = K[..., :P, :P]
    num = np.einsum("...ij,i,j->...", Kp, y, y)
    den = np.sqrt(np.sum(Kp * Kp, axis=(-1, -2))) * (y @ y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


class DeepObserver:
    r"""Record losses, outputs, kernels, NTK and alignment of S networks of one width.

    Parameters
    ----------
    net : :class:`~meanfield.deep.network.DeepNet`
    X_train : (P, D);  y_train : (P,)
    X_test : (Q, D) or None;  y_test : (Q,) or None
    kernels : bool
        Also compute Φ^ℓ, G^ℓ, K and the alignment (one extra forward/backward on the kernel points).
    kernel_points : int or None
        Kernels on the first ``n_k = min(n, kernel_points)`` points only (train first; None: all).
    seed_mean_kernels : bool
        Return Φ^ℓ and G^ℓ already averaged over the seeds (saves S× memory over a run).

    Calling it on a state returns a dict with leading axis S: ``risk_train`` (S,), ``risk_test`` (S,),
    ``f`` (S, n), and with kernels ``Phi`` (S, L, n_k, n_k) (or (L, n_k, n_k) seed means), ``G`` likewise,
    ``K`` (S, n_k, n_k), ``align`` (S,). (The ``risk_`` prefix lets :func:`meanfield.march.march` detect
    divergence.)
    """

    def __init__(self, net, X_train, y_train, X_test=None, y_test=None, kernels=True, kernel_points=None,
                 seed_mean_kernels=False):
        self.net = net
        self.P = X_train.shape[0]
        self.X = X_train if X_test is None else np.concatenate([X_train, X_test], axis=0)
        self.y_train = y_train
        self.y_test = y_test if X_test is not None else None
        self.kernels = kernels
        nk = self.X.shape[0] if kernel_points is None else min(self.X.shape[0], int(kernel_points))
        self.Xk = self.X[:nk]
        self.seed_mean = seed_mean_kernels
        self.Phi0 = (self.Xk @ self.Xk.T) / self.X.shape[1]
        # what the time loop requires finite at every record, and the target's scale (risk of f = 0)
        # for its divergence criterion (meanfield.health)
        self.available = ("risk_train",) + (("risk_test",) if self.y_test is not None and len(self.y_test) else ())
        ys = [np.asarray(y_train, dtype=np.float64)] + ([np.asarray(self.y_test, dtype=np.float64)]
                                                        if "risk_test" in self.available else [])
        self.scale = max(0.5 * float(np.mean(y * y)) for y in ys) if self.P else 0.0
        w = net.kernel_weights()
        # muP without branches has unit weights: keep the unweighted (historical) arithmetic there
        self.kernel_weights = None if np.allclose(w, 1.0, rtol=1e-12, atol=0) else w

    def __call__(self, theta) -> dict:
        P = self.P
        f = self.net.output(theta, self.X)
        out = {"f": f}
        r = self.y_train - f[:, :P]
        out["risk_train"] = 0.5 * np.mean(r * r, axis=-1)
        if self.y_test is not None and len(self.y_test):
            r = self.y_test - f[:, P:]
            out["risk_test"] = 0.5 * np.mean(r * r, axis=-1)
        else:
            out["risk_test"] = np.full(f.shape[0], np.nan)
        if self.kernels:
            fl = self.net.fields(theta, self.Xk)
            N = self.net.N
            Phi = np.stack([np.matmul(a, np.swapaxes(a, -1, -2)) / N for a in fl.phi], axis=1)
            G = np.stack([np.matmul(g, np.swapaxes(g, -1, -2)) / N for g in fl.g], axis=1)
            K = ntk_from_kernels(self.Phi0, Phi, G, self.kernel_weights)
            out.update(K=K, align=alignment(K, self.y_train[: self.Xk.shape[0]]))
            if self.seed_mean:
                out.update(Phi=Phi.mean(axis=0), G=G.mean(axis=0))
            else:
                out.update(Phi=Phi, G=G)
        return out
