r"""Branch-free, vectorisable approximations of asin, erf, exp and tanh for numba kernels.

Why: numba ≥ 0.62 ships no SVML, so ``math.asin``/``math.erf``/``math.exp`` in a hot loop are
scalar libm calls that block LLVM's loop vectoriser (53–170 Melem/s measured, against
~650 Melem/s for polynomial code). Everything here is FMA, ``sqrt``, one division at most,
``floor`` and ``select``, with every constant cast to the argument's dtype, so that one
generic function compiles to float64 *and* float32 code without float64 leaking into the
float32 path (see :func:`like`).

Accuracy (float64, measured by ``tests/test_backends_approx.py`` against numpy/scipy, and
against mpmath in the fit): every function is within a few ulp, ≤ 1e-14 relative,
on the ranges stated.

Algorithms
----------
``fasin(x)``, :math:`|x|\le 1`
    :math:`\arcsin t = t + t\,z\,P(z)` with :math:`z = t^2`, :math:`P` a degree-11 polynomial
    fitted on :math:`z\in[0,1/4]` (Chebyshev fit, relative error 1.3e-15 on :math:`P`, whose
    term is ≤ 5 % of the result). For :math:`|x| > 1/2` the reflection
    :math:`\arcsin|x| = \pi/2 - 2\arcsin\sqrt{z}`, :math:`z = (1-|x|)/2 \le 1/4`, reuses the same
    polynomial (the fdlibm scheme, with :math:`\pi/2` split in hi + lo parts). Both branches are
    computed and one is selected; the sign is restored with ``copysign``.
``fexp(x)``
    Cody–Waite reduction :math:`x = k\ln 2 + r`, :math:`|r|\le\ln 2/2`, degree-11 polynomial
    for :math:`e^r` (relative error 1.7e-17), and :math:`2^k` built from exponent bits in two
    factors :math:`2^{\lfloor k/2\rfloor}2^{k-\lfloor k/2\rfloor}` so that results down to the
    subnormal range and the underflow to 0 come out right. Input clamped to the finite range.
``ferf(x)``
    :math:`|x| < 3/4`: :math:`\mathrm{erf}\,x = x\,A(x^2)` (degree 9, 1.2e-16);
    otherwise :math:`1 - e^{-x^2}\,\mathrm{erfcx}(x)`, with erfcx approximated by a degree-16
    polynomial in :math:`t = (x-3)/(x+3)` on :math:`x\in[3/4, 6]` (8.5e-17; past 6,
    :math:`\mathrm{erfc} < 2\cdot 10^{-17}` and erf rounds to 1).
``ftanh(x)``
    :math:`|x| < 0.55`: :math:`x + x^3 T(x^2)` (degree 10); otherwise
    :math:`1 - 2/(e^{2|x|}+1)` (no cancellation there).
``erf_act(z)``, ``erf_act_d1(z)``
    The network activation :math:`\sigma(z) = \mathrm{erf}(z/\sqrt2)` and
    :math:`\sigma'(z) = \sqrt{2/\pi}\,e^{-z^2/2}`; the pair shares one exponential.

The coefficients were fitted with mpmath (34 digits) by ``benchmarks/fit_approx.py``.

Caveat: numba's on-disk cache is keyed on the source file of the *cached* kernel only, so after
editing this file delete the ``__pycache__/*.nbi`` index files of ``numba_backend`` to force a
recompile (an installed release is always consistent: all files change together).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from ...activations import register_implementation, register_operation

__all__ = [
    "like", "tiny_like", "fasin", "fexp", "ferf", "ftanh", "erf_act", "erf_act_d1", "tanh_act_d1",
    "IDENTITY", "ACT_D1_CODES", "act_d1", "map_unary",
]

# Approximations must not reassociate (the reduction steps depend on evaluation order) but may
# contract a*b+c into an FMA, which only improves accuracy.
APPROX_FLAGS = {"nsz", "contract"}

ASIN_P = (
    0.028169218060881414, -0.010749050339697808, 0.01603551434914882, 0.0078029494773533175,
    0.011875494382636922, 0.013929652902326633, 0.017355259955786323, 0.02237204763174451,
    0.03038194736709848, 0.044642857103423646, 0.07500000000020764, 0.1666666666666665,
)
ERF_A = (
    -1.2711547089821422e-07, 1.6044523839624666e-06, -1.489862284147446e-05,
    0.00012054266028326731, -0.0008548300832069432, 0.005223977232952475,
    -0.02686617061128781, 0.11283791670806737, -0.3761263890318123, 1.1283791670955126,
)
ERFCX_B = (
    -1.6765221805840914e-07, -2.1476388667435354e-07, 1.25808120149777e-06,
    2.0943042836658166e-06, -7.98615711227755e-06, -1.285727508287555e-05,
    6.405813402781729e-05, 4.525512796022144e-05, -0.0005970620880930369,
    0.0007077464410175722, 0.004269136339094823, -0.024392499318562477,
    0.07166583719784277, -0.15011593650078014, 0.245603801712332,
    -0.3262335600430372, 0.17900115118138996,
)
EXP_P = (
    2.5110037605963777e-08, 2.763263963904103e-07, 2.755724091857897e-06,
    2.4801485482328494e-05, 0.00019841269890047113, 0.0013888888952314775,
    0.008333333333319601, 0.0416666666664881, 0.1666666666666668, 0.5000000000000019,
    1.0, 1.0,
)
TANH_P = (
    -2.060276537636634e-05, 8.511313685577671e-05, -0.0002346347410887237,
    0.0005889360520074057, -0.001455661830100716, 0.003592110378689024,
    -0.008863234397814355, 0.021869488493666944, -0.053968253967434016,
    0.13333333333332714, -0.3333333333333333,
)
ERFCX_K = 3.0  # t = (x - K)/(x + K)
ERF_SPLIT = 0.75

# pi/2 split so that pio2_hi is exact to 33 bits (fdlibm)
PIO2_HI = 1.57079632679489655800e00
PIO2_LO = 6.12323399573676603587e-17
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LOG2E = 1.4426950408889634
SQRT_HALF = 0.7071067811865476
SQRT_2_OVER_PI = 0.7978845608028654


# ------------------------------------------------------------------ typing helpers
def like(v, x):  # pragma: no cover - replaced by the overload inside jitted code
    """``v`` converted to the float type of ``x`` (a compile-time cast inside numba code)."""
    return type(x)(v)


@overload(like)
def _like_overload(v, x):
    if isinstance(x, types.Float):
        conv = as_dtype(x).type

        def impl(v, x):
            return conv(v)

        return impl
    if isinstance(x, types.Integer):
        conv = as_dtype(x).type

        def impl(v, x):
            return conv(v)

        return impl
    return None


def tiny_like(x):  # pragma: no cover - replaced by the overload inside jitted code
    """The smallest normal number of x's float type (np.finfo(dtype).tiny)."""
    return np.finfo(type(x)).tiny


@overload(tiny_like)
def _tiny_like_overload(x):
    if isinstance(x, types.Float):
        conv = as_dtype(x).type
        tiny = float(np.finfo(as_dtype(x)).tiny)

        def impl(x):
            return conv(tiny)

        return impl
    return None


@intrinsic
def _bits_f64(typingctx, k):
    """Reinterpret an int64 as a float64 (LLVM bitcast: vectorises)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _bits_f32(typingctx, k):
    """Reinterpret an int32 as a float32."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return sig, codegen


def _pow2(kf):  # pragma: no cover
    """2**k for integral float ``kf`` in [-2044, 2046] (two exponent factors)."""
    raise TypeError("only callable from numba-compiled code: the implementation is its @overload")


@overload(_pow2)
def _pow2_overload(kf):
    # two factors 2^k1 * 2^k2, each a normal number, so that 2^k down to 2^-2044 comes out
    # right after the (rounded, possibly subnormal) product with the polynomial.
    if kf == types.float64:

        def impl(kf):
            k = np.int64(kf)
            k1 = k >> 1
            k2 = k - k1
            return _bits_f64((k1 + 1023) << 52), _bits_f64((k2 + 1023) << 52)

        return impl
    if kf == types.float32:

        def impl(kf):
            k = np.int32(kf)
            k1 = np.int32(k >> 1)
            k2 = np.int32(k - k1)
            return (_bits_f32(np.int32((k1 + 127) << 23)), _bits_f32(np.int32((k2 + 127) << 23)))

        return impl
    return None


def _horner(coefs, v):  # pragma: no cover
    raise TypeError("only callable from numba-compiled code: the implementation is its @overload")


_HORNER_IMPLS: dict = {}


@overload(_horner)
def _horner_overload(coefs, v):
    # coefs is a global tuple of float64 constants. The Horner recurrence is generated as
    # straight-line code (a loop over a 17-tuple is not unrolled by LLVM, and an inner loop
    # stops the vectoriser); each constant is cast to v's type at compile time.
    n = len(coefs)
    if n not in _HORNER_IMPLS:
        lines = ["def impl(coefs, v):", "    p = like(coefs[0], v)"]
        lines += [f"    p = p * v + like(coefs[{i}], v)" for i in range(1, n)]
        lines += ["    return p"]
        scope = {"like": like}
        exec("\n".join(lines), scope)
        _HORNER_IMPLS[n] = scope["impl"]
    return _HORNER_IMPLS[n]


# ------------------------------------------------------------------ approximations
@njit(fastmath=APPROX_FLAGS, error_model="numpy", cache=True)
def fasin(x):
    """arcsin(x) for |x| ≤ 1 (NaN beyond); see the module docstring."""
    half = like(0.5, x)
    one = like(1.0, x)
    ax = abs(x)
    big = ax > half
    zb = half * (one - ax)
    z = zb if big else ax * ax
    t = math.sqrt(zb) if big else ax
    p = t + t * z * _horner(ASIN_P, z)
    r = like(PIO2_HI, x) - (like(2.0, x) * p - like(PIO2_LO, x))
    return math.copysign(r if big else p, x)


def _exp_range(x):  # pragma: no cover
    raise TypeError("only callable from numba-compiled code: the implementation is its @overload")


@overload(_exp_range)
def _exp_range_overload(x):
    # clamp so that k stays within what _pow2 can build: beyond these the result is inf or 0
    # anyway (the product overflows / underflows in the last multiplication).
    if x == types.float64:
        return lambda x: (np.float64(-746.0), np.float64(710.0))
    if x == types.float32:
        return lambda x: (np.float32(-104.0), np.float32(89.0))
    return None


@njit(fastmath=APPROX_FLAGS, error_model="numpy", cache=True)
def fexp(x):
    """exp(x) for any finite x (inf above the overflow threshold, 0 below underflow)."""
    lo, hi = _exp_range(x)
    x = max(min(x, hi), lo)
    kf = np.floor(x * like(LOG2E, x) + like(0.5, x))
    r = (x - kf * like(LN2_HI, x)) - kf * like(LN2_LO, x)
    p = _horner(EXP_P, r)
    s1, s2 = _pow2(kf)
    return (p * s1) * s2


@njit(fastmath=APPROX_FLAGS, error_model="numpy", cache=True)
def _erfc_tail(ax, e):
    """erfc(ax) = e * erfcx(ax) for ax in [3/4, 6] given e = exp(-ax**2) (ax clamped here)."""
    xb = min(max(ax, like(ERF_SPLIT, ax)), like(6.0, ax))
    k = like(ERFCX_K, ax)
    t = (xb - k) / (xb + k)
    return e * _horner(ERFCX_B, t)


@njit(fastmath=APPROX_FLAGS, error_model="numpy", inline="always", cache=True)
def ferf(x):
    """erf(x) for any finite x."""
    ax = abs(x)
    u = ax * ax
    small = ax * _horner(ERF_A, u)
    large = like(1.0, x) - _erfc_tail(ax, fexp(-u))
    return math.copysign(small if ax < like(ERF_SPLIT, x) else large, x)


@njit(fastmath=APPROX_FLAGS, error_model="numpy", inline="always", cache=True)
def erf_act(z):
    """sigma(z) = erf(z / sqrt 2)."""
    return ferf(z * like(SQRT_HALF, z))


@njit(fastmath=APPROX_FLAGS, error_model="numpy", inline="always", cache=True)
def erf_act_d1(z):
    """(sigma(z), sigma'(z)) for sigma(z) = erf(z/sqrt 2), sharing exp(-z**2/2)."""
    x = z * like(SQRT_HALF, z)
    ax = abs(x)
    e = fexp(like(-0.5, z) * z * z)
    small = ax * _horner(ERF_A, ax * ax)
    large = like(1.0, z) - _erfc_tail(ax, e)
    s = math.copysign(small if ax < like(ERF_SPLIT, z) else large, x)
    return s, like(SQRT_2_OVER_PI, z) * e


@njit(fastmath=APPROX_FLAGS, error_model="numpy", cache=True)
def ftanh(x):
    """tanh(x) for any finite x."""
    ax = abs(x)
    u = ax * ax
    small = ax + ax * u * _horner(TANH_P, u)
    one = like(1.0, x)
    large = one - like(2.0, x) / (fexp(like(2.0, x) * min(ax, like(20.0, x))) + one)
    return math.copysign(small if ax < like(0.55, x) else large, x)


@njit(fastmath=APPROX_FLAGS, error_model="numpy", cache=True)
def tanh_act_d1(z):
    """(tanh z, 1 - tanh(z)**2)."""
    t = ftanh(z)
    return t, like(1.0, z) - t * t


#: the branches of :func:`act_d1`: the numba target's ``act_d1`` codes (the numba kernels' shared
#: numbering). Code 0 is the identity, which the Monte Carlo wrappers replace by O((N+M)d) sums.
IDENTITY = 0
ACT_D1_CODES = {IDENTITY: "identity z", 1: "erf(z/sqrt 2)", 2: "relu max(z, 0)", 3: "tanh z"}

register_operation(
    "numba", "act_d1",
    "(sigma, sigma') inside numba kernels: a branch of approx.act_d1, used by the Monte Carlo "
    "kernels and the deep fused step", codes=ACT_D1_CODES)
for _name, _code in (("linear", IDENTITY), ("erf", 1), ("relu", 2), ("tanh", 3)):
    register_implementation(_name, "numba", "act_d1", _code)
del _name, _code


@njit(fastmath=APPROX_FLAGS, error_model="numpy", cache=True, inline="always")
def act_d1(code, z):
    """(phi(z), phi'(z)) for the branch ``code`` of :data:`ACT_D1_CODES`.

    Codes come from the activation registry (``implementation(name, "numba", "act_d1")``), which
    only accepts the codes of :data:`ACT_D1_CODES` (``register_implementation`` refuses a code
    without a branch here), so the last branch is code 0, the identity, and no unknown code can
    reach it. ``code`` is loop-invariant in the callers, so the branch is hoisted out of their
    loops; an extra branch for "any other code" (returning NaN) stopped LLVM from hoisting it in
    the per-seed Monte Carlo kernel and made it 1.6x slower (ensemble step S = 100, N = 256: 22 ms
    against 13.4 ms, fresh numba caches), so
    there is none. relu uses selects, and ``z * 0`` keeps a NaN pre-activation NaN (as numpy's
    maximum does), so that a diverging network is still seen to diverge.
    """
    if code == 1:
        return erf_act_d1(z)
    if code == 2:
        zero = like(0.0, z) * z
        pos = z > like(0.0, z)
        return (z if pos else zero), (like(1.0, z) if pos else zero)
    if code == 3:
        return tanh_act_d1(z)
    return z, like(1.0, z)  # code 0 (IDENTITY): the registry admits no other code


# ------------------------------------------------------------------ array wrappers (tests)
@njit(parallel=True, fastmath=APPROX_FLAGS, error_model="numpy", cache=True)
def _map(code, x, out, out2):
    for i in prange(x.size):
        v = x[i]
        if code == 0:
            out[i] = fasin(v)
        elif code == 1:
            out[i] = fexp(v)
        elif code == 2:
            out[i] = ferf(v)
        elif code == 3:
            out[i] = ftanh(v)
        elif code == 4:
            out[i], out2[i] = erf_act_d1(v)
        else:
            out[i], out2[i] = tanh_act_d1(v)


_CODES = {"asin": 0, "exp": 1, "erf": 2, "tanh": 3, "erf_act_d1": 4, "tanh_act_d1": 5}


def map_unary(name, x):
    """Apply an approximation elementwise to a float32/float64 array (for tests and benchmarks).

    ``name`` is one of 'asin', 'exp', 'erf', 'tanh' (one output) or 'erf_act_d1',
    'tanh_act_d1' (two outputs: the activation and its derivative).
    """
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    out2 = np.empty_like(flat)
    _map(_CODES[name], flat, out, out2)
    if name.endswith("_d1"):
        return out.reshape(x.shape), out2.reshape(x.shape)
    return out.reshape(x.shape)
