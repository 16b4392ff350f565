r"""Finite-width deep networks, batched over seeds, with hand-written backpropagation.

Network (docs/dmft.md §1)
--------------------
Inputs :math:`x_\mu\in\mathbb R^D`, :math:`L` hidden layers of width :math:`N`, activation
:math:`\phi`, all weights iid :math:`N(0,1)` at initialisation. A *parametrisation* fixes one forward
scale :math:`s_\ell` and one learning-rate multiplier :math:`c_\ell` per weight group
:math:`\ell = 0..L` (:math:`W^0\in\mathbb R^{N\times D}`, :math:`W^\ell\in\mathbb R^{N\times N}`,
readout :math:`w = W^L\in\mathbb R^N`):

.. math::
    h^1 = s_0\,W^0 x,\qquad h^{\ell+1} = s_\ell\,W^\ell\phi(h^\ell)\quad(\ell=1..L-1),\qquad
    f = s_L\,w\cdot\phi(h^L),

    \frac{dW^\ell}{dt} = -c_\ell\,\nabla_{W^\ell}\hat L,\qquad
    \hat L = \frac1P\sum_\mu\tfrac12(y_\mu - f_\mu)^2 .

muP / mean field with richness :math:`\gamma_0` (:class:`MuP`): :math:`s_0 = D^{-1/2}`,
:math:`s_\ell = N^{-1/2}`, :math:`s_L = 1/(\gamma_0 N)`, :math:`c_\ell = \gamma_0^2 N` for every group.
One step of size :math:`\eta` advances time :math:`\eta`. The NTK and standard parametrisations and
the residual options are in :mod:`meanfield.deep.parametrisation`.

Backpropagation (no autodiff)
-----------------------------
With :math:`a^0 = x`, :math:`a^\ell = \phi(h^\ell)`, :math:`e^\ell = \partial f/\partial h^\ell`:

.. math::
    e^L = s_L\,w\odot\phi'(h^L),\qquad e^\ell = \phi'(h^\ell)\odot s_\ell\,(W^{\ell\top}e^{\ell+1}),

    \partial f/\partial W^\ell = s_\ell\,e^{\ell+1}a^{\ell\top},\qquad \partial f/\partial w = s_L\,a^L,

so the velocity is :math:`\dot W^\ell = \frac{c_\ell s_\ell}{P}\sum_\mu \Delta_\mu e^{\ell+1}_\mu
a^{\ell\top}_\mu` with :math:`\Delta = y - f`. The O(1) backward fields of docs/dmft.md §1.1 are
:math:`g^\ell = \gamma_0 N\,e^\ell` (``g_scale`` of the parametrisation), i.e. :math:`g^L = \phi'(h^L)\odot w`,
:math:`g^\ell = \phi'(h^\ell)\odot W^{\ell\top} g^{\ell+1}/\sqrt N`. The NTK of the flow
(:math:`\dot f_\mu = \frac1P\sum_\nu K_{\mu\nu}\Delta_\nu`) is, for any parametrisation,

.. math:: K = \sum_{\ell=0}^{L} c_\ell s_\ell^2\,(E^{\ell+1}E^{\ell+1\top})\odot(A^\ell A^{\ell\top}),
          \qquad E^{L+1}\equiv 1,

which in muP is exactly :math:`\sum_\ell G^{\ell+1}\odot\Phi^\ell` with :math:`\Phi^\ell = A^\ell A^{\ell\top}/N`,
:math:`G^\ell = g^\ell g^{\ell\top}/N`, :math:`\Phi^0 = XX^\top/D`, :math:`G^{L+1}\equiv1` (docs/dmft.md §1.1).

Residual variant (``model.residual``): a parametrisation with ``residual = True`` gives
:math:`h^{\ell+1} = h^\ell + s_\ell W^\ell\phi(h^\ell)` (ℓ = 1..L-1) and
:math:`e^\ell = e^{\ell+1} + \phi'(h^\ell)\odot s_\ell W^{\ell\top}e^{\ell+1}`; the weight gradients and
the NTK formula are unchanged. The branch multiplier :math:`\beta/L^\kappa` (depth-muP: κ = ½) is a
factor of :math:`s_\ell` (not of the initial variance), so the rates :math:`c_\ell` are unchanged.

Depth 1 *is* the two-layer model
--------------------------------
For :math:`L = 1` nothing here is re-implemented: :class:`DeepNet` dispatches the dynamics to
:class:`meanfield_solvers.particles.TwoLayer` (the particle code of the two-layer mean-field flow) with

.. math::
    a_i = w^1_i,\qquad w_i = s_0 W^0_i\;(= W^0_i/\sqrt D),\qquad \alpha = s_L N\;(= 1/\gamma_0),

    \lambda_a = c_L\alpha^2/N\;(=1),\qquad \lambda_w = c_0 s_0^2\alpha^2/N\;(= 1/D),

because TwoLayer moves neurons by :math:`\dot\theta = (N/\alpha^2)\Lambda(-\nabla_\theta\hat L)` and
:math:`w = s_0W^0` turns :math:`-c_0\nabla_{W^0}` into :math:`-c_0 s_0^2\nabla_w`. The state of a
depth-1 network is then a TwoLayer neuron array ``(S, N, 1 + D)`` with rows ``[a_i, w_i]``.

State layout
------------
Depth :math:`L\ge2`: one contiguous ``(S, n_params)`` array per width, groups in the order
``W^0 (N·D), W^1 .. W^{L-1} (N·N each), w (N)``, each row-major; :meth:`DeepNet.weights` returns
views ``[(S,N,D), (S,N,N), ..., (S,N)]``. The leading axis S batches independent networks (seeds):
every contraction is one batched BLAS ``matmul`` over ``(S, ...)`` — there is no Python loop over
seeds. Feature arrays are ``(S, P, N)`` (points × neurons).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from meanfield_solvers.gaussian import get_activation
from meanfield_solvers.particles import TwoLayer, get_backend, mc_risk_velocity
from meanfield_solvers.threads import blas_threads

from .parametrisation import PARAMETRISATIONS, LayerScales, MuP, make_parametrisation  # noqa: F401 (re-exported)

__all__ = [
    "DeepNet",
    "Fields",
    "init_weights",
    "blas_limit",
]

def blas_limit(n):
    """BLAS limited to ``n`` threads (see :func:`meanfield_solvers.threads.blas_threads` for why one is the default)."""
    return blas_threads(n)


def _limited(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with blas_limit(self.blas_threads):
            return method(self, *args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
@dataclass
class Fields:
    r"""Forward and backward fields on a set of points.

    Attributes
    ----------
    phi : list of L arrays (S, P, N)
        :math:`\phi(h^\ell)`, ℓ = 1..L.
    g : list of L arrays (S, P, N)
        :math:`g^\ell = \text{g\_scale}\cdot\partial f/\partial h^\ell`, ℓ = 1..L.
    f : (S, P)
        Outputs.
    """

    phi: list
    g: list
    f: np.ndarray


def init_weights(rngs, L: int, D: int, N: int, dtype=np.float64) -> list:
    r"""Draw iid :math:`N(0,1)` weights ``[W^0 (S,N,D), W^1..W^{L-1} (S,N,N), w (S,N)]``.

    ``rngs[s][l]`` is the generator of seed ``s`` and weight group ``l`` (independent streams per
    (seed, layer), docs/dmft.md §8), so networks of different depths/widths/seeds are independent and any
    single seed can be reproduced alone.
    """
    shapes = [(N, D)] + [(N, N)] * (L - 1) + [(N,)]
    return [np.stack([np.asarray(rngs[s][l].standard_normal(shp), dtype=dtype) for s in range(len(rngs))])
            for l, shp in enumerate(shapes)]


class DeepNet:
    r"""An ensemble of S networks of one width, depth and parametrisation (state lives outside).

    Parameters
    ----------
    activation : str, a registered activation (:mod:`meanfield_solvers.activations`; erf means erf(z/√2))
    D : int, input dimension
    N : int, width of every hidden layer
    L : int, number of hidden layers (≥ 1; L = 1 dispatches to :class:`meanfield_solvers.particles.TwoLayer`)
    param : parametrisation object with ``scales(L, D, N) -> LayerScales`` (e.g. :class:`MuP`)
    backend : particle backend name or object
        Depth 1: the TwoLayer particle backend. Depth ≥ 2: ``'numba'`` computes the training
        velocity with the fused kernel of :mod:`meanfield.deep._fused` (one parallel region per
        step, all cores; equal to the numpy path to rounding); any other backend uses numpy.
    blas_threads : int or None
        BLAS threads inside the network's methods (default 1, see :func:`blas_limit`; None: leave as is).
    """

    def __init__(self, activation: str, D: int, N: int, L: int, param, backend="numpy", blas_threads=1):
        self.blas_threads = blas_threads
        if L < 1:
            raise ValueError(f"depth L must be >= 1, got {L}")
        self.activation, self.D, self.N, self.L, self.param = activation, int(D), int(N), int(L), param
        self.act = get_activation(activation)
        self.sc = param.scales(self.L, self.D, self.N)
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        if self.L == 1:
            if self.sc.residual:
                raise ValueError("a residual network needs L >= 2")
            s0, sL = self.sc.forward
            c0, cL = self.sc.lr
            alpha = sL * self.N
            self.two_layer = TwoLayer(activation=activation, d=self.D, alpha=alpha, bias=False,
                                      lr_a=cL * alpha * alpha / self.N, lr_w=c0 * s0 * s0 * alpha * alpha / self.N,
                                      lr_b=0.0)
        else:
            self.two_layer = None
        self.fused_code = None
        if self.L >= 2 and getattr(self.backend, "name", None) == "numba":
            from ._fused import activation_code

            self.fused_code = activation_code(activation)  # refuses an activation without numba code
        sizes = [self.N * self.D] + [self.N * self.N] * (self.L - 1) + [self.N]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    # ------------------------------------------------------------------ state layout
    @property
    def n_params(self) -> int:
        """Number of weights of one network."""
        return int(self.offsets[-1])

    def state_shape(self, S: int) -> tuple:
        """Shape of the state of S networks: (S, N, 1+D) at depth 1, (S, n_params) otherwise."""
        return (S, self.N, 1 + self.D) if self.L == 1 else (S, self.n_params)

    def weights(self, theta) -> list:
        r"""Per-group weights ``[W^0 (S,N,D), W^1.. (S,N,N), w (S,N)]`` in the deep convention.

        Views into ``theta`` for L ≥ 2; for L = 1 new arrays :math:`W^0 = w/s_0`, :math:`w^1 = a`.
        """
        if self.L == 1:
            a, w, _ = self.two_layer.split(theta)
            return [w / self.sc.forward[0], a.copy()]
        S = theta.shape[0]
        out = []
        for l in range(self.L + 1):
            blk = theta[:, self.offsets[l]: self.offsets[l + 1]]
            if l == 0:
                out.append(blk.reshape(S, self.N, self.D))
            elif l < self.L:
                out.append(blk.reshape(S, self.N, self.N))
            else:
                out.append(blk)
        return out

    def pack(self, weights) -> np.ndarray:
        """Inverse of :meth:`weights`: a new state array from per-group weights."""
        S = weights[0].shape[0]
        if self.L == 1:
            theta = np.empty((S, self.N, 1 + self.D), dtype=weights[0].dtype)
            theta[..., 0] = weights[1]
            theta[..., 1:] = weights[0] * self.sc.forward[0]
            return theta
        theta = np.empty((S, self.n_params), dtype=weights[0].dtype)
        for l, W in enumerate(weights):
            theta[:, self.offsets[l]: self.offsets[l + 1]] = W.reshape(S, -1)
        return theta

    def init(self, rngs, dtype=np.float64) -> np.ndarray:
        """Initial state of ``len(rngs)`` networks (see :func:`init_weights`)."""
        return self.pack(init_weights(rngs, self.L, self.D, self.N, dtype))

    # ------------------------------------------------------------------ forward / backward
    def _forward_weights(self, Ws, X):
        """Pre-activations h (list of (S,P,N)), activations a (list, a[0] = X) and f (S,P)."""
        s = self.sc.forward
        res = self.sc.residual
        h = [None, s[0] * np.matmul(X, np.swapaxes(Ws[0], -1, -2))]
        a = [X, self.act.fn(h[1])]
        for l in range(1, self.L):
            z = np.matmul(a[l], np.swapaxes(Ws[l], -1, -2))
            z *= s[l]
            if res:
                z += h[l]
            h.append(z)
            a.append(self.act.fn(z))
        f = s[self.L] * np.einsum("spn,sn->sp", a[self.L], Ws[self.L])
        return h, a, f

    def _backward_weights(self, Ws, h):
        r"""Backward fields :math:`e^\ell = \partial f/\partial h^\ell`, list index ℓ = 1..L (index 0 None)."""
        s = self.sc.forward
        res = self.sc.residual
        e = [None] * (self.L + 1)
        e[self.L] = (s[self.L] * Ws[self.L])[:, None, :] * self.act.d1(h[self.L])
        for l in range(self.L - 1, 0, -1):
            back = np.matmul(e[l + 1], Ws[l])
            back *= s[l]
            back *= self.act.d1(h[l])
            if res:
                back += e[l + 1]
            e[l] = back
        return e

    @_limited
    def preactivations(self, theta, X) -> list:
        r"""Pre-activations :math:`h^1..h^L` on X, a list of L arrays (S, P, N) (any depth)."""
        return self._forward_weights(self.weights(theta), X)[0][1:]

    @_limited
    def output(self, theta, X) -> np.ndarray:
        """Outputs f of shape (S, P) on X of shape (P, D) or (S, P, D)."""
        if self.L == 1:
            return self.two_layer.output(self.backend, theta, X)
        return self._forward_weights(self.weights(theta), X)[2]

    def loss(self, theta, X, y) -> np.ndarray:
        r""":math:`\hat L = \frac1P\sum_\mu\frac12(y_\mu-f_\mu)^2`, shape (S,)."""
        r = y - self.output(theta, X)
        return 0.5 * np.mean(r * r, axis=-1)

    @_limited
    def velocity(self, theta, X, y, scale=1.0):
        r"""Training loss and flow velocity :math:`-c_\ell\nabla_{W^\ell}\hat L` (same layout as theta).

        Parameters
        ----------
        theta : state of S networks
        X : (P, D) shared, or (S, P, D) per network (minibatches)
        y : (P,) or (S, P)
        scale : float
            Return ``scale * v`` (folded into the small factors of the weight-gradient products, which
            saves a pass over the N×N blocks; a GD step uses ``scale = lr``).

        Returns
        -------
        loss : (S,)
        v : array like ``theta``
        """
        if self.L == 1:
            loss, v = mc_risk_velocity(self.two_layer, self.backend, theta, X, y, "square")
            if scale != 1.0:
                v *= scale
            return loss, v
        if self.fused_code is not None:
            return self._fused_velocity(theta, X, y, scale)
        v = np.empty_like(theta)
        loss = self._velocity_into(self.weights(theta), X, y, self.weights(v), scale)
        return loss, v

    def update(self, theta, X, y, lr, out=None):
        r"""One plain step: loss at ``theta`` (S,) and the new state :math:`\theta + \eta v`.

        The same arithmetic as ``velocity(theta, X, y, scale=lr)`` followed by ``v += theta`` (bitwise); the fused
        numba kernel does the addition group by group while each block is still in cache, which saves a pass
        over the whole state (S N^2 L doubles) per step (README "Benchmark" paragraph of the residual section).

        out : None (a new array) or an array shaped like ``theta``, not ``theta`` itself, that the new state is
            written into (every entry is overwritten); at depth 1 it is ignored (a new array).
        """
        if out is not None and (out is theta or out.shape != theta.shape or out.dtype != theta.dtype
                                or not out.flags.c_contiguous):
            raise ValueError("out must be a separate C-contiguous array with theta's shape and dtype")
        if self.L > 1 and self.fused_code is not None:
            with blas_limit(self.blas_threads):
                return self._fused_velocity(theta, X, y, lr, update=True, out=out)
        if self.L == 1 or out is None:
            loss, v = self.velocity(theta, X, y, scale=lr)
        else:
            with blas_limit(self.blas_threads):
                v = out
                loss = self._velocity_into(self.weights(theta), X, y, self.weights(v), lr)
        v += theta
        return loss, v

    def _fused_velocity(self, theta, X, y, scale, update=False, out=None):
        from ._fused import fused_velocity

        P = X.shape[-2]
        s, c = self.sc.forward, self.sc.lr
        vcoef = [scale * c[l] * s[l] / P for l in range(self.L + 1)]
        X3 = X if X.ndim == 3 else X[None]
        y2 = y if y.ndim == 2 else y[None]
        return fused_velocity(self.fused_code, self.L, self.N, self.D, self.sc.residual,
                              np.ascontiguousarray(theta), self.offsets, X3, y2, s, vcoef, update=update, out=out)

    @_limited
    def velocity_weights(self, weights, X, y):
        r"""Generic backprop velocity on per-group weights, any depth (L = 1 included).

        The trainer uses :meth:`velocity` (which at L = 1 is the TwoLayer code); this depth-agnostic
        version lets tests check that the two agree, i.e. that the depth-1 mapping is exact.

        Returns
        -------
        loss : (S,)
        v : list of arrays shaped like ``weights``
        """
        out = [np.empty_like(W) for W in weights]
        loss = self._velocity_into(weights, X, y, out)
        return loss, out

    def _velocity_into(self, Ws, X, y, vs, scale=1.0):
        h, a, f = self._forward_weights(Ws, X)
        delta = y - f
        loss = 0.5 * np.mean(delta * delta, axis=-1)
        e = self._backward_weights(Ws, h)
        P = X.shape[-2]
        s, c = self.sc.forward, self.sc.lr
        dP = delta[:, :, None]
        for l in range(self.L):
            # dW^l = (c_l s_l / P) sum_mu Delta_mu e^{l+1}_mu a^l_mu^T : (S,N,P) @ (S,P,N or D);
            # the scalar goes on the small (S,P,N) factor, not on the (S,N,N) product
            left = e[l + 1] * (dP * (scale * c[l] * s[l] / P))
            np.matmul(np.swapaxes(left, -1, -2), a[l] if a[l].ndim == 3 else a[l][None], out=vs[l])
        np.einsum("sp,spn->sn", delta * (scale * c[self.L] * s[self.L] / P), a[self.L], out=vs[self.L])
        return loss

    @_limited
    def fields(self, theta, X) -> Fields:
        r"""Forward activations :math:`\phi(h^\ell)` and backward fields :math:`g^\ell` on X (P, D).

        Any depth; used for the kernel observables. At depth 1 the TwoLayer neurons are read through
        the mapping of the module docstring.
        """
        Ws = self.weights(theta)
        h, a, f = self._forward_weights(Ws, X)
        e = self._backward_weights(Ws, h)
        gs = self.sc.g_scale
        return Fields(phi=a[1:], g=[gs * e[l] for l in range(1, self.L + 1)], f=f)

    def kernel_weights(self) -> np.ndarray:
        r"""Factors :math:`\omega_\ell` with :math:`K = \sum_{\ell=0}^L\omega_\ell\,G^{\ell+1}\odot\Phi^\ell` in terms
        of the recorded kernels (:math:`\Phi^\ell = a^\ell a^{\ell\top}/\text{fan}_\ell`, :math:`G^\ell = g g^\top/N`,
        :math:`g = \text{g\_scale}\cdot e`): :math:`\omega_\ell = c_\ell s_\ell^2\,\text{fan}_\ell N/\text{g\_scale}^2`
        (ℓ < L), :math:`\omega_L = c_L s_L^2 N`. muP: all 1 (residual blocks :math:`b^2`); shape (L+1,)."""
        s, c, gs = self.sc.forward, self.sc.lr, self.sc.g_scale
        fan = [self.D] + [self.N] * self.L
        w = [c[l] * s[l] ** 2 * fan[l] * self.N / gs ** 2 for l in range(self.L)]
        return np.asarray(w + [c[self.L] * s[self.L] ** 2 * self.N])

    @_limited
    def ntk(self, theta, X) -> np.ndarray:
        r"""The empirical NTK :math:`K_{\mu\nu} = \sum_\theta c_\theta\,\partial_\theta f_\mu\,\partial_\theta f_\nu`
        from the parametrisation's scales (independent of ``g_scale``), shape (S, P, P)."""
        Ws = self.weights(theta)
        h, a, f = self._forward_weights(Ws, X)
        e = self._backward_weights(Ws, h)
        s, c = self.sc.forward, self.sc.lr
        K = c[self.L] * s[self.L] ** 2 * gram(a[self.L])
        for l in range(self.L):
            al = a[l] if a[l].ndim == 3 else a[l][None]
            K = K + c[l] * s[l] ** 2 * gram(e[l + 1]) * gram(al)
        return K


def gram(A) -> np.ndarray:
    """``A @ A^T`` over the last axis: (..., P, n) -> (..., P, P)."""
    return np.matmul(A, np.swapaxes(A, -1, -2))
