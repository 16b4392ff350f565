"""Validation: every problem reported at once, clearly, before anything runs."""
import os

import numpy as np
import pytest

from meanfield import config as C
from meanfield.cli import main
from helpers import tiny


def problems(d):
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(d)
    return e.value.problems


def test_defaults_fill_and_roundtrip(tmp_path):
    cfg = C.from_dict(tiny())
    assert cfg.limit.integrator == "rk4" and cfg.train.algorithm == "online_sgd"
    p = tmp_path / "c.toml"
    p.write_text(C.to_toml(cfg))
    assert C.load(p) == cfg


def test_unknown_key_suggests_and_lists_allowed():
    (msg,) = problems(tiny(**{"train.widht": [4]}))
    assert "train.widht" in msg and "did you mean 'widths'" in msg and "allowed keys" in msg


def test_all_problems_in_one_message():
    ps = problems(tiny(**{"train.seeds": True, "train.lr": "0.1", "limit.dt": -1.0, "model.alpha": float("nan"),
                          "limit.particles": 0, "sectionx.k": 1}))
    text = "\n".join(ps)
    assert len(ps) == 6
    assert "train.seeds must be an integer" in text and "(bool)" in text
    assert "train.lr must be a number" in text and "remove the quotes" in text
    assert "limit.dt = -1.0 is out of range" in text
    assert "model.alpha must be finite" in text
    assert "limit.particles = 0 is out of range" in text
    assert "unknown section [sectionx]" in text


def test_incompatible_options_explained():
    ps = problems(tiny(**{"model.activation": "tanh"}))
    assert any("analytic" in p and "tanh" in p and "'mc'" in p for p in ps)
    ps = problems(tiny(**{"model.bias": True}))
    assert any("bias" in p for p in ps)
    ps = problems(tiny(**{"task.loss": "logistic"}))
    assert any("+-1 labels" in p for p in ps)
    ps = problems(tiny(**{"train.coupling": True, "train.widths": [64]}))
    assert any("limit.particles" in p for p in ps)
    ps = problems(tiny(**{"model.antithetic": True, "train.widths": [7]}))
    assert any("even" in p for p in ps)
    ps = problems(tiny(**{"task.kind": "dataset"}))
    assert any("task.path" in p for p in ps)
    ps = problems(tiny(**{"model.activation": "sigmoid"}))
    assert any("choose one of" in p for p in ps)


def test_dataset_checks(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=np.array([[1.0, np.nan]]), y=np.array([1.0]))
    ps = problems(tiny(**{"task.kind": "dataset", "task.path": str(bad), "limit.expectation": "mc"}))
    assert any("NaN" in p for p in ps)
    mism = tmp_path / "mism.npz"
    np.savez(mism, X=np.ones((3, 2)), y=np.ones(4))
    ps = problems(tiny(**{"task.kind": "dataset", "task.path": str(mism), "limit.expectation": "mc"}))
    assert any("same P" in p for p in ps)


def test_cli_invalid_config_exits_2_and_writes_nothing(tmp_path, capsys):
    cfgp = tmp_path / "c.toml"
    cfgp.write_text('[train]\nwidhts = [4]\nlr = "0.1"\n')
    out = tmp_path / "out"
    assert main(["run", str(cfgp), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "widhts" in err and "train.lr" in err
    assert not out.exists()
    assert main(["run", str(cfgp), "--out", str(out), "--set", "train.widhts=3"]) == 2
    assert main(["run", str(tmp_path / "missing.toml"), "--out", str(out)]) == 2
    assert not out.exists()


def test_override_parsing():
    assert C.parse_override("train.lr=0.5") == ("train", "lr", 0.5)
    assert C.parse_override("run.backend=numba") == ("run", "backend", "numba")
    assert C.parse_override("train.widths=[4, 8]") == ("train", "widths", [4, 8])
    with pytest.raises(ValueError):
        C.parse_override("lr=0.5")


def test_readme_documents_every_config_key():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    missing = [f"{sec}.{key}" for sec, fields in C.SCHEMA.items() for key in fields
               if f"**[{sec}]**" not in readme or f"| `{key}` |" not in readme]
    assert not missing, f"README config reference lacks {missing}: regenerate it with config.reference_markdown()"
