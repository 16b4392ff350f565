"""meanfield: mean-field (infinite-width) learning dynamics beside real finite-width training.

Quick use:

    import meanfield
    cfg = meanfield.Config.from_dict({"task": {"d": 20}, "limit": {"particles": 256, "dt": 0.05},
                                      "train": {"widths": [16, 64], "lr": 0.05}, "time": {"t_max": 5.0}})
    result = meanfield.run(cfg)          # seconds; progress bars (or log lines) while it runs
    result["risk_mf"], result["risk_nn"]

``meanfield init two-layer|deep|scan FILE`` writes an annotated starting config; the README's
"Which limit method?" says which limit to use for which model.

Extending it (the public API a model written outside the package uses; see
``experiments/custom_model.py``): subclass :class:`ParticleModel` (the model) and :class:`Task`
(its data), describe how a config builds them with a :class:`ModelKind` (its extra ``[model]``
keys as :class:`Field`), and :func:`register_model` it; a new infinite-width method is a
:class:`LimitMethod` given to :func:`register_limit_method`.
"""
from meanfield_solvers.models import ParticleModel, Samples, UnsupportedData
from meanfield_solvers.state import ParticleState

from .config import Config, ConfigError, Field
from .config import load as load_config
from .core.registry import LimitMethod, ModelKind, Side, register_limit_method, register_model
from .run import Result, load, run, run_to_dir
from .tasks import Task

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Field", "Result", "load", "load_config", "run", "run_to_dir", "__version__",
           "ParticleModel", "Samples", "UnsupportedData", "ParticleState", "Task", "ModelKind", "register_model",
           "LimitMethod", "register_limit_method", "Side"]
