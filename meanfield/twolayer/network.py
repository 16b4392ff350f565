r"""The built-in network as a model kind of the particle wing (``model.kind = "network"`` at depth 1):
the two-layer :class:`meanfield_solvers.models.TwoLayer` built from ``[model]`` and its task from ``[task]``.

At depth ≥ 2 the same kind is a deep muP network, run by :mod:`meanfield.deep` instead.
"""
from __future__ import annotations

from meanfield_solvers.models import TwoLayer

from ..core.registry import ModelKind, register_model
from ..tasks import make_task

__all__ = ["NetworkKind", "two_layer_model", "analytic_obstacles"]


def two_layer_model(cfg, d: int) -> TwoLayer:
    """The two-layer particle model of a validated config, for inputs of dimension ``d``."""
    m = cfg.model
    return TwoLayer(activation=m.activation, d=d, alpha=m.alpha, bias=m.bias,
                    lr_a=1.0 if m.train_a else 0.0, lr_w=m.lr_w, lr_b=m.lr_w, a_init=m.a_init, a_std=m.a_std,
                    a_value=m.a_value, w_std=m.w_std, b_std=m.b_std, antithetic=m.antithetic)


def analytic_obstacles(c: dict) -> list:
    """Why closed-form population expectations are impossible for config data ``c`` ([] if possible)."""
    from meanfield_solvers.activations import closed_form_names

    CLOSED_FORM = closed_form_names()
    task, model = c["task"], c["model"]
    teacher_act = model["activation"] if task["teacher_activation"] == "same" else task["teacher_activation"]
    why = []
    if task["kind"] == "dataset":
        why.append("the task is a dataset (closed forms need Gaussian inputs)")
    if model["activation"] not in CLOSED_FORM:
        why.append(f"activation {model['activation']!r} has no closed form (only {', '.join(CLOSED_FORM)})")
    if model["bias"]:
        why.append("neurons have biases (set model.bias = false)")
    if task["loss"] != "square":
        why.append("the loss is not square")
    if task["kind"] == "teacher_student" and teacher_act != model["activation"]:
        why.append(f"the teacher's activation ({teacher_act}) differs from the student's")
    return why


class NetworkKind(ModelKind):
    name = "network"
    doc = "the built-in network: two-layer at depth 1 (particles), deep muP at depth >= 2 (meanfield.deep)"

    def build(self, cfg):
        task = make_task(cfg)
        return two_layer_model(cfg, task.d), task

    def analytic_obstacles(self, c):
        return analytic_obstacles(c)


register_model(NetworkKind())
