"""Run configuration: schema, defaults, validation, TOML in and out.

A config is a set of sections (``[run]``, ``[task]``, ``[model]``, ``[limit]``, ``[train]``,
``[time]``, ``[eval]``), each a fixed set of typed keys with defaults. :func:`validate` checks
everything at once (unknown keys with a did-you-mean, types, finiteness, ranges, choices and
cross-field compatibility) and raises one :class:`ConfigError` listing every problem, before
anything runs or is written.

The schema below is the single source of the config reference in the README
(:func:`reference_markdown` renders it).
"""
from __future__ import annotations

import copy
import difflib
import math
import os
import tomllib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "Config",
    "ConfigError",
    "SCHEMA",
    "Field",
    "load",
    "from_dict",
    "validate",
    "to_toml",
    "family_of",
    "parse_override",
    "reference_markdown",
    "analytic_obstacles",
    "read_toml",
    "TEMPLATE_HINT",
    "duration_seconds",
]


class ConfigError(ValueError):
    """Every problem found in a config, one per line."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid config ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default, constraint and documentation."""

    type: str  # 'int', 'float', 'bool', 'str', 'int_list', 'bool_or_auto', 'float_or_auto'
    default: Any
    doc: str
    choices: tuple | Callable[[], tuple] = ()  # a callable is read at validation (a live registry)
    check: Callable[[Any], bool] | None = None
    check_doc: str = ""
    family: str = ""  # "particle" or "deep": the only runs it applies to (to_toml leaves it out of others)

    def options(self) -> tuple:
        """The allowed values (empty: any value of the type)."""
        return tuple(self.choices()) if callable(self.choices) else self.choices


_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}


def duration_seconds(text: str):
    """Seconds of a wall-clock duration ``"<number><unit>"`` (unit s, sec, min or h), None if malformed."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|sec|min|h)\s*", text)
    if not m or not float(m.group(1)) > 0 or not math.isfinite(float(m.group(1))):
        return None
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def _pos(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _ge1(v):
    return v >= 1


def _path_component(v) -> bool:
    """A name usable as one directory name: runs/<name> stays inside runs/."""
    return bool(v) and v not in (".", "..") and not any(ch in v for ch in "/\\\0")


def _activations() -> tuple:
    """The registered activations (:mod:`meanfield_solvers.activations`): registering one makes it valid here."""
    from meanfield_solvers.activations import names

    return names()


def _flow_integrators() -> tuple:
    """Registered integrators that step a drift (and noise) alone: the choices of limit.integrator."""
    from meanfield_solvers.integrators import INTEGRATORS

    return tuple(n for n, c in INTEGRATORS.items() if c.requires <= {"drift"})


def _parametrisations() -> tuple:
    from .deep.parametrisation import PARAMETRISATIONS

    return tuple(PARAMETRISATIONS)


def _teacher_activations() -> tuple:
    return ("same",) + _activations()


SCHEMA: dict[str, dict[str, Field]] = {
    "run": {
        "name": Field("str", "run", "Name of the run (used in the default output directory runs/<name>: one "
                      "path component, so it cannot leave the runs folder).", check=lambda v: _path_component(v),
                      check_doc="one path component: not empty, '.' or '..', without '/', '\\' or NUL"),
        "seed": Field("int", 0, "Root seed; every random stream is spawned from it by purpose.", check=_nonneg, check_doc=">= 0"),
        "backend": Field("str", "auto", "Particle backend for both the limit and the finite-width side. auto: cuda "
                         "on a usable GPU, else numba, else numpy (the choice and its reason are logged and the "
                         "resolved name is recorded in summary.json). Deep networks (depth >= 2): numba trains "
                         "them with a fused parallel step; cuda falls back to numba for them (no deep CUDA "
                         "kernel).",
                         choices=("auto", "numpy", "numba", "cuda")),
        "dtype": Field("str", "float64", "Floating-point type of particles and data.", choices=("float64", "float32")),
        "max_memory_gb": Field("float_or_auto", "auto", "Refuse (before allocating) a run whose estimated peak memory "
                               "exceeds this many GB ('auto': 90 % of this machine's memory, or of the cgroup limit); "
                               "the estimate and its terms are in meanfield/core/memory.py. Not part of a scan run's "
                               "id (it cannot change a result).", check=lambda v: v == "auto" or v > 0,
                               check_doc="> 0 or \"auto\""),
        "checkpoint_every": Field("float_or_duration", 0.0, "Write a checkpoint of both sides (states, random streams, "
                                  "records) into the run's folder every this much mean-field time (a number), or every "
                                  "so much wall-clock time (a string: \"30s\", \"10min\", \"2h\"); 0 = off. A stopped "
                                  "run continues bit-identically with meanfield run --resume DIR; the checkpoint at the "
                                  "end is kept so that meanfield run --extend can continue it (README, \"Long runs\"). "
                                  "Not part of a scan run's id (it cannot change a result).",
                                  check=lambda v: duration_seconds(v) is not None if isinstance(v, str) else v >= 0,
                                  check_doc=">= 0 (mean-field time), or a duration such as \"10min\""),
    },
    "task": {
        "kind": Field("str", "teacher_student", "Task: Gaussian-input teacher-student, the isotropic Gaussians "
                      "classification of Mei-Montanari-Nguyen, or a user dataset.",
                      choices=("teacher_student", "gaussians", "dataset")),
        "d": Field("int", 10, "Input dimension (read from the file for a dataset).", check=_ge1, check_doc=">= 1"),
        "teacher_width": Field("int", 4, "Teacher units k (teacher_student).", check=_ge1, check_doc=">= 1"),
        "teacher_activation": Field("str", "same", "Teacher activation ('same' = the student's).",
                                    choices=_teacher_activations),
        "teacher_init": Field("str", "orthonormal", "Teacher neurons: orthonormal unit vectors (needs k <= d) or "
                              "Gaussian N(0, I/d).", choices=("orthonormal", "gaussian")),
        "teacher_a": Field("str", "ones", "Teacher output weights: all ones or standard Gaussian; the teacher is "
                           "f*(x) = (1/k) sum_m a*_m sigma(v_m . x).", choices=("ones", "gaussian")),
        "noise": Field("float", 0.0, "Standard deviation of additive Gaussian label noise.", check=_nonneg, check_doc=">= 0"),
        "delta": Field("float", 0.5, "Class separation Delta (gaussians): covariances (1 +- Delta)^2 I.",
                       check=lambda v: 0 < v < 1, check_doc="in (0, 1)"),
        "path": Field("str", "", "Path of an .npz with arrays X (P, d), y (P,), optional X_test, y_test (dataset)."),
        "loss": Field("str", "square", "Loss: square, or logistic for +-1 labels.", choices=("square", "logistic")),
    },
    "model": {
        "kind": Field("str", "network", "Model family: 'network' (the built-in network: two-layer at depth 1, deep "
                      "muP at depth >= 2) or a kind registered with meanfield.register_model (its own [model] keys "
                      "are then allowed; see experiments/custom_model.py)."),
        "plugin": Field("str", "", "Python file (or module name) imported before validation, to register "
                        "model.kind (a path relative to the config file)."),
        "activation": Field("str", "erf", "Activation sigma; erf means erf(z/sqrt 2).", choices=_activations),
        "alpha": Field("float", 1.0, "Output scale alpha: f = (alpha/N) sum_i a_i sigma(w_i.x + b_i); 1 is mean "
                       "field, large alpha the lazy regime.", check=_pos, check_doc="> 0", family="particle"),
        "bias": Field("bool", False, "Whether neurons have a bias b_i.", family="particle"),
        "a_init": Field("str", "gaussian", "Output weights at init: N(0, a_std^2) or the constant a_value.",
                        choices=("gaussian", "constant"), family="particle"),
        "a_std": Field("float", 1.0, "Std of Gaussian output weights.", check=_nonneg, check_doc=">= 0", family="particle"),
        "a_value": Field("float", 1.0, "Value of constant output weights.", family="particle"),
        "w_std": Field("float", 1.0, "w_i ~ N(0, w_std^2 I/d).", check=_pos, check_doc="> 0", family="particle"),
        "b_std": Field("float", 0.0, "b_i ~ N(0, b_std^2).", check=_nonneg, check_doc=">= 0", family="particle"),
        "train_a": Field("bool", True, "Train the output weights (false: committee-machine setting, w only).", family="particle"),
        "lr_w": Field("float", 1.0, "Learning-rate multiplier of the first-layer weights (and biases).",
                      check=_nonneg, check_doc=">= 0", family="particle"),
        "antithetic": Field("bool", False, "Symmetric init: neurons in pairs (a, w, b), (-a, w, b) so f_0 = 0 "
                            "exactly (widths and particle count must be even).", family="particle"),
        "depth": Field("int", 1, "Number of hidden layers L. 1: the two-layer model; >= 2 (or a dmft/dmft_linear/ntk "
                       "limit): deep networks h1 = W0 x/sqrt(D), h(l+1) = W(l) phi(h(l))/sqrt(N), "
                       "f = w.phi(hL)/(gamma0 N), every weight N(0,1) (see meanfield.deep).",
                       check=_ge1, check_doc=">= 1"),
        "parametrisation": Field("str", "mup", "Parametrisation of deep runs (scales and learning-rate multipliers "
                                 "per layer, meanfield/deep/parametrisation.py): mup (f = w.phi(hL)/(gamma0 N), rate "
                                 "gamma0^2 N; limits dmft, dmft_linear, ntk), ntk (f = w.phi(hL)/(gamma0 sqrt N), rate "
                                 "gamma0^2; limit ntk), standard (weights N(0, 1/fan_in), one global rate; no limit).",
                                 choices=_parametrisations, family="deep"),
        "residual": Field("bool", False, "Deep runs: residual blocks h(l+1) = h(l) + (branch_scale / L^branch_exponent) "
                          "W(l) phi(h(l))/sqrt(N), l = 1..L-1 (needs depth >= 2).", family="deep"),
        "branch_exponent": Field("float", 0.5, "Residual branch exponent kappa: multiplier branch_scale / L^kappa "
                                 "(0.5: depth-muP, a depth limit exists; 0: none).", family="deep"),
        "branch_scale": Field("float", 1.0, "Residual branch scale beta (multiplier beta / L^kappa).",
                              check=_nonneg, check_doc=">= 0", family="deep"),
        "gamma0": Field("float_or_auto", "auto", "Richness gamma0 of muP ('auto' = 1/alpha). The same knob as "
                        "alpha: alpha = 1/gamma0 (at depth 1 the muP network is the two-layer model with that "
                        "alpha); giving both with alpha*gamma0 != 1 is an error.",
                        check=lambda v: v == "auto" or v > 0, check_doc="> 0 or \"auto\"", family="deep"),
    },
    "limit": {
        "method": Field("str", "particles", "Infinite-width method ('none' skips the limit), from the registry of "
                        "limit methods: particles (mean-field particle flow), dmft (sampled DMFT of deep muP "
                        "networks), dmft_linear (exact deep-linear DMFT, linear activation), ntk (gamma0 -> 0 "
                        "kernel flow)."),
        "particles": Field("int", 2048, "Number of mean-field particles.", check=_ge1, check_doc=">= 1", family="particle"),
        "expectation": Field("str", "auto", "Expectation over x: closed-form Gaussian ('analytic'), Monte Carlo "
                             "('mc'), or analytic where possible ('auto').", choices=("auto", "analytic", "mc"), family="particle"),
        "mc_samples": Field("int", 10000, "Monte Carlo sample size M (dataset: all rows are used).",
                            check=_ge1, check_doc=">= 1", family="particle"),
        "mc_resample": Field("bool", False, "Draw a fresh MC sample every step (false: one fixed sample).", family="particle"),
        "integrator": Field("str", "rk4", "Time integrator of the particle flow (the registered integrators that "
                            "step a drift, with noise when dynamics.temperature > 0: euler_maruyama, or leimkuhler_matthews for "
                            "second-order stationary averages).",
                            choices=_flow_integrators, family="particle"),
        "dt": Field("float", 0.01, "Mean-field time step.", check=_pos, check_doc="> 0"),
        "dmft_samples": Field("int", 4000, "dmft: Monte Carlo samples S per layer (MC error of f ~ 1/sqrt(S)).",
                              check=lambda v: v >= 2, check_doc=">= 2", family="deep"),
        "dmft_tangent_samples": Field("int", 500, "dmft: samples used for the response functions (cost grows "
                                      "as this x (P T)^3; dominates the MC error at late times).",
                                      check=_ge1, check_doc=">= 1", family="deep"),
        "dmft_response_estimator": Field("str", "auto", "dmft: how the response functions are estimated: tangent "
                                         "(exact forward-mode tangents on dmft_tangent_samples samples, cost ~ (P T)^3 "
                                         "per tangent sample; the reference), probe (one tangent per sample along "
                                         "dmft_probes random +-1 directions on all dmft_samples samples, unbiased, "
                                         "cost ~ (P T)^2 per sample: reaches P T in the thousands), auto (probe from (T+1) x "
                                         "points >= 500 on, where it measured 2-4x less error per CPU second, or "
                                         "where tangent's causal sweep exceeds dmft_max_memory_gb; else tangent; "
                                         "README's DMFT section).",
                                         choices=("auto", "tangent", "probe"), family="deep"),
        "dmft_probes": Field("int", 1, "dmft with dmft_response_estimator = probe: random directions per sample.",
                             check=_ge1, check_doc=">= 1", family="deep"),
        "dmft_tol": Field("float", 1e-6, "dmft, dmft_linear: fixed-point tolerance (max relative change).",
                          check=_pos, check_doc="> 0", family="deep"),
        "dmft_damping": Field("float", 1.0, "dmft, dmft_linear: initial damping beta of the fixed-point "
                              "iteration (halved automatically when the residual grows).",
                              check=lambda v: 0 < v <= 1, check_doc="in (0, 1]", family="deep"),
        "dmft_max_iter": Field("int", 60, "dmft, dmft_linear: iterations per horizon-continuation stage.",
                               check=_ge1, check_doc=">= 1", family="deep"),
        "dmft_stages": Field("int", 0, "dmft, dmft_linear: horizon-continuation stages (0: automatic).",
                             check=_nonneg, check_doc=">= 0", family="deep"),
        "dmft_error_batches": Field("int", 8, "dmft: batch sub-solves for the MC standard error (0: none; "
                                    "the error estimate is uncertain by about 1/sqrt(2(B-1)): 27 % at 8).",
                                    check=lambda v: v == 0 or v >= 2, check_doc="0 or >= 2", family="deep"),
        "dmft_max_memory_gb": Field("float", 4.0, "dmft, dmft_linear: refuse a solve whose estimated peak memory "
                                    "exceeds this (GB).", check=_pos, check_doc="> 0", family="deep"),
    },
    "train": {
        "widths": Field("int_list", [16, 64, 256], "Widths N of the finite networks.", check=lambda v: all(x >= 1 for x in v) and len(v) > 0, check_doc="non-empty, each >= 1"),
        "seeds": Field("int", 4, "Independent seeds S per width (0: no finite-width training).", check=_nonneg, check_doc=">= 0"),
        "algorithm": Field("str", "online_sgd", "online_sgd (fresh samples), sgd (multi-pass on n_train samples), "
                           "gd (full batch on n_train), population_gd (analytic expectations), flow (deep runs: "
                           "gradient flow with train.integrator at step lr).",
                           choices=("online_sgd", "sgd", "gd", "population_gd", "flow")),
        "integrator": Field("str", "rk4", "Integrator of train.algorithm = 'flow' (deep runs).",
                            choices=("heun", "rk4"), family="deep"),
        "lr": Field("float", 0.01, "Step size eta = mean-field time advanced per step.", check=_pos, check_doc="> 0"),
        "optimizer": Field("str", "sgd", "Step rule of deep runs' networks (gd, sgd, online_sgd): sgd (the plain "
                           "step W -= lr c grad) or adam (Adam with the parametrisation's per-layer step sizes, "
                           "muP: Tensor Programs V; meanfield/deep/optim.py; needs limit.method = 'none').",
                           choices=("sgd", "adam"), family="deep"),
        "adam_beta1": Field("float", 0.9, "Adam's first-moment decay beta1 (train.optimizer = 'adam').",
                            check=lambda v: 0 <= v < 1, check_doc="in [0, 1)", family="deep"),
        "adam_beta2": Field("float", 0.999, "Adam's second-moment decay beta2 (train.optimizer = 'adam').",
                            check=lambda v: 0 <= v < 1, check_doc="in [0, 1)", family="deep"),
        "adam_eps": Field("float", 1e-8, "Adam's epsilon, relative to each layer's nominal gradient size "
                          "(train.optimizer = 'adam').", check=_pos, check_doc="> 0", family="deep"),
        "batch": Field("int", 32, "Minibatch size B (online_sgd, sgd).", check=_ge1, check_doc=">= 1"),
        "n_train": Field("int", 1000, "Training-set size P (sgd, gd) for synthetic tasks.", check=_ge1, check_doc=">= 1"),
        "coupling": Field("bool_or_auto", "auto", "Draw each network's initial neurons as a subsample of the "
                          "mean-field particles (true: every width, each < limit.particles with 2+ seeds; auto: when the limit is "
                          "simulated and every width < limit.particles, else independent draws). A coupled "
                          "width's seed variance is smaller by 1 - N/M (recorded as coupling_factor).", family="particle"),
        "divergence_factor": Field("float", 1e6, "A side (the limit or a width's networks) is declared diverged at "
                                   "the first record where a risk exceeds this multiple of max(its initial risk, "
                                   "the risk of the zero predictor); the last accepted state is kept (README, "
                                   "Reliability).", check=lambda v: v > 1, check_doc="> 1"),
    },
    "dynamics": {
        "temperature": Field("float", 0.0, "Mean-field Langevin temperature tau = 1/beta: every particle and every "
                             "neuron gets noise sqrt(2 tau) Lambda^(1/2) dB in mean-field time (sqrt(2 tau eta) per "
                             "step of size eta, the same at every width); needs limit.integrator = "
                             "'euler_maruyama'. 0: no noise.", check=_nonneg, check_doc=">= 0", family="particle"),
        "weight_decay": Field("float", 0.0, "Weight decay lambda: drift -lambda Lambda theta on every trained "
                              "coordinate (preconditioned like the gradient, so the stationary law is Gibbs, "
                              "exp(-beta (Psi + lambda |theta|^2 / 2))).", check=_nonneg, check_doc=">= 0", family="particle"),
        "reaction_rate": Field("float", 0.0, "Wasserstein-Fisher-Rao reaction rate kappa: particle masses follow "
                               "dm_i/dt = -kappa (Psi_i - <Psi>) m_i (balanced) or -kappa Psi_i m_i (unbalanced), "
                               "beside the transport; 0: fixed masses.", check=_nonneg, check_doc=">= 0", family="particle"),
        "transport_rate": Field("float", 1.0, "Transport rate: the Wasserstein velocity -Lambda grad Psi is scaled by "
                                "it (with reaction_rate, the (alpha, beta) of Wasserstein-Fisher-Rao; 0 with a "
                                "reaction: pure Fisher-Rao reweighting).", check=_nonneg, check_doc=">= 0", family="particle"),
        "reaction": Field("str", "balanced", "balanced (the mean of Psi subtracted: total mass conserved) or "
                          "unbalanced (conic: the mass is free).", choices=("balanced", "unbalanced"), family="particle"),
        "reaction_scheme": Field("str", "weights", "How the reaction acts: weights (particle masses, "
                                 "Wasserstein-Fisher-Rao), birth_death (equal-weight particles killed and cloned "
                                 "at rates from Psi, population kept by uniform clones/kills: balanced WFR in the "
                                 "limit), birth_death_prior (kills replaced by births from the initial law with "
                                 "zero output weight).", choices=("weights", "birth_death", "birth_death_prior"), family="particle"),
        "population": Field("str", "fixed", "With reaction_scheme = birth_death: fixed (the population restored to N "
                            "every step) or float (no population control: particles of mass 1/N0 in slots, the "
                            "total mass floats; with reaction = unbalanced its limit is unbalanced WFR).",
                            choices=("fixed", "float"), family="particle"),
        "capacity": Field("float", 4.0, "Slots per initial particle of a floating birth-death population (the "
                          "largest total mass it can reach); outgrowing them stops the run as diverged at that "
                          "step.", check=lambda v: v >= 1, check_doc=">= 1", family="particle"),
        "splitting": Field("str", "strang", "How transport and reaction are combined in a step: lie (order 1) or "
                           "strang (order min(2, transport order)).", choices=("lie", "strang"), family="particle"),
    },
    "fluctuations": {
        "predict": Field("bool", False, "Predict N Var and N Cov of every recorded output (f at the eval points, the "
                         "risks) over training time from the limit run alone, by the discrete adjoint of "
                         "limit.integrator (two-layer particle limit, fixed masses, no Langevin noise, fixed MC "
                         "sample or analytic expectations; or a deep muP run at depth 1, mapped onto its two-layer "
                         "particle system; README 'Fluctuations predicted from the limit')."),
        "times": Field("int", 8, "Recording times the prediction is made at (spread evenly over the grid; 0: all).",
                       check=_nonneg, check_doc=">= 0"),
        "checkpoint": Field("int", 0, "Adjoint checkpoint interval c in steps (memory ~ n p (K/c + c)); 0: sqrt(K).",
                            check=_nonneg, check_doc=">= 0"),
        "replicas": Field("int", 0, "Forward-mode replicas R (random mass perturbations): a cheaper, noisier "
                          "estimate of N Var (relative error sqrt(2/R)) recorded beside the adjoint's; 0: none.",
                          check=_nonneg, check_doc=">= 0"),
        "max_memory_gb": Field("float", 4.0, "Refuse a prediction whose estimated peak memory exceeds this (GB), "
                               "before allocating.", check=_pos, check_doc="> 0"),
        "particles": Field("int", 4096, "Deep runs at depth 1: reference particles of the two-layer particle system "
                           "the prediction runs on (the two-layer run uses limit.particles).", check=_ge1,
                           check_doc=">= 1", family="deep"),
    },
    "time": {
        "t_max": Field("float", 10.0, "Final mean-field time.", check=_pos, check_doc="> 0"),
        "records": Field("int", 50, "Number of recording times (before snapping to the step grid).",
                         check=lambda v: v >= 2, check_doc=">= 2"),
        "spacing": Field("str", "log", "Spacing of recording times.", choices=("linear", "log")),
        "ts": Field("float_list", [], "Explicit recording times, replacing the grid of records and spacing ([]: "
                    "that grid). Each must lie on the step grid of every side that records (a multiple of "
                    "limit.dt with a limit, of train.lr with networks; a time off it is refused, naming the "
                    "nearest ones) and be <= t_max; the run stops at the last of them. With ts, records is set "
                    "to their number and spacing to its default in the resolved config. The divergence check "
                    "compares with the risk at the first of them (include 0 for the usual meaning).",
                    check=lambda v: len(v) == 0 or (len(v) >= 2 and v[0] >= 0
                                                    and all(a < b for a, b in zip(v, v[1:]))),
                    check_doc="[] or at least 2 times, >= 0, strictly increasing"),
        "snapshots": Field("int", 4, "Number of particle/neuron snapshot times.", check=_nonneg, check_doc=">= 0", family="particle"),
    },
    "eval": {
        "n_test": Field("int", 4000, "Test-sample size for test risks (and the limit's risk without closed form).",
                        check=_ge1, check_doc=">= 1", family="particle"),
        "n_points": Field("int", 16, "Test points at which f is recorded for both sides.", check=_ge1, check_doc=">= 1"),
        "points": Field("str", "", "Your own evaluation points instead of sampled ones: a .npy file of one (n, d) "
                        "array (numpy.save; a path relative to the config file), n finite rows of the task's input "
                        "dimension d; n_points becomes n. Two-layer runs record f of both sides there (x_eval, "
                        "f_mf, f_nn and the function distance between them; the test risk keeps its eval.n_test "
                        "labelled sample); deep runs use them as the test points (outputs, kernels and the test "
                        "risk against the noise-free teacher f*(x): teacher_student tasks only). A run's id "
                        "covers the path, not the content (its sha256 is kept in summary.json). '': sampled."),
        "max_snapshot_particles": Field("int", 4096, "At most this many mean-field particles per snapshot.",
                                        check=_ge1, check_doc=">= 1", family="particle"),
    },
}


class Config:
    """A validated, fully resolved configuration (sections as attribute namespaces).

    Build with :func:`from_dict` / :func:`load`, or ``Config.from_dict({...})``; read values as
    ``cfg.train.lr``; derive variants with :meth:`replace`.
    """

    def __init__(self, data: dict):
        self._data = data

    @classmethod
    def from_dict(cls, data: dict | None = None, **kw) -> "Config":
        return from_dict(data, **kw)

    @classmethod
    def from_toml(cls, path) -> "Config":
        return load(path)

    def __getattr__(self, name):
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return _Section(data[name])
        raise AttributeError(name)

    def to_dict(self) -> dict:
        """A deep copy of the resolved values."""
        return copy.deepcopy(self._data)

    def replace(self, **dotted) -> "Config":
        """A new validated config with ``section__key=value`` (or a dict of 'section.key') changed."""
        data = self.to_dict()
        for k, v in dotted.items():
            sec, key = k.split("__", 1) if "__" in k else k.split(".", 1)
            data.setdefault(sec, {})[key] = v
        return from_dict(data)

    def __eq__(self, other):
        return isinstance(other, Config) and self._data == other._data

    def __repr__(self):
        return f"Config({self._data!r})"


class _Section:
    def __init__(self, d):
        self.__dict__.update(d)

    def __repr__(self):
        return repr(self.__dict__)


def _type_ok(f: Field, v):
    if f.type == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if f.type == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if f.type == "bool":
        return isinstance(v, bool)
    if f.type == "str":
        return isinstance(v, str)
    if f.type == "int_list":
        return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    if f.type == "float_list":
        return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if f.type == "bool_or_auto":
        return isinstance(v, bool) or v == "auto"
    if f.type == "float_or_auto":
        return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v == "auto"
    if f.type == "float_or_duration":
        return isinstance(v, (int, float, str)) and not isinstance(v, bool)
    raise AssertionError(f.type)


_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "int_list": "a list of integers", "float_list": "a list of numbers", "bool_or_auto": "true, false or \"auto\"",
               "float_or_auto": "a number or \"auto\"",
               "float_or_duration": "a number or a duration string such as \"10min\""}


def _suggest(word, options):
    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {m[0]!r}?)" if m else ""


def from_dict(data: dict | None = None, base_dir: str | None = None) -> Config:
    """Fill defaults, validate, and return a :class:`Config`; raise :class:`ConfigError`.

    ``base_dir`` resolves relative dataset paths (the config file's folder).
    """
    data = data or {}
    problems = []
    resolved = {}
    bad = set()  # keys with their own problem
    if not isinstance(data, dict):
        raise ConfigError(["the config must be a table of sections"])
    for sec in data:
        if sec not in SCHEMA:
            problems.append(f"unknown section [{sec}]{_suggest(sec, SCHEMA)}; allowed sections: {', '.join(SCHEMA)}")
    model_given = data.get("model", {}) if isinstance(data.get("model", {}), dict) else {}
    kind_fields = {}
    if isinstance(model_given.get("plugin", ""), str) and model_given.get("plugin"):
        problems += _import_plugin(model_given["plugin"], base_dir)
    if isinstance(model_given.get("kind"), str):
        from .core.registry import MODEL_KINDS

        kind = MODEL_KINDS.get(model_given["kind"])
        kind_fields = dict(getattr(kind, "fields", {}) or {})
    for sec, fields in SCHEMA.items():
        if sec == "model" and kind_fields:
            fields = {**fields, **kind_fields}
        given = data.get(sec, {})
        if not isinstance(given, dict):
            problems.append(f"[{sec}] must be a table of keys, got {type(given).__name__}")
            given = {}
        out = {}
        for key in given:
            if key not in fields:
                problems.append(f"unknown key {sec}.{key}{_suggest(key, fields)}; allowed keys in [{sec}]: "
                                f"{', '.join(fields)}")
        for key, f in fields.items():
            v = given.get(key, copy.deepcopy(f.default))
            n_before = len(problems)
            out[key] = v
            _check_value(sec, key, f, v, problems, out)
            if len(problems) > n_before:
                bad.add(f"{sec}.{key}")
        resolved[sec] = out
    plugin = resolved.get("model", {}).get("plugin", "")
    if plugin.endswith(".py") and not os.path.isabs(plugin):
        # stored absolute, so that the config.toml written beside a result re-imports the same file
        resolved["model"]["plugin"] = os.path.abspath(os.path.join(base_dir or "", plugin))
    # cross-field checks run even when some keys have their own problems (every problem in one
    # message); a key with its own problem holds its default for them, so a cross-field problem
    # that names such a key would speak of a value the user did not write and is left out
    problems += [q for q in _safe_cross_checks(resolved, base_dir, data) if not any(_names(q, k) for k in bad)]
    if problems:
        raise ConfigError(problems)
    _reset_foreign(resolved)
    if resolved["time"]["ts"]:  # records/spacing do not place the times; their count is the records
        resolved["time"]["records"] = len(resolved["time"]["ts"])
        resolved["time"]["spacing"] = SCHEMA["time"]["spacing"].default
    return Config(resolved)


def _names(problem: str, key: str) -> bool:
    """Whether ``problem`` speaks of ``key`` ('train.lr', not 'train.lr_w')."""
    import re

    return re.search(re.escape(key) + r"(?![A-Za-z0-9_])", problem) is not None


def _safe_cross_checks(resolved, base_dir, data) -> list:
    try:
        return _cross_checks(resolved, base_dir, data)
    except Exception as e:  # noqa: BLE001 - a check meeting an unforeseen combination reports it, never a traceback
        return [f"the config could not be cross-checked ({type(e).__name__}: {e}); fix the problems above first"]


def _check_value(sec, key, f, v, problems, out):
    """Type, finiteness, choices and range of one key; a bad value is replaced by the default in ``out``."""
    if not _type_ok(f, v):
        hint = " (a quoted number is a string: remove the quotes)" if isinstance(v, str) and _numeric(v) else ""
        problems.append(f"{sec}.{key} must be {_TYPE_NAMES[f.type]}, got {v!r} ({type(v).__name__}){hint}")
        out[key] = copy.deepcopy(f.default)
        return
    if f.type == "float" or (f.type in ("float_or_auto", "float_or_duration") and not isinstance(v, str)):
        v = float(v)
        if not math.isfinite(v):
            problems.append(f"{sec}.{key} must be finite, got {v}")
            out[key] = copy.deepcopy(f.default)
            return
        out[key] = v
    if f.type == "float_list":
        v = [float(x) for x in v]
        if not all(math.isfinite(x) for x in v):
            problems.append(f"{sec}.{key} must hold finite numbers, got {v!r}")
            out[key] = copy.deepcopy(f.default)
            return
        out[key] = v
    choices = f.options()
    if choices and v not in choices:
        problems.append(f"{sec}.{key} = {v!r} is not allowed{_suggest(str(v), choices)}; choose one of "
                        f"{', '.join(map(repr, choices))}")
        out[key] = copy.deepcopy(f.default)
    elif f.check is not None and not f.check(v):
        problems.append(f"{sec}.{key} = {v!r} is out of range: must be {f.check_doc}")
        out[key] = copy.deepcopy(f.default)


def _reset_foreign(resolved: dict):
    """Set the keys that do not apply to this run's family back to their defaults (they cannot affect
    it), so that two configs differing only there resolve to the same run and :func:`to_toml`, which
    leaves them out, loads back to an equal config. The richness knob stays: ``alpha`` of a deep run
    with ``gamma0 = "auto"`` is its gamma0 (1/alpha); a two-layer run's ``gamma0`` has already set
    ``alpha`` (:mod:`meanfield.deep.checks`)."""
    fam = family_of(resolved)
    for sec, fields in SCHEMA.items():
        for key, f in fields.items():
            if f.family and f.family != fam and not (sec, key) == ("model", "alpha"):
                resolved[sec][key] = copy.deepcopy(f.default)


def _import_plugin(plugin: str, base_dir) -> list:
    """Import ``model.plugin`` (a .py file, relative to the config's folder, or a module name) so that
    the model kinds it registers are known; problems are returned, not raised."""
    import importlib
    import importlib.util
    import sys

    try:
        if plugin.endswith(".py"):
            path = plugin if os.path.isabs(plugin) or not base_dir else os.path.join(base_dir, plugin)
            path = os.path.abspath(path)
            if not os.path.isfile(path):
                return [f"model.plugin: no file at {path}"]
            name = "meanfield_plugin_" + "".join(ch if ch.isalnum() else "_" for ch in path)
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            importlib.import_module(plugin)
    except Exception as e:  # noqa: BLE001 - any failure is reported as a config problem
        return [f"model.plugin = {plugin!r} could not be imported: {type(e).__name__}: {e}"]
    return []


def _numeric(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def analytic_obstacles(c) -> list:
    """Why closed-form population expectations are impossible for config data ``c`` ([] if possible):
    asked of the model kind (``model.kind``)."""
    from .core.registry import get_model_kind

    if isinstance(c, Config):
        c = c._data
    return get_model_kind(c["model"]["kind"]).analytic_obstacles(c)


def _cross_checks(c, base_dir, given=None):
    """Compatibility between fields; returns a list of problems (``given``: the raw input tables)."""
    from .core.registry import LIMIT_METHODS, MODEL_KINDS

    p = []
    task, model, limit, train = c["task"], c["model"], c["limit"], c["train"]
    if model["kind"] not in MODEL_KINDS:
        return [f"model.kind = {model['kind']!r} is not registered{_suggest(model['kind'], MODEL_KINDS)}; "
                f"registered: {', '.join(sorted(MODEL_KINDS))}. A custom kind is registered by the file that "
                "defines it: set model.plugin to that file (or import it before building the config)"]
    if limit["method"] != "none" and limit["method"] not in LIMIT_METHODS:
        return [f"limit.method = {limit['method']!r} is not a registered limit method"
                f"{_suggest(limit['method'], LIMIT_METHODS)}; choose one of "
                f"{', '.join(map(repr, sorted(LIMIT_METHODS)))} or 'none'"]
    kind = MODEL_KINDS[model["kind"]]
    if model["kind"] != "network":
        given_model = (given or {}).get("model", {}) if isinstance((given or {}).get("model", {}), dict) else {}
        # a resolved config.toml lists every key at its default: only a changed network option is a mistake
        foreign = [k for k in given_model if k in SCHEMA["model"] and k not in ("kind", "plugin")
                   and given_model[k] != SCHEMA["model"][k].default]
        if foreign:
            p.append(f"model.{foreign[0]} is an option of the built-in network, not of model.kind = "
                     f"{model['kind']!r} (its keys: {', '.join(sorted(kind.fields)) or 'none'})")
        p += kind.check(c)
    p += _dynamics_checks(c)
    analytic_why = kind.analytic_obstacles(c)
    if limit["method"] != "none":
        p += LIMIT_METHODS[limit["method"]].check(c)
    if train["algorithm"] == "population_gd" and train["seeds"] > 0 and analytic_why:
        p.append("train.algorithm = 'population_gd' needs closed-form expectations, impossible here: "
                 + "; ".join(analytic_why) + ". Use 'gd', 'sgd' or 'online_sgd'")
    if task["loss"] == "logistic" and task["kind"] == "teacher_student":
        p.append("task.loss = 'logistic' needs +-1 labels; teacher_student labels are real. Use task.kind = "
                 "'gaussians', a dataset with +-1 labels, or task.loss = 'square'")
    if task["kind"] == "teacher_student" and task["teacher_init"] == "orthonormal" and task["teacher_width"] > task["d"]:
        p.append(f"task.teacher_init = 'orthonormal' needs teacher_width <= d ({task['teacher_width']} > {task['d']}); "
                 "lower teacher_width or use teacher_init = 'gaussian'")
    if model["antithetic"]:
        odd = [n for n in train["widths"] if n % 2] + ([limit["particles"]] if limit["particles"] % 2 and limit["method"] != "none" else [])
        if odd:
            p.append(f"model.antithetic = true needs even widths and particle counts; odd: {odd}")
    if limit["method"] == "none" and train["seeds"] == 0:
        p.append("nothing to compute: limit.method = 'none' and train.seeds = 0; simulate the limit (e.g. "
                 "limit.method = 'particles') or train networks (train.seeds >= 1)")
    if not model["train_a"] and model["lr_w"] == 0:
        p.append("nothing is trained: model.train_a = false and model.lr_w = 0")
    t_max = c["time"]["t_max"]
    if limit["method"] != "none" and limit["dt"] > t_max:
        p.append(f"limit.dt = {limit['dt']} exceeds time.t_max = {t_max}")
    if train["seeds"] > 0 and train["lr"] > t_max:
        p.append(f"train.lr = {train['lr']} exceeds time.t_max = {t_max}")
    p += _check_ts(c)
    steps = max(t_max / limit["dt"] if limit["method"] != "none" else 0, t_max / train["lr"] if train["seeds"] else 0)
    if steps > 1e8:
        p.append(f"{steps:.3g} steps is too many: raise limit.dt / train.lr or lower time.t_max")
    if train["coupling"] is True and limit["method"] == "none":
        p.append("train.coupling = true needs the limit (limit.method = 'none' here); set coupling = 'auto' or false")
    if train["coupling"] is True and max(train["widths"]) > limit["particles"]:
        p.append(f"train.coupling = true needs every width <= limit.particles ({max(train['widths'])} > "
                 f"{limit['particles']}); raise limit.particles or set coupling = false")
    elif train["coupling"] is True and train["seeds"] >= 2 and max(train["widths"]) == limit["particles"]:
        # a subsample of all M particles is the whole pool: every seed would be the same network
        p.append(f"train.coupling = true needs every width < limit.particles when train.seeds >= 2 (width "
                 f"{max(train['widths'])} takes the whole pool of {limit['particles']}: every seed would be the "
                 "same network); raise limit.particles, or set coupling = 'auto' or false")
    if c["run"]["backend"] not in ("numpy", "auto"):
        from meanfield_solvers.particles.backends import BACKENDS

        name = c["run"]["backend"]
        if name not in BACKENDS:
            p.append(f"run.backend = {name!r} is not available in this installation")
        else:
            ok, why = BACKENDS[name][1]()
            if not ok:
                p.append(f"run.backend = {name!r} cannot run here: {why}")
    if task["kind"] == "dataset":
        p += _check_dataset(c, base_dir)
    elif task["path"]:
        p.append("task.path is only used with task.kind = 'dataset'")
    if c["eval"]["points"] and not p:  # needs the final task.d (a dataset's is read from its file)
        p += _check_eval_points(c, base_dir)
    from .core.registry import CONFIG_CHECKS

    for check in CONFIG_CHECKS:  # the wings' own checks (e.g. meanfield.deep.checks.check_deep)
        p += check(c, given or {})
    if not p:  # the size check needs consistent values (and a readable dataset)
        from .core.memory import memory_problems

        p += memory_problems(c)
    return p


def _check_ts(c) -> list:
    """Explicit recording times must lie in [0, t_max] and on the step grid of every side that records."""
    ts, t_max = c["time"]["ts"], c["time"]["t_max"]
    if not ts:
        return []
    p = []
    if ts[-1] > t_max * (1 + 1e-12):
        p.append(f"time.ts: the last time {ts[-1]:g} exceeds time.t_max = {t_max:g}; raise t_max or drop the later "
                 "times")
    sides = []
    if c["limit"]["method"] != "none":
        sides.append(("limit.dt", c["limit"]["dt"]))
    if c["train"]["seeds"] > 0:
        sides.append(("train.lr", c["train"]["lr"]))
    for name, h in sides:
        off = [t for t in ts if abs(t / h - round(t / h)) > 1e-6]
        if off:
            t = off[0]
            near = sorted({math.floor(t / h) * h, math.ceil(t / h) * h})
            p.append(f"time.ts: {len(off)} time(s) are not multiples of {name} = {h:g}, the step of a side that "
                     f"records there (first: {t:g}; nearest on the grid: {' and '.join(f'{x:.10g}' for x in near)}); "
                     f"give times on the step grid")
    return p


def _dynamics_checks(c) -> list:
    """Noise needs a stochastic integrator on the limit side; deep runs have no Langevin dynamics yet."""
    from meanfield_solvers.integrators import INTEGRATORS

    dyn, limit = c["dynamics"], c["limit"]
    p = []
    noisy = dyn["temperature"] > 0
    if noisy and limit["method"] == "particles":
        integ = INTEGRATORS.get(limit["integrator"])
        if integ is not None and "noise" not in integ.accepts:
            takers = sorted(n for n, k in INTEGRATORS.items() if "noise" in k.accepts and k.requires <= {"drift"})
            p.append(f"dynamics.temperature = {dyn['temperature']} adds noise, which limit.integrator = "
                     f"{limit['integrator']!r} cannot integrate: use limit.integrator = {takers[0]!r}")
    if dyn["population"] == "float" and not (dyn["reaction_rate"] > 0 and dyn["reaction_scheme"] == "birth_death"):
        p.append(f"dynamics.population = 'float' lets a birth-death population change size: it needs "
                 f"dynamics.reaction_scheme = 'birth_death' and reaction_rate > 0 (got reaction_scheme = "
                 f"{dyn['reaction_scheme']!r}, reaction_rate = {dyn['reaction_rate']}); births from a prior keep N "
                 f"fixed, and weights already float with reaction = 'unbalanced'")
    if dyn["population"] == "float" and c["train"]["coupling"] is True:
        p.append("train.coupling = true cannot follow a floating birth-death population (its rows are slots, not "
                 "the initial particles): set train.coupling = 'auto' or false")
    from .core.registry import LIMIT_METHODS

    method = LIMIT_METHODS.get(limit["method"])
    deep = c["model"]["depth"] >= 2 or (method is not None and method.family == "deep")
    if (noisy or dyn["weight_decay"] > 0 or dyn["reaction_rate"] > 0 or dyn["transport_rate"] != 1.0) and deep:
        p.append("dynamics.temperature, weight_decay, reaction_rate and transport_rate are implemented for particle models "
                 "(two-layer networks and registered model kinds), not for deep runs: set them to 0")
    return p


def _check_eval_points(c, base_dir) -> list:
    """``eval.points``: resolved to an absolute path (the config.toml beside a result reads the same
    file), read and checked against task.d; n_points becomes its row count."""
    from .core.points import points_problem

    ev = c["eval"]
    path = ev["points"]
    if base_dir and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    ev["points"] = path = os.path.abspath(path)
    if family_of(c) == "deep" and c["task"]["kind"] != "teacher_student":
        return [f"eval.points in a deep run are its test points, whose test risk needs labels: only task.kind = "
                f"'teacher_student' gives them (the teacher's f*(x)); with task.kind = {c['task']['kind']!r} "
                "leave eval.points out (a dataset's X_test rows are the test points)"]
    a, why = points_problem(path, int(c["task"]["d"]))
    if why:
        return [why]
    ev["n_points"] = int(a.shape[0])
    return []


def _check_dataset(c, base_dir):
    import numpy as np

    task = c["task"]
    if not task["path"]:
        return ["task.kind = 'dataset' needs task.path (an .npz with arrays X and y)"]
    path = task["path"]
    if base_dir and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(base_dir, path))
    task["path"] = os.path.abspath(path)
    if not os.path.isfile(path):
        return [f"task.path: no file at {path}"]
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is a config problem
        return [f"task.path: cannot read {path} as .npz ({e})"]
    p = []
    for k in ("X", "y"):
        if k not in arrays:
            p.append(f"task.path: {path} has no array {k!r} (found {sorted(arrays)})")
    if p:
        return p
    for xk, yk in (("X", "y"), ("X_test", "y_test")):
        if xk not in arrays and yk not in arrays:
            continue
        if (xk in arrays) != (yk in arrays):
            p.append(f"task.path: {xk} and {yk} must be given together")
            continue
        X, y = arrays[xk], arrays[yk]
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            p.append(f"task.path: {xk} must be (P, d) and {yk} (P,) with the same P; got {X.shape} and {y.shape}")
            continue
        if xk == "X" and X.shape[0] == 0:
            p.append(f"task.path: {path} has X with zero rows (shape {X.shape}); a dataset needs at least one "
                     "training row")
            continue
        if not (np.issubdtype(X.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
            p.append(f"task.path: {xk}, {yk} must be numeric arrays")
            continue
        shape_problems = _split_problems(path, xk, yk, X, y)
        if shape_problems:
            p += shape_problems
            continue
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            p.append(f"task.path: {xk} or {yk} contains NaN or Inf")
        if task["loss"] == "logistic" and not np.all(np.isin(y, (-1.0, 1.0))):
            p.append(f"task.loss = 'logistic' needs labels in {{-1, +1}}; {yk} has other values")
    if not p:
        d = arrays["X"].shape[1]
        if "X_test" in arrays and arrays["X_test"].shape[1] != d:
            p.append(f"task.path: X_test has {arrays['X_test'].shape[1]} columns, X has {d}")
        task["d"] = int(d)
    return p


def _split_problems(path, xk, yk, X, y) -> list:
    """What makes one split of a dataset unusable although it is a numeric (P, d), (P,) pair: complex
    values (their imaginary part would be dropped silently), no columns (d = 0: no input), no rows
    (every risk over it would be the mean of nothing, NaN: README, Reliability)."""
    import numpy as np

    p = []
    for k, a in ((xk, X), (yk, y)):
        if np.iscomplexobj(a):
            p.append(f"task.path: {k} in {path} is complex ({a.dtype}); the inputs and targets must be real "
                     "(the imaginary part would be dropped): store the real part, or real and imaginary parts "
                     "as separate columns")
    if X.shape[1] == 0:
        p.append(f"task.path: {xk} in {path} has 0 columns; a dataset needs at least one input column")
    if X.shape[0] == 0:
        hint = (" (leave X_test and y_test out to evaluate on the training set)" if xk == "X_test"
                else "")
        p.append(f"task.path: {xk} in {path} has 0 rows; every risk over it would be undefined{hint}")
    return p


def read_toml(path, what="config file") -> dict:
    """Parse the TOML file at ``path``; every way it can fail is one :class:`ConfigError` naming it.

    The path must be a regular file: a directory is refused, and a FIFO or device is refused
    *before* it is opened (opening a FIFO blocks until a writer appears).
    """
    import stat

    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError([f"no {what} at {path}"]) from None
    except OSError as e:
        raise ConfigError([f"cannot read the {what} {path}: {e.strerror}"]) from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError([f"the {what} {path} is a directory; give a TOML file"])
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError([f"the {what} {path} is not a regular file (a FIFO, socket or device); give a TOML file"])
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise ConfigError([f"cannot read the {what} {path}: {e.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"the {what} {path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                           "TOML files are UTF-8"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path} is not valid TOML: {e}"]) from None


#: How to run the defaults on purpose (an empty config file is refused).
TEMPLATE_HINT = "`meanfield template > FILE` writes every key at its default; run that file"


def load(path, overrides=()) -> Config:
    """Read a TOML config file, apply ``section.key=value`` overrides, validate.

    An empty file (no section, no key) is refused: it would silently run the full default job.
    The defaults are run on purpose from the file ``meanfield template`` writes.
    """
    path = os.fspath(path)
    data = read_toml(path)
    if not data:
        raise ConfigError([f"the config file {path} is empty: it would run the full default job. To run the "
                           f"defaults on purpose, {TEMPLATE_HINT}"])
    problems = []
    for item in overrides:
        try:
            sec, key, val = parse_override(item)
        except ValueError as e:
            problems.append(str(e))
            continue
        if not isinstance(data.get(sec, {}), dict):
            problems.append(f"--set {item}: [{sec}] is not a table")
            continue
        data.setdefault(sec, {})[key] = val
    if problems:
        raise ConfigError(problems)
    return from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)))


def parse_override(item: str):
    """Parse ``section.key=value`` with a TOML value (bare words are strings)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ValueError(f"--set {item!r}: expected section.key=value, e.g. train.lr=0.05")
    lhs, rhs = item.split("=", 1)
    sec, key = lhs.strip().split(".", 1)
    rhs = rhs.strip()
    try:
        val = tomllib.loads(f"v = {rhs}")["v"]
    except tomllib.TOMLDecodeError:
        val = rhs
    return sec, key, val


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def family_of(data) -> str:
    """``'deep'`` for a deep run (``model.depth >= 2`` or a limit method of the deep family), else
    ``'particle'`` (the two-layer network and registered particle models)."""
    from .core.registry import LIMIT_METHODS

    data = data._data if isinstance(data, Config) else data
    method = LIMIT_METHODS.get(data["limit"]["method"])
    return "deep" if data["model"]["depth"] >= 2 or (method is not None and method.family == "deep") else "particle"


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML text, every default filled in; loads back to the same run.

    Only the keys that apply to the run's family are written (a deep run lists no two-layer-only
    key such as ``particles`` or ``bias``, a two-layer run no ``dmft_*`` key; validation has set
    those to their defaults). The richness is one knob written once: ``alpha`` (two-layer runs, and
    deep runs with ``gamma0 = "auto"``) or ``gamma0`` (deep runs that set it; alpha = 1/gamma0).
    """
    lines = []
    data = cfg.to_dict()
    fam = family_of(data)
    # one richness knob: a deep run writes gamma0, or alpha when gamma0 is "auto" (= 1/alpha)
    skip = {("model", "gamma0")} if fam == "particle" or data["model"]["gamma0"] == "auto" else {("model", "alpha")}
    for sec in SCHEMA:
        keys = [k for k in SCHEMA[sec] if (SCHEMA[sec][k].family in ("", fam) or (sec, k) == ("model", "alpha"))
                and (sec, k) not in skip]
        if not keys:
            continue
        lines.append(f"[{sec}]")
        for key in keys:
            lines.append(f"{key} = {_toml_value(data[sec][key])}")
        for key in data[sec]:  # keys declared by a registered model kind
            if key not in SCHEMA[sec]:
                lines.append(f"{key} = {_toml_value(data[sec][key])}")
        lines.append("")
    return "\n".join(lines)


def reference_markdown() -> str:
    """The config reference as markdown tables (used to write the README section)."""
    out = []
    for sec, fields in SCHEMA.items():
        out.append(f"**[{sec}]**\n\n| key | type | default | meaning |\n|---|---|---|---|")
        for key, f in fields.items():
            extra = f" One of {', '.join(map(str, f.options()))}." if f.options() else ""
            rng = f" ({f.check_doc})" if f.check_doc else ""
            out.append(f"| `{key}` | {f.type} | `{_toml_value(f.default)}` | {f.doc}{extra}{rng} |")
        out.append("")
    return "\n".join(out)
