r"""The model nobody wrote into the code: experiments/custom_model.py's Gaussian units run through
``meanfield.run`` and ``meanfield plot`` like the built-in models (issue 13's proof of the seams).

Claims: the finite networks' mean initial risk equals the closed form C_f + K(0)/(2N) within its
Monte Carlo error at every width (independent initial units); their outputs approach the limit's as
N^(-1/2) (fitted slope of the RMS distance over seeds and points); the limit's risk decreases; the
run directory re-opens and plots in a fresh process (the config names the plugin file); a config the
model cannot run is refused with the fix named.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import meanfield
from meanfield.config import ConfigError

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
PLUGIN = os.path.abspath(os.path.join(ROOT, "experiments", "custom_model.py"))


def _module():
    name = "custom_model"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PLUGIN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


cm = _module()


def _config(**over):
    cfg = {
        "run": {"seed": 3, "backend": "numpy"},
        "model": {"kind": "gaussian_units", "plugin": PLUGIN},
        "limit": {"particles": 2048, "expectation": "analytic", "integrator": "euler", "dt": 0.1},
        "train": {"widths": [8, 32, 128], "seeds": 64, "algorithm": "population_gd", "lr": 0.1, "coupling": False},
        "time": {"t_max": 1.0, "records": 6, "spacing": "linear", "snapshots": 2},
        "eval": {"n_points": 32},
    }
    for k, v in over.items():
        sec, key = k.split(".", 1)
        cfg[sec][key] = v
    return cfg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("units"))
    meanfield.run_to_dir(_config(), out, overwrite=True)
    return out


def test_initial_risk_is_the_closed_form_within_mc_error(run_dir):
    res = meanfield.load(run_dir)
    assert res.kind == "gaussian_units" and list(res.summary["columns"]) == ["c", "y"]
    for i, n in enumerate(res["widths"]):
        r0 = res["risk_nn"][i, :, 0]
        se = r0.std(ddof=1) / np.sqrt(r0.size)
        want = cm.expected_initial_energy(int(n))
        assert abs(r0.mean() - want) < 4 * se, (n, r0.mean(), se, want)
    # and the mean-field limit started at its own closed form up to its 1/(2M) excess
    assert abs(res["risk_mf"][0] - cm.C_f()) < 0.01


def test_finite_widths_approach_the_limit_as_n_to_the_minus_half(run_dir):
    res = meanfield.load(run_dir)
    widths = np.asarray(res["widths"], float)
    for k in (0, -1):  # at initialisation and after training to t = 1
        dev = res["f_nn"][:, :, k, :] - res["f_mf"][k][None, None, :]
        rms = np.sqrt(np.mean(dev ** 2, axis=(1, 2)))
        slope = np.polyfit(np.log(widths), np.log(rms), 1)[0]
        assert -0.62 < slope < -0.38, (k, slope, rms)
    assert res["risk_mf"][-1] < 0.7 * res["risk_mf"][0]  # the flow learns the target


def test_plots_and_labelled_dataset_in_a_fresh_process(run_dir):
    # a new interpreter knows nothing of the model: config.toml's model.plugin imports it
    code = ("import sys; from meanfield.cli import main; sys.exit(main(['plot', sys.argv[1]]))")
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", code, run_dir], capture_output=True, text=True, timeout=300,
                          env=env, cwd=os.path.dirname(run_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for f in ("risk.png", "particles.png", "clouds.png"):
        assert os.path.isfile(os.path.join(run_dir, f)), f
    pytest.importorskip("xarray")
    ds = meanfield.load(run_dir).to_xarray()
    assert list(ds["column"].values) == ["c", "y"]
    assert ds["particles_mf"].dims == ("snapshot", "particle", "column")
    assert ds["target_f"].dims == ("target_point",)


def test_configs_the_model_cannot_run_are_refused_with_the_fix():
    with pytest.raises(ConfigError) as e:
        meanfield.Config.from_dict(_config(**{"train.algorithm": "online_sgd"}))
    assert "population_gd" in str(e.value)
    with pytest.raises(ConfigError) as e:
        meanfield.Config.from_dict(_config(**{"limit.expectation": "mc"}))
    assert "no samples" in str(e.value)
    with pytest.raises(ConfigError) as e:
        meanfield.Config.from_dict(_config(**{"model.activation": "relu"}))
    assert "option of the built-in network" in str(e.value)
    with pytest.raises(ConfigError) as e:
        meanfield.Config.from_dict(_config(**{"model.s": -1.0}))
    assert "model.s" in str(e.value)
    with pytest.raises(ConfigError) as e:
        meanfield.Config.from_dict({"model": {"kind": "gaussian_unit"}})
    msg = str(e.value)
    assert "gaussian_units" in msg and "model.plugin" in msg  # did-you-mean and the way to register
