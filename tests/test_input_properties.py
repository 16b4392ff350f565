"""Property-based tests (hypothesis) of the dataset loader, the scan spec and valid tiny configs
(issue 17; the config schema and ``--set`` are in tests/test_config_properties.py).

* every generated unusable dataset (a missing array, wrong dimensions or lengths, non-numeric,
  complex, non-finite, zero rows or columns, test columns that differ from the training ones,
  logistic labels outside {-1, +1}) makes ``meanfield run`` exit 2 naming ``task.path``, with no
  traceback and nothing written;
* every generated malformed scan spec (unknown top-level or schema keys, values that are not a
  non-empty list, a value the schema refuses, zipped lists of different lengths, a bad seed count)
  makes ``meanfield scan`` exit 2 naming the offending key, nothing written;
* every generated *valid* tiny config runs and either completes with finite records or is reported
  ``diverged``/``failed`` with a step (never a completed run with a non-finite number).
"""
import math
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import meanfield  # noqa: E402
from meanfield.cli import main  # noqa: E402
from helpers import tiny  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _exit2(argv, named, capsys, out):
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert all(n in err for n in named), (named, err)
    assert not os.path.exists(out), "something was written"


# ------------------------------------------------------------------------------------ datasets
_P = st.integers(1, 6)
_D = st.integers(1, 3)


@st.composite
def bad_dataset(draw):
    """(arrays for np.savez, task overrides) of a dataset that must be refused."""
    P, D = draw(_P), draw(_D)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X, y = rng.standard_normal((P, D)), rng.standard_normal(P)
    arrays, task = {"X": X, "y": y}, {}
    kind = draw(st.sampled_from(["missing", "X-1d", "y-2d", "lengths", "strings", "complex", "nonfinite",
                                 "no-columns", "no-rows", "test-columns", "logistic-labels"]))
    if kind == "missing":
        del arrays[draw(st.sampled_from(["X", "y"]))]
    elif kind == "X-1d":
        arrays["X"] = X[:, 0]
    elif kind == "y-2d":
        arrays["y"] = y[:, None]
    elif kind == "lengths":
        arrays["y"] = rng.standard_normal(P + draw(st.integers(1, 3)))
    elif kind == "strings":
        arrays["X"] = X.astype(str)
    elif kind == "complex":
        name = draw(st.sampled_from(["X", "y"]))
        arrays[name] = arrays[name] * (1.0 + 0.5j)
    elif kind == "nonfinite":
        a = arrays[draw(st.sampled_from(["X", "y"]))]
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif kind == "no-columns":
        arrays["X"] = np.zeros((P, 0))
    elif kind == "no-rows":
        arrays["X"], arrays["y"] = np.zeros((0, D)), np.zeros(0)
    elif kind == "test-columns":
        arrays["X_test"], arrays["y_test"] = rng.standard_normal((2, D + 1)), rng.standard_normal(2)
    else:
        arrays["y"] = np.where(y > 0, 1.0, -1.0)
        arrays["y"][draw(st.integers(0, P - 1))] = draw(st.sampled_from([0.0, 0.5, 2.0]))  # one label off
        task["loss"] = "logistic"
    return arrays, task


def _dataset_config(work, arrays, task):
    np.savez(os.path.join(work, "data.npz"), **arrays)
    cfg = tiny(**{"task.kind": "dataset", "task.path": "data.npz", "limit.expectation": "mc",
                  **{f"task.{k}": v for k, v in task.items()}})
    del cfg["task"]["d"], cfg["task"]["teacher_width"]
    text = ""
    for sec, t in cfg.items():
        text += f"[{sec}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in t.items())
    path = os.path.join(work, "c.toml")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def _toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


@SETTINGS
@given(bad_dataset())
def test_an_unusable_dataset_is_refused_naming_it(capsys, case):
    arrays, task = case
    with tempfile.TemporaryDirectory() as work:
        path = _dataset_config(work, arrays, task)
        out = os.path.join(work, "out")
        _exit2(["run", path, "--out", out, "-q"], ["task.path" if "loss" not in task else "logistic"], capsys, out)


# ----------------------------------------------------------------------------------- scan specs
@st.composite
def bad_spec(draw):
    """(spec text after the base line, a string the refusal must contain)."""
    kind = draw(st.sampled_from(["top-key", "section", "key", "not-list", "empty", "bad-value", "zip-lengths",
                                 "seeds"]))
    word = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=8))
    if kind == "top-key":
        w = word if word not in ("base", "axes", "zip", "seeds", "description") else word + "x"
        return f"{w} = 1\n", w
    if kind == "section":
        sec = word + "q"
        return f'[axes]\n"{sec}.lr" = [0.1]\n', sec
    if kind == "key":
        return f'[axes]\n"train.{word}q" = [0.1]\n', f"train.{word}q"
    if kind == "not-list":
        return f'[axes]\n"train.lr" = {draw(st.sampled_from(["0.1", chr(34) + word + chr(34), "true"]))}\n', "train.lr"
    if kind == "empty":
        return '[axes]\n"train.lr" = []\n', "train.lr"
    if kind == "bad-value":
        v = draw(st.sampled_from(["-0.1", "0.0", '"fast"']))
        return f'[axes]\n"train.lr" = [0.05, {v}]\n', "train.lr"
    if kind == "zip-lengths":
        n = draw(st.integers(1, 3))
        vals = ", ".join(["0.1"] * n)
        more = ", ".join(["0.1"] * (n + draw(st.integers(1, 2))))
        return f'[[zip]]\n"limit.dt" = [{vals}]\n"train.lr" = [{more}]\n', "zip"
    return f"seeds = {draw(st.sampled_from(['0', '-2', '1.5', chr(34) + 'x' + chr(34)]))}\n", "seeds"


@SETTINGS
@given(bad_spec())
def test_a_malformed_scan_spec_is_refused_naming_the_key(capsys, case):
    body, named = case
    with tempfile.TemporaryDirectory() as work:
        base = os.path.join(work, "c.toml")
        with open(base, "w") as fh:
            fh.write("".join(f"[{s}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in t.items())
                             for s, t in tiny().items()))
        spec = os.path.join(work, "s.toml")
        with open(spec, "w") as fh:
            fh.write('base = "c.toml"\n' + body)
        out = os.path.join(work, "scan")
        _exit2(["scan", spec, "--out", out, "-q"], [named], capsys, out)


# ------------------------------------------------------------------------ valid tiny configs run
@st.composite
def valid_tiny(draw):
    act = draw(st.sampled_from(["erf", "relu", "tanh", "linear"]))
    expectation = "analytic" if act != "tanh" and draw(st.booleans()) else "mc"
    algo = draw(st.sampled_from(["online_sgd", "sgd", "gd"] + (["population_gd"] if expectation == "analytic" else [])))
    lr = draw(st.sampled_from([0.05, 0.2, 1.0, 8.0]))  # the last ones may well diverge
    over = {"model.activation": act, "limit.expectation": expectation, "train.algorithm": algo, "train.lr": lr,
            "limit.dt": lr, "limit.integrator": draw(st.sampled_from(["euler", "heun", "rk4"])),
            "train.widths": draw(st.sampled_from([[4], [4, 8]])), "train.seeds": draw(st.integers(1, 2)),
            "time.t_max": 4 * lr, "time.records": draw(st.integers(2, 5)), "run.backend": "numpy",
            "eval.n_test": 50, "train.n_train": 20, "limit.mc_samples": 20, "limit.particles": 16}
    if draw(st.booleans()):
        over["dynamics.temperature"] = 0.05
        over["limit.integrator"] = draw(st.sampled_from(["euler_maruyama", "leimkuhler_matthews"]))
    return over


@settings(max_examples=25, deadline=None)
@given(valid_tiny())
def test_a_valid_tiny_config_completes_with_finite_records_or_says_where_it_stopped(over):
    res = meanfield.run(tiny(**over))
    status = res.summary["status"]
    assert status in ("completed", "diverged", "failed"), status
    if status == "completed":
        for k in ("risk_mf", "risk_nn"):
            assert np.all(np.isfinite(res[k])), (k, over)
    else:
        assert res.summary["diverged"] and all(d.get("step") is not None for d in res.summary["diverged"]), \
            res.summary["diverged"]
