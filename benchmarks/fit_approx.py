r"""Refit the polynomial coefficients of ``meanfield_solvers/particles/backends/approx.py`` (needs mpmath).

``python -m benchmarks.fit_approx`` prints the coefficient tuples (highest degree first, as
Horner uses them) and, for each, the maximum relative error of the polynomial with the
coefficients rounded to float64, evaluated exactly (34 digits) on a 3000-point grid.

Each fit is mpmath's Chebyshev interpolation (``mpmath.chebyfit``, near-minimax) of:

* ASIN_P: :math:`P(z) = (\arcsin\sqrt z - \sqrt z)/(z\sqrt z)` on :math:`z\in[0, 1/4]`, degree 11;
* ERF_A: :math:`A(u) = \mathrm{erf}(\sqrt u)/\sqrt u` on :math:`u\in[0, 0.75^2]`, degree 9;
* ERFCX_B: :math:`\mathrm{erfcx}(x)` as a function of :math:`t = (x-3)/(x+3)` for
  :math:`x\in[0.75, 6]`, degree 16;
* EXP_P: :math:`e^r` on :math:`|r|\le\ln 2/2`, degree 11;
* TANH_P: :math:`T(z) = (\tanh\sqrt z - \sqrt z)/(z\sqrt z)` on :math:`z\in[0, 0.55^2]`, degree 10.
"""
from __future__ import annotations


def fits():
    """Return {name: (coefficients, max relative error)}."""
    import mpmath as mp

    mp.mp.dps = 34

    def horner(cs, v):
        p = mp.mpf(0)
        for c in cs:
            p = p * v + mp.mpf(c)
        return p

    def fit(f, a, b, n, grid=3000):
        poly = mp.chebyfit(f, [a, b], n + 1)
        cd = [float(c) for c in poly]
        rel = max(abs(horner(cd, x) / f(x) - 1) for x in mp.linspace(a, b, grid))
        return tuple(cd), float(rel)

    def asin_p(z):
        if z == 0:
            return mp.mpf(1) / 6
        s = mp.sqrt(z)
        return (mp.asin(s) - s) / (z * s)

    def erf_a(u):
        if u == 0:
            return 2 / mp.sqrt(mp.pi)
        s = mp.sqrt(u)
        return mp.erf(s) / s

    K = mp.mpf(3)

    def erfcx_b(t):
        x = K * (1 + t) / (1 - t)
        return mp.erfc(x) * mp.exp(x * x)

    def tanh_p(z):
        if z == 0:
            return -mp.mpf(1) / 3
        x = mp.sqrt(z)
        return (mp.tanh(x) - x) / (z * x)

    half_ln2 = mp.log(2) / 2
    t0, t1 = (mp.mpf(0.75) - K) / (mp.mpf(0.75) + K), (6 - K) / (6 + K)
    return {
        "ASIN_P": fit(asin_p, mp.mpf(0), mp.mpf(0.25), 11),
        "ERF_A": fit(erf_a, mp.mpf(0), mp.mpf(0.75) ** 2, 9),
        "ERFCX_B": fit(erfcx_b, t0, t1, 16),
        "EXP_P": fit(mp.exp, -half_ln2, half_ln2, 11),
        "TANH_P": fit(tanh_p, mp.mpf(0), mp.mpf(0.55) ** 2, 10),
    }


def main():
    for name, (coefs, err) in fits().items():
        print(f"# max relative error {err:.2e}")
        print(f"{name} = (" + ", ".join(repr(c) for c in coefs) + ")")


if __name__ == "__main__":
    main()
