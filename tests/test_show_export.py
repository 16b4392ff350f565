"""Labelled results: `meanfield show` summarises a run on one screen with its provenance, and
`meanfield export` round-trips a two-layer and a deep run to netCDF and to zarr with named
dimensions and provenance attributes, bit for bit."""
import tomllib

import numpy as np
import pytest

import meanfield
from helpers import tiny
from meanfield import config as C
from meanfield.cli import main

xr = pytest.importorskip("xarray")

DEEP = {"model.depth": 2, "model.activation": "tanh", "limit.method": "dmft", "train.algorithm": "gd",
        "train.n_train": 4, "eval.n_points": 2, "limit.dt": 0.1, "train.lr": 0.1, "limit.dmft_samples": 200,
        "limit.dmft_tangent_samples": 40, "limit.dmft_error_batches": 2, "train.widths": [16, 32],
        "train.seeds": 3, "time.t_max": 0.5, "time.records": 4}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, cfg in (("two", tiny(**{"time.snapshots": 2})), ("deep", tiny(**DEEP))):
        meanfield.run_to_dir(cfg, str(root / name), progress="none")
        out[name] = str(root / name)
    return out


#: format -> (file written in the run directory, xarray engine reading it back)
FORMATS = {"netcdf": ("result.nc", None), "zarr": ("result.zarr", "zarr")}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", ["two", "deep"])
def test_export_round_trips(runs, name, fmt, capsys):
    if fmt == "zarr":
        pytest.importorskip("zarr")
    file, engine = FORMATS[fmt]
    d = runs[name]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a data type without a portable zarr specification
        assert main(["export", d, "--format", fmt, "--force"]) == 0
    assert file in capsys.readouterr().out
    res = meanfield.load(d)
    with xr.open_dataset(f"{d}/{file}", engine=engine) as ds:
        ds.load()
    assert sorted(ds.data_vars) == sorted(k for k in res.keys() if k not in ds.coords)
    for k in res.keys():
        v = ds[k]
        assert v.dims == tuple(res.dims(k)), k  # the named dimensions of the result schema
        assert np.array_equal(np.asarray(v.values), np.asarray(res[k]), equal_nan=True), k
        assert v.attrs.get("meaning", None) is not None
    assert "time" in ds.coords and np.array_equal(ds["time"].values, res["t"])
    assert np.array_equal(ds["width"].values, res["widths"])
    a = ds.attrs
    assert a["meanfield_version"] == meanfield.__version__ and a["backend"] == res.summary["backend"]
    assert a["host_cpu"] and a["command_line"] and a["status"] == "completed" and a["kind"] == res.kind
    assert C.from_dict(tomllib.loads(a["config_toml"])) == res.config  # the config travels with the data
    if name == "deep":
        # named selections work on the exported file as on the result
        f = ds["f_nn"].sel(width=32).mean("seed")
        assert f.dims == ("time", "point") and np.allclose(f.values, res["f_nn"][1].mean(axis=0))


def test_export_refuses_to_overwrite_and_a_missing_run(runs, tmp_path, capsys):
    d = runs["two"]
    main(["export", d, "--out", str(tmp_path / "x.nc")])
    capsys.readouterr()
    assert main(["export", d, "--out", str(tmp_path / "x.nc")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["export", d, "--out", str(tmp_path / "x.nc"), "--force"]) == 0
    assert main(["export", str(tmp_path)]) == 2  # no finished run there
    assert "no summary.json" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["two", "deep"])
def test_show_fits_a_screen_and_states_the_numbers(runs, name, capsys):
    d = runs[name]
    assert main(["show", d]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 160
    res = meanfield.load(d)
    assert f"{res.kind} run, completed" in lines[0]
    assert f"-> {float(res['risk_mf'][-1]):.4g}" in out
    for i, N in enumerate(res["widths"]):
        assert f"N = {int(N)}: {res['risk_nn'][i, :, -1].mean():.4g}" in out
    p = res.summary["provenance"]
    for word in (f"meanfield-dynamics {meanfield.__version__}", p["command_line"][:100], f"backend   {p['backend']}",
                 p["host_cpu"], f"numpy {np.__version__}"):
        assert word in out
    if name == "deep":
        assert "gamma0 = 1" in out and "dmft: converged" in out and "(MC s.e.)" in out
    else:
        assert "M = 32" in out and "analytic expectations" in out


def test_provenance_names_the_command_as_typed(monkeypatch):
    from meanfield.core import provenance as P

    monkeypatch.setattr("sys.argv", ["/some/where/meanfield/__main__.py", "run", "x.toml"])
    assert P.command_line() == "python -m meanfield run x.toml"
    monkeypatch.setattr("sys.argv", ["/usr/local/bin/meanfield", "show", "d"])
    assert P.command_line() == "meanfield show d"
    assert P.host_cpu()
