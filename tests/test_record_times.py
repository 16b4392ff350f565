"""Explicit recording times (``time.ts``): the run records exactly there, the same values as a
dense grid through those times, for the two-layer and the deep wing; bad lists are refused."""
import numpy as np
import pytest

from meanfield import config as C
from meanfield.core.grid import time_grid
from meanfield.extend import ExtendError, extended_config
from meanfield.run import run

from helpers import tiny

TS = [0.0, 0.3, 0.4, 0.9, 1.2]


def _problems(d):
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(d)
    return "\n".join(e.value.problems)


def _at_ts(dense_t, ts):
    idx = [int(np.argmin(np.abs(dense_t - t))) for t in ts]
    assert np.allclose(dense_t[idx], ts, rtol=0, atol=1e-12)
    return idx


def _compare(ts_cfg, dense_cfg, keys_time_axis):
    a, b = run(ts_cfg), run(dense_cfg)
    assert np.allclose(a["t"], TS, rtol=0, atol=1e-12) and len(a["t"]) == len(TS)
    assert np.allclose(a["t_nn"], TS, rtol=0, atol=1e-12)
    idx = _at_ts(b["t"], TS)
    compared = 0
    for key, axis in keys_time_axis.items():
        if key not in a.arrays:
            continue
        x, y = a[key], np.take(b[key], idx, axis=axis)
        # the same steps from the same streams: recording elsewhere changes nothing, bit for bit
        assert np.array_equal(x, y, equal_nan=True), key
        compared += 1
    return compared


def test_two_layer_records_at_the_given_times_with_the_dense_grid_values():
    common = {"time.t_max": 1.2, "time.snapshots": 0}
    ts = C.from_dict(tiny(**common, **{"time.ts": TS}))
    dense = C.from_dict(tiny(**common, **{"time.records": 13, "time.spacing": "linear"}))
    assert list(time_grid(dense).steps) == list(range(13))  # every step of dt = lr = 0.1
    n = _compare(ts, dense, {"risk_mf": 0, "f_mf": 0, "risk_mf_test": 0, "risk_nn": 2, "f_nn": 2,
                             "risk_nn_test": 2})
    assert n == 6


def test_deep_records_at_the_given_times_with_the_dense_grid_values():
    deep = {"model.depth": 2, "model.activation": "tanh", "limit.method": "ntk", "train.algorithm": "gd",
            "train.n_train": 5, "eval.n_points": 2, "limit.dt": 0.1, "train.lr": 0.1, "train.widths": [16],
            "train.seeds": 2, "time.t_max": 1.2}
    ts = C.from_dict(tiny(**deep, **{"time.ts": TS}))
    dense = C.from_dict(tiny(**deep, **{"time.records": 13, "time.spacing": "linear"}))
    n = _compare(ts, dense, {"risk_mf": 0, "risk_mf_train": 0, "f_mf": 0, "risk_nn": 2, "risk_nn_train": 2,
                             "f_nn": 2})
    assert n >= 4


def test_resolved_config_counts_the_times_and_round_trips(tmp_path):
    cfg = C.from_dict(tiny(**{"time.ts": [0, 1], "time.records": 7, "time.spacing": "linear"}))
    assert cfg.time.ts == [0.0, 1.0] and cfg.time.records == 2 and cfg.time.spacing == "log"
    p = tmp_path / "c.toml"
    p.write_text(C.to_toml(cfg))
    assert C.load(p) == cfg


def test_bad_times_are_refused_naming_the_fix():
    msg = _problems(tiny(**{"time.ts": [0.0, 0.25, 0.5]}))  # dt = lr = 0.1
    assert "not multiples of limit.dt = 0.1" in msg and "first: 0.25" in msg and "0.2 and 0.3" in msg
    assert "train.lr = 0.1" in msg
    assert "exceeds time.t_max = 1" in _problems(tiny(**{"time.ts": [0.0, 1.5]}))
    for bad in ([0.5, 0.2], [0.0, 0.0, 0.1], [-0.1, 0.2], [0.3]):
        assert "time.ts" in _problems(tiny(**{"time.ts": bad})) and "strictly increasing" in _problems(
            tiny(**{"time.ts": bad}))
    assert "a list of numbers" in _problems(tiny(**{"time.ts": ["0.1"]}))
    assert "finite" in _problems(tiny(**{"time.ts": [0.0, float("nan")]}))
    # off the networks' grid only: the limit side is fine at dt = 0.05
    msg = _problems(tiny(**{"limit.dt": 0.05, "time.ts": [0.0, 0.15]}))
    assert "train.lr = 0.1" in msg and "limit.dt" not in msg


def test_explicit_times_are_not_extended():
    cfg = C.from_dict(tiny(**{"time.ts": TS[:3] + [1.0], "time.records": 4}))
    with pytest.raises(ExtendError, match="time.ts"):
        extended_config(cfg, {"t_max": 2.0})
