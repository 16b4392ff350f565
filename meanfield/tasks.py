r"""Learning tasks: input/target samplers, and population laws where expectations are closed-form.

* :class:`TeacherStudent`: :math:`x\sim N(0, I_d)`,
  :math:`y = f_\star(x) + \varepsilon`, :math:`f_\star(x) = \frac1k\sum_{m=1}^k a^\star_m\sigma_\star(v_m\cdot x)`,
  :math:`\varepsilon\sim N(0,\text{noise}^2)`.
* :class:`GaussianClasses`: Mei–Montanari–Nguyen (2018) centred isotropic Gaussians:
  :math:`y=\pm1` with probability 1/2 each and :math:`x\mid y \sim N(0, (1+y\Delta)^2 I_d)`.
* :class:`Dataset`: rows of a user's ``X``, ``y`` (optional ``X_test``, ``y_test``).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional

import numpy as np

from meanfield_solvers.gaussian import get_activation
from meanfield_solvers.particles import GaussianPopulation

from . import seeding

__all__ = ["Task", "TeacherStudent", "GaussianClasses", "Dataset", "make_task"]


class Task(abc.ABC):
    """What a model is trained on.

    ``d``: input dimension; ``loss``: a name in :data:`meanfield_solvers.losses.LOSSES`; ``population``:
    a data object with closed-form expectations that the model supports, or None;
    ``fixed_train``: a dataset's own training set ``(x, y)`` or None; ``sample(rng, n, batch=())``
    draws ``(x, y)`` of shapes ``batch + (n, d)`` and ``batch + (n,)``.
    """

    d: int
    loss: str = "square"
    population: Optional[object] = None
    fixed_train: Optional[tuple] = None  # a dataset's own training set

    @abc.abstractmethod
    def sample(self, rng, n, batch=()):
        """Draw ``(x, y)`` of shapes ``batch + (n, d)`` and ``batch + (n,)``."""

    def test_set(self, rng, n):
        """A held-out test sample ``(x, y)``, or None when the task has none."""
        return self.sample(rng, n)

    def eval_points(self, rng, n):
        """The ``n`` points where both sides record f, shape (n, d)."""
        return self.sample(rng, n)[0]

    def arrays(self) -> dict:
        """Arrays describing the task that a result should carry (e.g. a teacher)."""
        return {}

    def array_dims(self) -> dict:
        """Dimension names of :meth:`arrays` that :mod:`meanfield.core.result` does not declare."""
        return {}


@dataclass
class TeacherStudent(Task):
    teacher_w: np.ndarray  # (k, d)
    teacher_a: np.ndarray  # (k,)
    activation: str
    noise: float = 0.0
    loss: str = "square"

    def __post_init__(self):
        self.d = self.teacher_w.shape[1]
        k = self.teacher_w.shape[0]
        self.population = GaussianPopulation(
            weights=np.ones(1), scales=np.ones(1), offsets=np.zeros(1),
            teacher_w=self.teacher_w, teacher_c=(self.teacher_a / k)[None, :],
            activation=self.activation, noise_var=self.noise**2,
        )

    def arrays(self):
        return {"teacher_w": self.teacher_w, "teacher_a": self.teacher_a}

    def target(self, x):
        """Noise-free teacher output f*(x) for x of shape (..., d)."""
        k = self.teacher_w.shape[0]
        return get_activation(self.activation).fn(x @ self.teacher_w.T) @ self.teacher_a / k

    def sample(self, rng, n, batch=()):
        x = rng.standard_normal(tuple(batch) + (n, self.d))
        y = self.target(x)
        if self.noise > 0:
            y = y + self.noise * rng.standard_normal(y.shape)
        return x, y


@dataclass
class GaussianClasses(Task):
    d: int
    delta: float
    activation: str  # the student's: the population law has no teacher, only student kernels
    loss: str = "square"

    def __post_init__(self):
        self.population = GaussianPopulation(
            weights=np.array([0.5, 0.5]), scales=np.array([1.0 + self.delta, 1.0 - self.delta]),
            offsets=np.array([1.0, -1.0]), teacher_w=np.zeros((0, self.d)), teacher_c=np.zeros((2, 0)),
            activation=self.activation,
        )

    def sample(self, rng, n, batch=()):
        y = np.where(rng.random(tuple(batch) + (n,)) < 0.5, 1.0, -1.0)
        x = rng.standard_normal(tuple(batch) + (n, self.d)) * (1.0 + self.delta * y)[..., None]
        return x, y


@dataclass
class Dataset(Task):
    X: np.ndarray
    y: np.ndarray
    X_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    loss: str = "square"

    def __post_init__(self):
        self.d = self.X.shape[1]
        self.fixed_train = (self.X, self.y)

    def sample(self, rng, n, batch=()):
        """Rows drawn uniformly with replacement from the training set."""
        idx = rng.integers(0, self.X.shape[0], size=tuple(batch) + (n,))
        return self.X[idx], self.y[idx]

    def test_set(self, rng, n):
        """``X_test, y_test`` when given, else the training set itself (then test risk = train risk)."""
        if self.X_test is not None:
            return self.X_test, self.y_test
        return self.X, self.y

    def eval_points(self, rng, n):
        """The first ``n`` test inputs when given, else the first ``n`` training inputs."""
        return (self.X if self.X_test is None else self.X_test)[:n]


def _teacher(cfg, rng):
    t = cfg.task
    act = cfg.model.activation if t.teacher_activation == "same" else t.teacher_activation
    k, d = t.teacher_width, t.d
    if t.teacher_init == "orthonormal":
        q, _ = np.linalg.qr(rng.standard_normal((d, k)))
        w = q.T.copy()
    else:
        w = rng.standard_normal((k, d)) / np.sqrt(d)
    a = np.ones(k) if t.teacher_a == "ones" else rng.standard_normal(k)
    return w, a, act


def make_task(cfg) -> Task:
    """Build the task of a validated config (the teacher is drawn from the 'teacher' stream)."""
    t = cfg.task
    if t.kind == "teacher_student":
        w, a, act = _teacher(cfg, seeding.stream(cfg.run.seed, "teacher"))
        return TeacherStudent(teacher_w=w, teacher_a=a, activation=act, noise=t.noise, loss=t.loss)
    if t.kind == "gaussians":
        return GaussianClasses(d=t.d, delta=t.delta, activation=cfg.model.activation, loss=t.loss)
    with np.load(t.path, allow_pickle=False) as z:
        # only the arrays the task uses: other members (names, notes) need not be numeric
        arrs = {k: np.asarray(z[k], dtype=np.float64) for k in ("X", "y", "X_test", "y_test") if k in z.files}
    return Dataset(X=arrs["X"], y=arrs["y"], X_test=arrs.get("X_test"), y_test=arrs.get("y_test"), loss=t.loss)
