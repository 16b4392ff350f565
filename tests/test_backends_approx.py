"""The vectorisable approximations of ``meanfield_solvers.particles.backends.approx`` against numpy/scipy.

float64: ≤ 1e-14 relative everywhere tested (measured ≤ 7e-16). float32: ≤ 1e-6 relative
against the float64 reference evaluated at the float32-rounded input (measured ≤ 4e-7).
"""
import numpy as np
import pytest
from scipy import special

pytest.importorskip("numba")
from meanfield_solvers.particles.backends import approx  # noqa: E402

GRID = {
    "asin": (np.arcsin, np.concatenate([np.linspace(-1, 1, 20001), [0.5, -0.5, 1e-300, -1e-8]])),
    "exp": (np.exp, np.concatenate([np.linspace(-708, 709, 20001), np.linspace(-2, 2, 2001)])),
    "erf": (special.erf, np.concatenate([np.linspace(-7, 7, 20001), np.geomspace(1e-300, 1, 200)])),
    "tanh": (np.tanh, np.concatenate([np.linspace(-22, 22, 20001), np.geomspace(1e-300, 1, 200)])),
}


def _rel(y, r):
    return np.max(np.abs(y - r) / np.maximum(np.abs(r), np.finfo(float).tiny))


@pytest.mark.parametrize("name", sorted(GRID))
def test_float64_within_1e14(name):
    ref, x = GRID[name]
    y = approx.map_unary(name, x)
    assert y.dtype == np.float64
    assert _rel(y, ref(x)) <= 1e-14


@pytest.mark.parametrize("name", sorted(GRID))
def test_float32_keeps_dtype_and_accuracy(name):
    ref, x = GRID[name]
    x32 = x.astype(np.float32)
    r = ref(x32.astype(np.float64))
    keep = (np.abs(r) > 1e-30) & (np.abs(r) < 1e30)
    y = approx.map_unary(name, x32)
    assert y.dtype == np.float32
    assert _rel(y[keep].astype(np.float64), r[keep]) <= 1e-6


def test_special_values():
    assert approx.map_unary("exp", np.array([-800.0, 0.0]))[0] == 0.0
    assert approx.map_unary("exp", np.array([0.0]))[0] == 1.0
    assert np.isinf(approx.map_unary("exp", np.array([800.0]))[0])
    assert approx.map_unary("erf", np.array([30.0]))[0] == 1.0
    assert approx.map_unary("asin", np.array([1.0]))[0] == np.arcsin(1.0)
    # subnormal results of exp survive the two-factor 2**k
    assert approx.map_unary("exp", np.array([-740.0]))[0] == pytest.approx(np.exp(-740.0), rel=1e-14)


def test_activation_pairs():
    z = np.linspace(-12, 12, 4001)
    s, d = approx.map_unary("erf_act_d1", z)
    assert _rel(s, special.erf(z / np.sqrt(2))) <= 1e-14
    assert _rel(d, np.sqrt(2 / np.pi) * np.exp(-0.5 * z * z)) <= 1e-14
    t, dt = approx.map_unary("tanh_act_d1", z)
    assert _rel(t, np.tanh(z)) <= 1e-14
    tt = np.tanh(z)
    assert np.max(np.abs(dt - (1 - tt * tt))) <= 1e-15


@pytest.mark.parametrize("name", ["fasin", "fexp", "ferf", "ftanh", "erf_act_d1", "tanh_act_d1"])
def test_float32_code_has_no_float64(name):
    """No float64 literal or promotion leaks into the float32 specialisation (LLVM IR check)."""
    from numba import float32, njit

    f = njit(fastmath=approx.APPROX_FLAGS, error_model="numpy")(getattr(approx, name).py_func)
    f.compile((float32,))
    ir = f.inspect_llvm(f.signatures[0])
    # the native function(s); the CPython and cfunc wrappers convert to Python floats (double)
    native = [b for b in ir.split("\ndefine ")[1:] if not any(t in b.split("\n", 1)[0] for t in ("cpython", "cfunc"))]
    assert native
    leaks = [ln for b in native for ln in b.splitlines() if "double" in ln]
    assert not leaks, leaks[:5]
