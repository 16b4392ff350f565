"""Getting started: `meanfield init` templates validate and run; the deep example's limit.dt equals
train.lr; a resolved config lists only the keys of its run's family."""
import os
import tomllib

import numpy as np
import pytest

import meanfield
from meanfield import config as C
from meanfield.cli import main
from meanfield.init import TEMPLATES, write_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_init_writes_each_template_and_refuses_to_overwrite(tmp_path, capsys):
    for name in TEMPLATES:
        path = tmp_path / f"{name}.toml"
        assert main(["init", name, str(path)]) == 0
        assert f"wrote {path}" in capsys.readouterr().out
        text = path.read_text()
        assert text.startswith("#") and text.count("#") >= 10  # annotated
    before = (tmp_path / "deep.toml").read_text()
    assert main(["init", "deep", str(tmp_path / "deep.toml")]) == 2  # exists: refused, untouched
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "deep.toml").read_text() == before
    assert main(["init", "nonsense", str(tmp_path / "x.toml")]) == 2
    assert not (tmp_path / "x.toml").exists()
    assert main(["init", str(tmp_path / "default.toml")]) == 0  # the default template: two-layer
    assert (tmp_path / "default.toml").read_text() == (tmp_path / "two-layer.toml").read_text().replace(
        'name = "two-layer"', 'name = "default"')


def test_two_layer_template_runs_and_learns(tmp_path):
    """The limit's risk falls by more than 10x over the run, and the widest networks end closest to it."""
    path = tmp_path / "tl.toml"
    write_template("two-layer", path)
    res = meanfield.run(C.load(path), progress="none")
    r = res["risk_mf"]
    assert res.summary["status"] == "completed" and r[-1] < 0.1 * r[0]
    gap = np.abs(res["risk_nn"][:, :, -1].mean(axis=1) - r[-1])
    assert gap[-1] < gap[0]


def test_deep_template_runs_with_dt_equal_to_lr(tmp_path):
    path = tmp_path / "dp.toml"
    write_template("deep", path)
    cfg = C.load(path)
    assert cfg.limit.dt == cfg.train.lr and cfg.train.algorithm == "gd"
    res = meanfield.run(cfg, progress="none")
    assert res.summary["limit"]["status"] == "converged"
    assert res["risk_mf"][-1] < 0.5 * res["risk_mf"][0]
    # the seed-mean loss of the widest networks is within 3 standard errors + MC error of the limit
    nn = res["risk_nn"][-1, :, -1]
    se = nn.std(ddof=1) / np.sqrt(nn.size)
    assert abs(nn.mean() - res["risk_mf"][-1]) < 3 * se + 3 * res["risk_mf_err"][-1] + 0.02 * res["risk_mf"][-1]


def test_scan_template_is_a_valid_spec(tmp_path):
    from meanfield.scan.runner import plan_scan

    path = tmp_path / "sc.toml"
    write_template("scan", path)
    plan = plan_scan(str(path))
    assert len(plan.runs) == 6


def test_deep_quick_example_sets_dt_to_lr_and_validates():
    path = os.path.join(ROOT, "experiments", "deep_quick.toml")
    cfg = C.load(path)
    assert cfg.limit.method == "dmft" and cfg.train.algorithm == "gd" and cfg.limit.dt == cfg.train.lr
    assert "limit.dt = train.lr" in open(path).read()


PARTICLE_ONLY = {"model": {"alpha", "bias", "a_std", "w_std", "antithetic", "lr_w"},
                 "limit": {"particles", "expectation", "mc_samples", "integrator"}, "train": {"coupling"}}
DEEP_ONLY = {"model": {"gamma0", "parametrisation"}, "limit": {"dmft_samples", "dmft_tol"}, "train": {"integrator"}}


@pytest.mark.parametrize("template,absent", [("deep", PARTICLE_ONLY), ("two-layer", DEEP_ONLY)])
def test_resolved_config_lists_only_its_familys_keys(tmp_path, template, absent):
    path = tmp_path / "c.toml"
    write_template(template, path)
    cfg = C.load(path)
    written = tomllib.loads(C.to_toml(cfg))
    listed = {(sec, k) for sec, keys in written.items() for k in keys}
    assert not [(s, k) for s, ks in absent.items() for k in ks if (s, k) in listed]
    if template == "deep":
        assert "dynamics" not in written and written["model"]["gamma0"] == 1.0
    (tmp_path / "back.toml").write_text(C.to_toml(cfg))
    assert C.load(tmp_path / "back.toml") == cfg  # loads back to the same resolved config


@pytest.mark.parametrize("model,knob", [({"alpha": 4.0}, ("alpha", 4.0)), ({"gamma0": 0.25}, ("gamma0", 0.25))])
def test_deep_richness_is_written_once(tmp_path, model, knob):
    cfg = C.from_dict({"model": {"depth": 2, "activation": "tanh", **model}, "limit": {"method": "ntk"},
                       "train": {"algorithm": "gd", "n_train": 4}})
    written = tomllib.loads(C.to_toml(cfg))["model"]
    assert written[knob[0]] == knob[1] and ({"alpha", "gamma0"} - {knob[0]}).isdisjoint(written)
    (tmp_path / "b.toml").write_text(C.to_toml(cfg))
    assert C.load(tmp_path / "b.toml") == cfg and cfg.model.alpha == 4.0


def test_keys_of_the_other_family_cannot_split_one_run():
    """A deep run given a two-layer-only value (ignored) resolves to the same config as without it."""
    base = {"model": {"depth": 2, "activation": "tanh"}, "limit": {"method": "ntk"},
            "train": {"algorithm": "gd", "n_train": 4}}
    other = {**base, "limit": {"method": "ntk", "particles": 99}, "eval": {"n_test": 7}}
    assert C.from_dict(other) == C.from_dict(base)
    two = C.from_dict({"model": {"gamma0": 0.5}, "limit": {"dmft_samples": 10}})
    assert two.model.alpha == 2.0 and two == C.from_dict({"model": {"alpha": 2.0}})
