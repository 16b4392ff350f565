r"""Activations: one registry, one definition per activation, one implementation per target.

Every activation the project knows is registered here once, and every module that needs one
(particle backends, DMFT and NTK solvers, the deep networks, config validation, plots) looks it
up here by name: an unknown name, or an operation the activation has no implementation of,
raises an error that says what is missing and what to do. Nothing dispatches on activation
names anywhere else, so an unknown name can never silently compute another activation.

Adding an activation
--------------------
1. **Define it once** (numpy, vectorised)::

       from meanfield_solvers.activations import register_activation
       register_activation(
           "softplus", fn=lambda z: np.logaddexp(0.0, z),
           d1=lambda z: special.expit(z), d2=lambda z: special.expit(z) * special.expit(-z),
           odd=False, smooth=True)

   That is enough for everything that evaluates σ, σ' and σ'' on arrays: config validation
   (``model.activation = "softplus"`` becomes valid), Monte Carlo expectations and finite-width
   training on the ``numpy`` backend, the sampled DMFT, and the NTK recursion (by Gauss–Hermite
   quadrature). Declare the properties that hold: ``odd`` (σ(-z) = -σ(z)), ``smooth``
   (σ ∈ C²; ``False`` when σ'' has a Dirac part, as at relu's kink: pathwise DMFT estimators
   then refuse it), ``homogeneous`` (σ(λz) = λσ(z) for λ > 0).
2. **Closed-form Gaussian expectations, optional**: ``mean_and_grad``, ``kernel_and_grad`` and
   ``dkernel`` (signatures in :class:`Activation`; ``None`` means "no closed form"). With the
   first two, analytic population expectations (``limit.expectation = 'analytic'``) work on the
   ``numpy`` backend; with ``kernel_and_grad`` and ``dkernel`` the NTK recursion uses them
   instead of quadrature. ``tests/test_activations.py`` checks every registered closed form
   against Monte Carlo.
3. **Fast implementations per target, optional**: a compiled backend declares its operations
   (:func:`register_operation`) and registers the built-in implementations next to the kernels
   that use them (``approx.py``, ``numba_backend.py``, ``cuda_backend.py``, ``cuda_flow.py``);
   at run time it asks :func:`implementation` once per call. For numba and CUDA kernels an
   implementation is the integer code of a kernel branch: add the branch, add its code to the
   operation's ``codes`` (registration refuses a code without one), then e.g.
   ``register_implementation("softplus", "numba", "act_d1", 4)`` — one ``act_d1`` branch gives
   the numba Monte Carlo kernels and the deep fused step at once. Declared operations:

   ======  ==========  ================================================================
   target  operation   implementation
   ======  ==========  ================================================================
   numba   act_d1      code of a branch of ``approx.act_d1``: (σ, σ') in the Monte Carlo
                       kernels and the deep fused step
   numba   pairwise    code of the closed-form pairwise kernels (analytic expectations)
   cuda    act         code of the σ, σ' device functions (Monte Carlo kernels)
   cuda    pairwise    code of the closed-form pairwise kernels, or ``"host"``
   cuda    mean        code of the closed-form mean in the resident population flow
   ======  ==========  ================================================================

   An activation without an implementation is refused by that backend with an error naming the
   activation, the target and the operation (use the ``numpy`` backend, or register one).

Registrations live in the process that makes them (a registry, not a plugin system): spawned
scan workers and the command line know the activations registered when ``meanfield_solvers`` is imported,
so an activation meant for them belongs in this module.

Built-in activations
--------------------
``linear`` σ(z) = z; ``relu`` max(z, 0); ``erf`` :math:`\sigma(z) = \mathrm{erf}(z/\sqrt2)`
(so that :math:`\sigma'(z) = \sqrt{2/\pi}\,e^{-z^2/2}`); ``tanh``.

Closed forms, for a centred bivariate Gaussian :math:`(u, v)` with :math:`\mathrm{Var}\,u = q_1`,
:math:`\mathrm{Var}\,v = q_2`, :math:`\mathrm{Cov}(u, v) = c`, and :math:`\cos\theta = c/\sqrt{q_1q_2}`:

=========  ===========================================================  ===============================================
activation :math:`K(q_1,q_2,c) = E[\sigma(u)\sigma(v)]`                   :math:`\dot K = E[\sigma'(u)\sigma'(v)]`
=========  ===========================================================  ===============================================
linear     :math:`c`                                                     :math:`1`
erf        :math:`\frac{2}{\pi}\arcsin\frac{c}{\sqrt{(1+q_1)(1+q_2)}}`    :math:`\frac{2}{\pi}\frac{1}{\sqrt{(1+q_1)(1+q_2)-c^2}}`
relu       :math:`\frac{1}{2\pi}\big(\sqrt{q_1q_2-c^2}+(\pi-\theta)c\big)`   :math:`\frac{\pi-\theta}{2\pi}`
tanh       none (Gauss–Hermite quadrature, Monte Carlo)                   none
=========  ===========================================================  ===============================================

with the partial derivatives used by gradient flows

* erf: :math:`\partial_c K = \frac{2}{\pi}\frac{1}{\sqrt{(1+q_1)(1+q_2)-c^2}}`,
  :math:`\partial_{q_1} K = -\frac{c}{2(1+q_1)}\partial_c K`;
* relu: :math:`\partial_c K = \frac{\pi-\theta}{2\pi}`,
  :math:`\partial_{q_1} K = \frac{\sqrt{q_1q_2-c^2}}{4\pi q_1}`;
* linear: :math:`\partial_c K = 1`, :math:`\partial_{q_1}K = 0`;

and the means :math:`m(q) = E\,\sigma(u)`, :math:`u\sim N(0,q)`: 0 for the odd activations
(linear, erf, tanh), :math:`\sqrt{q/(2\pi)}` for relu.

References: Williams (1997) for the arcsin kernel; Cho & Saul (2009) for the arc-cosine kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
from scipy import special

__all__ = [
    "Activation",
    "Operation",
    "ACTIVATIONS",
    "UnknownActivation",
    "MissingImplementation",
    "MissingClosedForm",
    "register_activation",
    "unregister_activation",
    "get_activation",
    "names",
    "closed_form",
    "closed_form_names",
    "register_operation",
    "register_implementation",
    "implementation",
    "implementations",
    "zero_mean",
]

#: closed-form pieces of an :class:`Activation` and what each one is
CLOSED_FORMS = {
    "mean_and_grad": "Gaussian mean E σ(u)",
    "kernel_and_grad": "Gaussian kernel E[σ(u)σ(v)]",
    "dkernel": "derivative kernel E[σ'(u)σ'(v)]",
}

_RESERVED = ("same",)  # config sentinel (task.teacher_activation = "same")


# ------------------------------------------------------------------ errors
class UnknownActivation(ValueError):
    """A name that is not registered; the message lists the registered ones."""

    def __init__(self, name, known):
        self.name, self.known = name, tuple(known)
        super().__init__(
            f"unknown activation {name!r}; registered activations: {', '.join(self.known)} "
            "(add one with meanfield_solvers.activations.register_activation)"
        )


class MissingImplementation(ValueError):
    """An activation has no implementation of an operation on a target (a backend)."""

    def __init__(self, activation, target, operation, message):
        self.activation, self.target, self.operation = activation, target, operation
        super().__init__(message)


class MissingClosedForm(MissingImplementation):
    """An activation has no closed form of a Gaussian expectation (``piece``)."""

    def __init__(self, activation, piece, target="closed form", operation=None, message=None):
        self.piece = piece
        what = CLOSED_FORMS[piece]
        via = f", which the {target} {operation} operation evaluates" if operation else ""
        have = [n for n in _ACTIVATIONS if getattr(_ACTIVATIONS[n], piece) is not None]
        message = message or (
            f"activation {activation!r} has no closed-form {what}{via} (closed forms exist for: "
            f"{', '.join(have) or 'none'}): use Monte Carlo expectations (limit.expectation = 'mc'), "
            "or Gauss–Hermite quadrature (meanfield_solvers.gaussian.gauss_hermite_kernel)"
        )
        super().__init__(activation, target, operation or piece, message)


# ------------------------------------------------------------------ definition
@dataclass(frozen=True, kw_only=True)
class Activation:
    r"""One activation: σ and its derivatives on numpy arrays, declared properties, closed forms.

    Parameters
    ----------
    name : str
    fn, d1, d2 : callable
        :math:`\sigma`, :math:`\sigma'`, :math:`\sigma''`, elementwise on numpy arrays (any
        shape, float32 or float64). At a kink, ``d2`` returns the regular part (0 for relu)
        and ``smooth`` is False.
    odd : bool
        :math:`\sigma(-z) = -\sigma(z)` (antithetic initialisations are then exact, and
        :math:`E\,\sigma(u) = 0`).
    smooth : bool
        :math:`\sigma\in C^2`. False when :math:`\sigma''` has a singular (Dirac) part, as relu's
        :math:`\delta(z)`: pathwise (tangent) estimators that use ``d2`` then drop it, and the
        sampled DMFT refuses them.
    homogeneous : bool
        Positively homogeneous of degree 1, :math:`\sigma(\lambda z) = \lambda\sigma(z)` for
        :math:`\lambda > 0` (a neuron :math:`(a, w)` is then identified only up to
        :math:`(a/\lambda, \lambda w)`).
    mean_and_grad : callable or None
        ``q -> (m, dm/dq)`` with :math:`m(q) = E\,\sigma(u)`, :math:`u\sim N(0, q)`, elementwise.
    kernel_and_grad : callable or None
        ``(q1, q2, c) -> (K, dK/dq1, dK/dc)`` with :math:`K = E[\sigma(u)\sigma(v)]` for the
        centred Gaussian pair of variances q1, q2 and covariance c (broadcast, elementwise;
        :math:`\partial_{q_2}K` follows by symmetry).
    dkernel : callable or None
        ``(q1, q2, c) -> E[σ'(u)σ'(v)]`` (the derivative kernel of the NTK recursion).
    doc : str
        One line: the formula, e.g. ``"erf(z/sqrt 2)"``.
    kernel_error : callable or None
        ``eps -> r``: the closed-form kernel's rounding error is at most
        :math:`r\,\lVert\sigma(u)\rVert\,\lVert\sigma(v)\rVert` in a precision of unit roundoff
        ``eps`` (None: :math:`16\varepsilon`, a few correctly rounded operations). Forms that
        take a square root of a difference lose half the digits (relu: :math:`\sqrt{q_1q_2-c^2}`
        and :math:`\arccos\rho` of (nearly) parallel neurons): see :func:`kernel_rounding`.

    ``None`` means "no closed form": callers then use quadrature or Monte Carlo, or refuse with
    a :class:`MissingClosedForm` error.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    d1: Callable[[np.ndarray], np.ndarray]
    d2: Callable[[np.ndarray], np.ndarray]
    odd: bool
    smooth: bool = True
    homogeneous: bool = False
    mean_and_grad: Callable | None = None
    kernel_and_grad: Callable | None = None
    dkernel: Callable | None = None
    doc: str = field(default="", compare=False)
    kernel_error: Callable | None = field(default=None, compare=False)

    def kernel_rounding(self, eps: float) -> float:
        """Relative rounding-error bound of the closed-form kernel (see ``kernel_error``)."""
        return 16.0 * eps if self.kernel_error is None else float(self.kernel_error(eps))

    def __call__(self, z):
        return self.fn(z)

    @property
    def closed_form(self) -> bool:
        """Whether analytic population expectations are possible (closed-form mean and kernel)."""
        return self.mean_and_grad is not None and self.kernel_and_grad is not None


@dataclass(frozen=True)
class Operation:
    """An operation a target (a compiled backend) implements per activation.

    ``codes`` (optional) maps every implementation the target's kernels know to a description:
    :func:`register_implementation` refuses anything else, so a code without a kernel branch
    cannot be registered. ``needs`` names the closed-form pieces the operation evaluates: an
    activation without them gets a :class:`MissingClosedForm` error.
    """

    target: str
    name: str
    doc: str
    codes: Mapping[Any, str] | None = None
    needs: tuple = ()


_ACTIVATIONS: dict[str, Activation] = {}
_OPERATIONS: dict[tuple[str, str], Operation] = {}
_IMPLEMENTATIONS: dict[tuple[str, str, str], Any] = {}

#: name -> :class:`Activation`, in registration order (a read-only live view of the registry)
ACTIVATIONS: Mapping[str, Activation] = MappingProxyType(_ACTIVATIONS)


# ------------------------------------------------------------------ registry
def register_activation(name: str, fn, d1, d2, *, odd: bool, smooth: bool = True,
                        homogeneous: bool = False, mean_and_grad=None, kernel_and_grad=None,
                        dkernel=None, doc: str = "", replace: bool = False, kernel_error=None) -> Activation:
    """Define an activation once and make it known to every module (see the module docstring).

    Returns the :class:`Activation`. Registering a name twice is an error unless ``replace``
    (then the activation's fast implementations are dropped: they belonged to the old one).
    """
    if not isinstance(name, str) or not name.isidentifier() or name in _RESERVED:
        raise ValueError(f"an activation name must be an identifier other than {_RESERVED}, got {name!r}")
    for what, f in (("fn", fn), ("d1", d1), ("d2", d2)):
        if not callable(f):
            raise TypeError(f"activation {name!r}: {what} must be callable, got {f!r}")
    for piece, f in (("mean_and_grad", mean_and_grad), ("kernel_and_grad", kernel_and_grad),
                     ("dkernel", dkernel)):
        if f is not None and not callable(f):
            raise TypeError(f"activation {name!r}: {piece} must be callable or None, got {f!r}")
    if name in _ACTIVATIONS:
        if not replace:
            raise ValueError(f"activation {name!r} is already registered (pass replace=True to redefine it)")
        unregister_activation(name)
    act = Activation(name=name, fn=fn, d1=d1, d2=d2, odd=bool(odd), smooth=bool(smooth),
                     homogeneous=bool(homogeneous), mean_and_grad=mean_and_grad,
                     kernel_and_grad=kernel_and_grad, dkernel=dkernel, doc=doc, kernel_error=kernel_error)
    _ACTIVATIONS[name] = act
    return act


def unregister_activation(name: str) -> None:
    """Remove an activation and all its fast implementations (e.g. after a test)."""
    get_activation(name)
    del _ACTIVATIONS[name]
    for key in [k for k in _IMPLEMENTATIONS if k[0] == name]:
        del _IMPLEMENTATIONS[key]


def get_activation(name: str) -> Activation:
    """The registered activation ``name``; :class:`UnknownActivation` (listing them) if none."""
    try:
        return _ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise UnknownActivation(name, _ACTIVATIONS) from None


def names() -> tuple:
    """Registered activation names, in registration order."""
    return tuple(_ACTIVATIONS)


def closed_form_names() -> tuple:
    """Names of the activations with closed-form mean and kernel (analytic expectations)."""
    return tuple(n for n, a in _ACTIVATIONS.items() if a.closed_form)


def closed_form(name: str, piece: str) -> Callable:
    """The closed-form ``piece`` (a key of :data:`CLOSED_FORMS`) of activation ``name``.

    Raises :class:`MissingClosedForm` when the activation has none.
    """
    if piece not in CLOSED_FORMS:
        raise ValueError(f"unknown closed-form piece {piece!r}; one of {list(CLOSED_FORMS)}")
    f = getattr(get_activation(name), piece)
    if f is None:
        raise MissingClosedForm(name, piece)
    return f


def register_operation(target: str, name: str, doc: str, *, codes: Mapping | None = None,
                       needs: tuple = ()) -> Operation:
    """Declare an operation of a target (called by the backend module that implements it).

    Re-declaring replaces the declaration (a module reload); implementations already registered
    must still be valid codes.
    """
    for piece in needs:
        if piece not in CLOSED_FORMS:
            raise ValueError(f"operation {target}.{name}: unknown closed-form piece {piece!r}")
    op = Operation(target, name, doc, None if codes is None else MappingProxyType(dict(codes)), tuple(needs))
    if codes is not None:
        bad = [k for k, v in _IMPLEMENTATIONS.items() if k[1:] == (target, name) and v not in op.codes]
        if bad:
            raise ValueError(f"operation {target}.{name}: registered implementations {bad} are not among "
                             f"its codes {dict(op.codes)}")
    _OPERATIONS[(target, name)] = op
    return op


def _operation(target, operation) -> Operation:
    try:
        return _OPERATIONS[(target, operation)]
    except KeyError:
        known = sorted(f"{t}.{o}" for t, o in _OPERATIONS)
        raise ValueError(f"no operation {operation!r} is declared for target {target!r} "
                         f"(declared: {', '.join(known) or 'none'})") from None


def register_implementation(activation: str, target: str, operation: str, impl, *,
                            replace: bool = False) -> None:
    """Register the fast implementation ``impl`` of (activation, target, operation).

    The activation must be registered and the operation declared; if the operation lists
    ``codes``, ``impl`` must be one of them (a kernel branch that exists).
    """
    get_activation(activation)
    op = _operation(target, operation)
    if op.codes is not None and impl not in op.codes:
        raise ValueError(
            f"{target} {operation} has no kernel code {impl!r} (known: "
            + ", ".join(f"{k!r} = {v}" for k, v in op.codes.items())
            + f"): add the branch to the {target} kernels and its code to the operation first"
        )
    key = (activation, target, operation)
    if key in _IMPLEMENTATIONS and _IMPLEMENTATIONS[key] != impl and not replace:
        raise ValueError(f"activation {activation!r} already has a {target} implementation of {operation} "
                         f"({_IMPLEMENTATIONS[key]!r}); pass replace=True to change it")
    _IMPLEMENTATIONS[key] = impl


def implementation(activation: str, target: str, operation: str):
    """The implementation of ``operation`` for ``activation`` on ``target``.

    Raises
    ------
    UnknownActivation
        ``activation`` is not registered.
    MissingClosedForm
        The operation evaluates a closed form the activation does not have.
    MissingImplementation
        The target has no implementation for this activation (the message says what to do).
    """
    act = get_activation(activation)
    op = _operation(target, operation)
    try:
        return _IMPLEMENTATIONS[(activation, target, operation)]
    except KeyError:
        pass
    for piece in op.needs:
        if getattr(act, piece) is None:
            raise MissingClosedForm(activation, piece, target, operation)
    raise MissingImplementation(
        activation, target, operation,
        f"activation {activation!r} has no {target} implementation of {operation} ({op.doc}): "
        f"use run.backend = 'numpy', or register one with "
        f"meanfield_solvers.activations.register_implementation({activation!r}, {target!r}, {operation!r}, ...)",
    )


def implementations(activation: str) -> dict:
    """``{(target, operation): implementation}`` registered for ``activation``."""
    get_activation(activation)
    return {k[1:]: v for k, v in _IMPLEMENTATIONS.items() if k[0] == activation}


# ------------------------------------------------------------------ built-in definitions
_SQRT2 = np.sqrt(2.0)
_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_TWO_OVER_PI = 2.0 / np.pi


def zero_mean(q):
    r"""``(0, 0)``: :math:`E\,\sigma(u)` and its q-derivative for an odd activation."""
    q = np.asarray(q, dtype=float)
    return np.zeros_like(q), np.zeros_like(q)


def _broadcast(q1, q2, c, dtype=None):
    return np.broadcast_arrays(*(np.asarray(v, dtype=dtype) for v in (q1, q2, c)))


# linear
def _linear_kernel_and_grad(q1, q2, c):
    q1, q2, c = _broadcast(q1, q2, c)
    return c.copy(), np.zeros_like(c), np.ones_like(c)


def _linear_dkernel(q1, q2, c):
    q1, q2, c = _broadcast(q1, q2, c, float)
    return np.ones_like(c)


# relu
def _relu(z):
    return np.maximum(z, 0.0)


def _relu_d1(z):
    return (z > 0).astype(np.result_type(z, np.float32))


def _relu_d2(z):
    return np.zeros_like(z)


def _relu_mean_and_grad(q):
    q = np.asarray(q, dtype=float)
    s = np.sqrt(np.maximum(q, 0.0) / (2.0 * np.pi))
    with np.errstate(divide="ignore"):
        dm = np.where(q > 0, 1.0 / (4.0 * np.pi * np.maximum(s, 1e-300)), 0.0)
    return s, dm


def _relu_kernel_and_grad(q1, q2, c):
    """Arc-cosine kernel. At q1 = 0 the kernel is 0 and its q1-derivative, unbounded there, is
    returned as 0 (only reached by an exactly vanishing weight vector)."""
    q1, q2, c = _broadcast(q1, q2, c)
    qq = q1 * q2
    det = np.sqrt(np.maximum(qq - c * c, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(qq > 0, c / np.sqrt(qq), 0.0)
        theta = np.arccos(np.clip(rho, -1.0, 1.0))
        k = (det + (np.pi - theta) * c) / (2.0 * np.pi)
        dq1 = np.where(q1 > 0, det / (4.0 * np.pi * q1), 0.0)
    return k, dq1, (np.pi - theta) / (2.0 * np.pi)


def _relu_dkernel(q1, q2, c):
    q1, q2, c = _broadcast(q1, q2, c, float)
    qq = q1 * q2
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(qq > 0, c / np.sqrt(qq), 0.0)
    return (np.pi - np.arccos(np.clip(rho, -1.0, 1.0))) / (2.0 * np.pi)


# erf(z / sqrt 2)
def _erf(z):
    return special.erf(z / _SQRT2)


def _erf_d1(z):
    return _SQRT_2_OVER_PI * np.exp(-0.5 * z * z)


def _erf_d2(z):
    return -z * _SQRT_2_OVER_PI * np.exp(-0.5 * z * z)


def _erf_kernel_and_grad(q1, q2, c):
    q1, q2, c = _broadcast(q1, q2, c)
    p1 = 1.0 + q1
    det = np.maximum(p1 * (1.0 + q2) - c * c, np.finfo(c.dtype).tiny)
    dc = _TWO_OVER_PI / np.sqrt(det)
    s = np.clip(c / np.sqrt(p1 * (1.0 + q2)), -1.0, 1.0)
    k = _TWO_OVER_PI * np.arcsin(s)
    return k, -0.5 * c / p1 * dc, dc


def _erf_dkernel(q1, q2, c):
    q1, q2, c = _broadcast(q1, q2, c, float)
    det = np.maximum((1.0 + q1) * (1.0 + q2) - c * c, np.finfo(float).tiny)
    return _TWO_OVER_PI / np.sqrt(det)


# tanh
def _tanh_d1(z):
    t = np.tanh(z)
    return 1.0 - t * t


def _tanh_d2(z):
    t = np.tanh(z)
    return -2.0 * t * (1.0 - t * t)


register_activation("linear", lambda z: z, np.ones_like, np.zeros_like, odd=True, homogeneous=True,
                    mean_and_grad=zero_mean, kernel_and_grad=_linear_kernel_and_grad,
                    dkernel=_linear_dkernel, doc="z")
register_activation("relu", _relu, _relu_d1, _relu_d2, odd=False, smooth=False, homogeneous=True,
                    mean_and_grad=_relu_mean_and_grad, kernel_and_grad=_relu_kernel_and_grad,
                    dkernel=_relu_dkernel, doc="max(z, 0)",
                    # sqrt(q1 q2 - c^2) and arccos(rho) of parallel neurons: each term off by
                    # sqrt(2 eps) sqrt(q1 q2) / (2 pi), i.e. 2 sqrt(2 eps)/pi of ||relu(u)|| ||relu(v)||
                    kernel_error=lambda eps: 2.0 * np.sqrt(2.0 * eps) / np.pi)
register_activation("erf", _erf, _erf_d1, _erf_d2, odd=True, mean_and_grad=zero_mean,
                    kernel_and_grad=_erf_kernel_and_grad, dkernel=_erf_dkernel, doc="erf(z/sqrt 2)")
register_activation("tanh", np.tanh, _tanh_d1, _tanh_d2, odd=True, mean_and_grad=zero_mean, doc="tanh z")
