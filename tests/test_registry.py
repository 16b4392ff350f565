"""Limit methods and model kinds are registries: a new method is one adapter, an unknown name is an
error listing the registered ones (never a default branch)."""
import numpy as np
import pytest

import meanfield
from meanfield.config import ConfigError
from meanfield.core.registry import LIMIT_METHODS, get_limit_method
from meanfield_solvers.state import ParticleState

from helpers import tiny


class FrozenLimit(meanfield.LimitMethod):
    """A limit whose particles never move: its risk is the initial one at every time."""

    name = "frozen_test"
    family = "particle"
    doc = "test only"

    def run(self, st, grid, progress, log):
        from meanfield import seeding

        p0 = st.model.draw(seeding.stream(st.cfg.run.seed, "init"), st.cfg.limit.particles)
        obs = st.observer(ParticleState(p0.astype(st.dtype)))
        T = len(grid.t)
        side = meanfield.Side(extra={"particles0": p0})
        side.arrays["risk_mf"] = np.full(T, float(obs["risk_pop"]))
        side.arrays["f_mf"] = np.tile(obs["f"], (T, 1))
        return side


@pytest.fixture
def frozen():
    meanfield.register_limit_method(FrozenLimit())
    yield
    LIMIT_METHODS.pop("frozen_test", None)


def test_a_new_limit_method_is_one_adapter(frozen):
    cfg = tiny(**{"limit.method": "frozen_test", "time.snapshots": 0})
    res = meanfield.run(cfg)
    ref = meanfield.run(tiny(**{"time.snapshots": 0}))
    # same initial particles (the 'init' stream), so the same initial risk; then it stays there
    assert np.all(res["risk_mf"] == ref["risk_mf"][0]) and ref["risk_mf"][-1] < ref["risk_mf"][0]
    # the networks are coupled to the method's particles exactly as to the particle flow's
    assert np.array_equal(res["coupling_index_N8"], ref["coupling_index_N8"])
    assert np.array_equal(res["risk_nn"], ref["risk_nn"])


def test_unknown_names_are_refused_with_the_registered_ones():
    with pytest.raises(ConfigError) as e:
        meanfield.Config.from_dict(tiny(**{"limit.method": "particle"}))
    msg = str(e.value)
    assert "'particle' is not a registered limit method" in msg and "did you mean 'particles'" in msg
    assert all(repr(n) in msg for n in ("dmft", "dmft_linear", "ntk", "particles"))
    with pytest.raises(ValueError, match="unknown limit method 'nope'; registered"):
        get_limit_method("nope")
    with pytest.raises(ConfigError, match="model.kind = 'mlp' is not registered"):
        meanfield.Config.from_dict(tiny(**{"model.kind": "mlp"}))


def test_each_method_checks_its_own_config():
    with pytest.raises(ConfigError, match="two-layer mean-field limit"):
        meanfield.Config.from_dict(tiny(**{"model.depth": 2, "limit.method": "particles"}))
    with pytest.raises(ConfigError, match=r"deep \*linear\*"):
        meanfield.Config.from_dict(tiny(**{"model.depth": 2, "limit.method": "dmft_linear",
                                            "train.algorithm": "gd"}))
    with pytest.raises(ConfigError, match="analytic' is impossible here"):
        meanfield.Config.from_dict(tiny(**{"model.activation": "tanh"}))
