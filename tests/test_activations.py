"""The activation registry: one definition per activation, lookups that refuse what is missing.

Claims tested: unknown names are refused everywhere with their name and the registered ones; a
missing (activation, target, operation) implementation is refused naming all three; an
activation registered from here is valid in configs, runs Monte Carlo on the numpy backend with
the right gradient, and is refused by the numba backend and by analytic expectations; every
registered closed form equals Monte Carlo / quadrature, and every declared property holds.
"""
import numpy as np
import pytest
from scipy import special

from meanfield_solvers import activations as A
from meanfield_solvers import gaussian
from meanfield_solvers.particles import GaussianPopulation, TwoLayer, get_backend, mc_risk_velocity, population_risk_velocity

from helpers import tiny

BUILTIN = A.names()  # collected before any test registers its own
NUMPY = get_backend("numpy")


def _nb():
    pytest.importorskip("numba")
    return get_backend("numba")


def _softplus_d1(z):
    return special.expit(z)


def _softplus_d2(z):
    return special.expit(z) * special.expit(-z)


@pytest.fixture
def softplus():
    """softplus registered from numpy functions only (no closed form, no fast implementation)."""
    act = A.register_activation("softplus", lambda z: np.logaddexp(0.0, z), _softplus_d1, _softplus_d2,
                                odd=False, smooth=True, doc="log(1 + e^z)")
    yield act
    A.unregister_activation("softplus")


@pytest.fixture
def kinked():
    """A leaky relu: not smooth (sigma'' has a Dirac part), positively homogeneous."""
    act = A.register_activation("leaky", lambda z: np.where(z > 0, z, 0.1 * z),
                                lambda z: np.where(z > 0, 1.0, 0.1), np.zeros_like,
                                odd=False, smooth=False, homogeneous=True)
    yield act
    A.unregister_activation("leaky")


# ------------------------------------------------------------------ unknown names
def test_unknown_name_refused_at_lookup_listing_registered():
    with pytest.raises(A.UnknownActivation) as e:
        A.get_activation("sigmoidx")
    msg = str(e.value)
    assert "'sigmoidx'" in msg and all(n in msg for n in BUILTIN)
    assert isinstance(e.value, ValueError)  # callers that catch ValueError keep working
    with pytest.raises(A.UnknownActivation, match="sigmoidx"):
        gaussian.kernel("sigmoidx", 1.0, 1.0, 0.5)
    with pytest.raises(A.UnknownActivation, match="sigmoidx"):
        A.implementation("sigmoidx", "numba", "act_d1")


def test_unknown_name_refused_by_config_listing_valid_ones():
    from meanfield import config as C

    for key in ("model.activation", "task.teacher_activation"):
        with pytest.raises(C.ConfigError) as e:
            C.from_dict(tiny(**{key: "sigmoidx", "limit.expectation": "mc"}))
        (p,) = [p for p in e.value.problems if "sigmoidx" in p]
        assert key in p and "choose one of" in p and all(repr(n) in p for n in BUILTIN)


def test_unknown_name_refused_by_backend_calls():
    rng = np.random.default_rng(0)
    x, w, a = rng.standard_normal((5, 2)), rng.standard_normal((3, 2)), rng.standard_normal(3)
    for be in (NUMPY, _nb()):
        with pytest.raises(A.UnknownActivation, match="sigmoidx"):
            be.mc_forward("sigmoidx", x, w, None, a, 1.0)
        with pytest.raises(A.UnknownActivation, match="sigmoidx"):
            be.pairwise("sigmoidx", w, w, a)


# ------------------------------------------------------------------ missing implementations
def test_missing_target_implementation_names_activation_target_and_operation(softplus):
    _nb()  # declares the numba operations
    from meanfield_solvers.particles.backends import cuda_backend  # noqa: F401  declares the cuda ones

    for target, op in (("numba", "act_d1"), ("cuda", "act")):
        with pytest.raises(A.MissingImplementation) as e:
            A.implementation("softplus", target, op)
        assert (e.value.activation, e.value.target, e.value.operation) == ("softplus", target, op)
        msg = str(e.value)
        assert "'softplus'" in msg and target in msg and op in msg and "run.backend = 'numpy'" in msg
    # an operation that evaluates a closed form says that the closed form is what is missing
    with pytest.raises(A.MissingClosedForm) as e:
        A.implementation("tanh", "numba", "pairwise")
    assert "'tanh'" in str(e.value) and "numba" in str(e.value) and "limit.expectation = 'mc'" in str(e.value)
    assert A.implementation("erf", "numba", "pairwise") != A.implementation("relu", "numba", "pairwise")


def test_cuda_flow_reports_missing_kernel(softplus):
    from meanfield_solvers.particles.backends.cuda_flow import unsupported

    why = unsupported(TwoLayer("softplus", 3), "mc")
    assert "'softplus'" in why and "cuda" in why and "act" in why
    why = unsupported(TwoLayer("softplus", 3), "analytic")
    assert "'softplus'" in why and "closed-form" in why
    assert unsupported(TwoLayer("erf", 3), "mc") == ""


def test_registered_codes_must_be_kernel_branches(softplus):
    _nb()
    with pytest.raises(ValueError, match="no kernel code 99") as e:
        A.register_implementation("softplus", "numba", "act_d1", 99)
    assert "known" in str(e.value)
    with pytest.raises(ValueError, match="no operation 'fwd'"):
        A.register_implementation("softplus", "numba", "fwd", 1)
    with pytest.raises(A.UnknownActivation):
        A.register_implementation("nope", "numba", "act_d1", 1)


def test_registry_bookkeeping(softplus):
    assert "softplus" in A.names() and "softplus" in A.ACTIVATIONS
    assert "softplus" not in A.closed_form_names()
    with pytest.raises(ValueError, match="already registered"):
        A.register_activation("softplus", np.tanh, np.tanh, np.tanh, odd=True)
    with pytest.raises(ValueError, match="identifier"):
        A.register_activation("same", np.tanh, np.tanh, np.tanh, odd=True)
    with pytest.raises(TypeError):
        A.ACTIVATIONS["x"] = softplus  # read-only view: register_activation is the only way in
    _nb()
    A.register_implementation("softplus", "numba", "act_d1", 3)  # (deliberately wrong) code, then dropped
    assert A.implementations("softplus") == {("numba", "act_d1"): 3}
    new = A.register_activation("softplus", np.tanh, np.tanh, np.tanh, odd=True, replace=True)
    assert A.get_activation("softplus") is new and A.implementations("softplus") == {}


def test_unregister_leaves_builtins_and_gaussian_views_live(softplus):
    A.register_activation("sq", np.square, lambda z: 2 * z, lambda z: 2 + 0 * z, odd=False,
                          mean_and_grad=lambda q: (np.asarray(q, float), np.ones_like(np.asarray(q, float))),
                          kernel_and_grad=lambda q1, q2, c: (q1 * q2 + 2 * c * c, q2 + 0 * c, 4 * c),
                          dkernel=lambda q1, q2, c: 4 * c)
    try:
        assert "sq" in gaussian.CLOSED_FORM and gaussian.mean("sq", 2.0) == 2.0
    finally:
        A.unregister_activation("sq")
    assert "sq" not in gaussian.CLOSED_FORM and A.names()[: len(BUILTIN)] == BUILTIN


# ------------------------------------------------------------------ a new activation end to end
def test_new_activation_is_valid_in_configs(softplus):
    from meanfield import config as C

    cfg = C.from_dict(tiny(**{"model.activation": "softplus", "limit.expectation": "mc"}))
    assert cfg.model.activation == "softplus"
    C.from_dict(tiny(**{"task.teacher_activation": "softplus", "limit.expectation": "mc"}))
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(tiny(**{"model.activation": "softplus", "limit.expectation": "analytic"}))
    assert any("'softplus' has no closed form" in p and "'mc'" in p for p in e.value.problems)
    assert "softplus" in C.reference_markdown()


def test_new_activation_mc_velocity_is_minus_scaled_gradient(softplus):
    """numpy backend, Monte Carlo: v = -(N/alpha^2) Lambda grad R, by central differences of the MC risk."""
    rng = np.random.default_rng(7)
    d, N, M = 3, 5, 400
    model = TwoLayer("softplus", d, alpha=0.8, bias=True, lr_a=0.5, lr_w=2.0, lr_b=1.5)
    theta = rng.standard_normal((N, model.p))
    x = rng.standard_normal((M, d))
    y = np.sin(x @ np.array([1.0, -0.5, 0.3]))
    for loss in ("square", "logistic"):
        yy = y if loss == "square" else np.sign(y)
        _, v = mc_risk_velocity(model, NUMPY, theta, x, yy, loss)
        g = np.zeros_like(theta)
        eps = 1e-6
        for idx in np.ndindex(theta.shape):
            tp, tm = theta.copy(), theta.copy()
            tp[idx] += eps
            tm[idx] -= eps
            rp = mc_risk_velocity(model, NUMPY, tp, x, yy, loss, velocity=False)[0]
            rm = mc_risk_velocity(model, NUMPY, tm, x, yy, loss, velocity=False)[0]
            g[idx] = (rp - rm) / (2 * eps)
        lam = np.array([0.5] + [2.0] * d + [1.5])
        want = -(N / model.alpha**2) * lam * g
        assert np.max(np.abs(v - want)) <= 1e-7 * np.max(np.abs(want)), loss
        assert np.max(np.abs(want)) > 1e-3  # not a vacuous comparison


def test_new_activation_runs_on_numpy_and_is_refused_elsewhere(softplus):
    import meanfield

    over = {"model.activation": "softplus", "limit.expectation": "mc", "limit.mc_samples": 200,
            "limit.particles": 16, "train.widths": [8], "train.seeds": 1, "time.t_max": 0.3,
            "time.records": 3, "time.snapshots": 0, "eval.n_test": 100, "eval.n_points": 2}
    res = meanfield.run(tiny(**over, **{"run.backend": "numpy"}))
    assert np.all(np.isfinite(res.arrays["risk_mf"])) and np.all(np.isfinite(res.arrays["risk_nn"]))
    assert res.arrays["risk_mf"][-1] != res.arrays["risk_mf"][0]  # it trained
    with pytest.raises(A.MissingImplementation, match="'softplus' has no numba implementation of act_d1"):
        meanfield.run(tiny(**over, **{"run.backend": "numba"}))


def test_new_activation_refused_by_numba_and_analytic_expectations(softplus):
    nb = _nb()
    rng = np.random.default_rng(1)
    d = 3
    x, w, a = rng.standard_normal((6, d)), rng.standard_normal((4, d)), rng.standard_normal(4)
    for call in (lambda: nb.mc_forward("softplus", x, w, None, a, 1.0),
                 lambda: nb.mc_backward("softplus", x, w, None, x[:, 0])):
        with pytest.raises(A.MissingImplementation) as e:
            call()
        assert (e.value.activation, e.value.target, e.value.operation) == ("softplus", "numba", "act_d1")
    with pytest.raises(A.MissingClosedForm, match="'softplus' has no closed-form Gaussian kernel"):
        nb.pairwise("softplus", w, w, a)
    for q in (gaussian.kernel, gaussian.dkernel):
        with pytest.raises(A.MissingClosedForm, match="softplus"):
            q("softplus", 1.0, 1.0, 0.5)
    with pytest.raises(A.MissingClosedForm, match="Gaussian mean"):
        gaussian.mean("softplus", 1.0)
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), w[:2], np.ones((1, 2)), "softplus")
    with pytest.raises(A.MissingClosedForm, match="softplus"):
        population_risk_velocity(TwoLayer("softplus", d), NUMPY, np.ones((4, 1 + d)), pop)
    from meanfield.deep.network import DeepNet, MuP

    with pytest.raises(A.MissingImplementation, match="softplus"):
        DeepNet("softplus", d, 4, 2, MuP(1.0), backend="numba")
    assert DeepNet("softplus", d, 4, 2, MuP(1.0), backend="numpy").fused_code is None


def test_new_activation_ntk_uses_quadrature(softplus):
    """No closed form: the NNGP kernel of the NTK recursion is Gauss–Hermite, checked by Monte Carlo."""
    from meanfield_solvers.dmft.ntk import init_kernels

    X = np.array([[1.0, 0.0, 0.5], [0.2, -1.0, 0.3], [-0.4, 0.8, 1.1]])
    ker = init_kernels(X, 1, "softplus")
    Q = X @ X.T / 3
    u = np.random.default_rng(2).standard_normal((400_000, 3)) @ np.linalg.cholesky(Q).T
    for which, f in ((ker.Phi[1], softplus.fn), (ker.Phidot[1], softplus.d1)):
        prod = f(u)[:, :, None] * f(u)[:, None, :]
        err = prod.std(0) / np.sqrt(len(u))
        assert np.all(np.abs(which - prod.mean(0)) < 5 * err + 1e-12)


def test_dmft_estimator_follows_declared_smoothness(softplus, kinked):
    from meanfield_solvers.dmft import check_supported

    assert check_supported("softplus", 2) == "pathwise"
    assert check_supported("leaky", 1) == "stein"
    with pytest.raises(ValueError, match="leaky.*Dirac delta"):
        check_supported("leaky", 2)
    with pytest.raises(ValueError, match="biased for leaky"):
        check_supported("leaky", 1, "pathwise")


# ------------------------------------------------------------------ every registered definition
def _pairs():
    return [(1.3, 0.7, 0.5), (0.4, 2.0, -0.6), (1.0, 1.0, 0.999)]


@pytest.mark.parametrize("name", BUILTIN)
def test_declared_properties_hold(name):
    act = A.get_activation(name)
    z = np.linspace(-3.0, 3.0, 601)
    z = z[np.abs(z) > 1e-3]  # away from a kink
    h = 1e-5
    assert np.allclose(act.d1(z), (act.fn(z + h) - act.fn(z - h)) / (2 * h), atol=1e-8)
    assert np.allclose(act.d2(z), (act.d1(z + h) - act.d1(z - h)) / (2 * h), atol=1e-6)
    assert np.allclose(act.fn(-z), -act.fn(z)) == act.odd
    assert np.allclose(act.fn(2.5 * z), 2.5 * act.fn(z)) == act.homogeneous
    # smooth <=> sigma' continuous at 0 (relu jumps from 0 to 1: a Dirac delta in sigma'')
    assert (abs(act.d1(np.array([1e-9]))[0] - act.d1(np.array([-1e-9]))[0]) < 1e-6) == act.smooth


@pytest.mark.parametrize("name", BUILTIN)
def test_closed_forms_equal_monte_carlo(name):
    """Every registered closed form (kernel, its two derivatives, derivative kernel, mean and its
    derivative) against a 10^6-sample Monte Carlo (5 standard errors), and the derivatives against
    central differences of the closed form itself."""
    act = A.get_activation(name)
    rng = np.random.default_rng(3)
    g = rng.standard_normal((1_000_000, 2))
    n = len(g)
    checked = 0
    for q1, q2, c in _pairs():
        L = np.linalg.cholesky(np.array([[q1, c], [c, q2]]))
        u, v = (g @ L.T).T
        for closed, f in ((act.kernel_and_grad, act.fn), (act.dkernel, act.d1)):
            if closed is None:
                continue
            val = closed(q1, q2, c)
            val = val[0] if isinstance(val, tuple) else val
            prod = f(u) * f(v)
            assert abs(val - prod.mean()) < 5 * prod.std() / np.sqrt(n) + 1e-12, (name, q1, q2, c)
            checked += 1
        if act.kernel_and_grad is not None:
            k, dq1, dc = act.kernel_and_grad(q1, q2, c)
            h = 1e-6
            assert np.isclose(dq1, (act.kernel_and_grad(q1 + h, q2, c)[0] - act.kernel_and_grad(q1 - h, q2, c)[0]) / (2 * h),
                              rtol=1e-6, atol=1e-8)
            assert np.isclose(dc, (act.kernel_and_grad(q1, q2, c + h)[0] - act.kernel_and_grad(q1, q2, c - h)[0]) / (2 * h),
                              rtol=1e-6, atol=1e-8)
        if act.mean_and_grad is not None:
            m, dm = act.mean_and_grad(q1)
            s = act.fn(u)
            assert abs(m - s.mean()) < 5 * s.std() / np.sqrt(n) + 1e-12
            h = 1e-6
            assert np.isclose(dm, (act.mean_and_grad(q1 + h)[0] - act.mean_and_grad(q1 - h)[0]) / (2 * h),
                              rtol=1e-6, atol=1e-8)
            checked += 1
    assert checked > 0 or act.mean_and_grad is act.kernel_and_grad is act.dkernel is None


@pytest.mark.parametrize("name", [n for n in BUILTIN if A.get_activation(n).smooth])
def test_smooth_closed_forms_equal_gauss_hermite(name):
    act = A.get_activation(name)
    for q1, q2, c in _pairs():
        if act.kernel_and_grad is not None:
            assert np.isclose(act.kernel_and_grad(q1, q2, c)[0],
                              gaussian.gauss_hermite_kernel(act.fn, act.fn, q1, q2, c), rtol=1e-10, atol=1e-13)
        if act.dkernel is not None:
            assert np.isclose(act.dkernel(q1, q2, c),
                              gaussian.gauss_hermite_kernel(act.d1, act.d1, q1, q2, c), rtol=1e-10, atol=1e-13)


def test_gaussian_functions_delegate_to_the_registry():
    q1, q2, c = np.array([1.3, 0.4]), np.array([0.7, 2.0]), np.array([0.5, -0.6])
    for name in A.closed_form_names():
        act = A.get_activation(name)
        for got, want in zip(gaussian.kernel_and_grad(name, q1, q2, c), act.kernel_and_grad(q1, q2, c)):
            assert np.array_equal(got, want)
        assert np.array_equal(gaussian.dkernel(name, q1, q2, c), act.dkernel(q1, q2, c))
        assert np.array_equal(gaussian.mean(name, q1), act.mean_and_grad(q1)[0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("act", ["linear", "erf", "relu", "tanh"])
def test_backends_declare_what_they_support_and_it_matches_what_runs(backend, act):
    """``backend.supports(op, act)`` is '' exactly when the operation runs (else it names the reason)."""
    from meanfield_solvers.particles import get_backend

    be = get_backend(backend)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3)) / 2
    a = rng.standard_normal(5)
    x = rng.standard_normal((7, 3))
    calls = {"pairwise": lambda: be.pairwise(act, w, w, a, 1.0),
             "mc_forward": lambda: be.mc_forward(act, x, w, None, a, 0.2),
             "mc_backward": lambda: be.mc_backward(act, x, w, None, rng.standard_normal(7))}
    for op, call in calls.items():
        why = be.supports(op, act)
        try:
            call()
            ran = True
        except ValueError as e:
            ran = False
            assert why and act in why, (op, why, e)
        assert ran == (why == ""), (backend, op, act, why)
    assert "unknown" in be.supports("mc_forward", "no_such_act").lower()
    with pytest.raises(ValueError, match="unknown backend operation"):
        be.supports("velocity", act)
