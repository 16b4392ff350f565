"""meanfield: mean-field (infinite-width) learning dynamics beside real finite-width training.

Quick use::

    import meanfield
    cfg = meanfield.Config.from_dict({"task": {"d": 20}, "train": {"widths": [64, 256]}})
    result = meanfield.run(cfg)
    result["risk_mf"], result["risk_nn"]
"""
from .config import Config, ConfigError, load as load_config
from .run import Result, load, run, run_to_dir

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Result", "load", "load_config", "run", "run_to_dir", "__version__"]
