"""The result schema: named dimensions, one vocabulary with documented aliases, load and to_xarray."""
import json
import os

import numpy as np
import pytest

import meanfield
from meanfield import config as C
from meanfield import store
from meanfield.core.result import ALIASES, DIMS

from helpers import tiny

xr = pytest.importorskip("xarray")

DEEP = {"model.depth": 2, "model.activation": "tanh", "limit.method": "ntk", "train.algorithm": "gd",
        "train.n_train": 4, "eval.n_points": 2, "train.widths": [8], "train.seeds": 2, "time.t_max": 0.3}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = {}
    for name, cfg in (("two_layer", tiny()), ("deep", tiny(**DEEP))):
        d = tmp_path_factory.mktemp(name)
        meanfield.run_to_dir(cfg, str(d), overwrite=True)
        out[name] = str(d)
    return out


@pytest.mark.parametrize("kind", ["two_layer", "deep"])
def test_to_xarray_round_trips_every_key_with_named_dims(saved, kind):
    res = meanfield.load(saved[kind])
    ds = res.to_xarray()
    assert set(ds.data_vars) == set(res.keys())
    for k in res.keys():
        assert np.array_equal(ds[k].values, np.asarray(res[k]), equal_nan=True), k
        assert all(not d.startswith(k + "_dim") for d in ds[k].dims), (k, ds[k].dims)  # every dim declared
        assert len(ds[k].dims) == np.ndim(res[k])
    # the same names for the same things in both families
    assert ds["f_nn"].dims == ("width", "seed", "time", "point")
    assert ds["risk_nn"].dims == ("width", "seed", "time")
    assert np.array_equal(ds["time"].values, res["t"]) and np.array_equal(ds["width"].values, res["widths"])
    # config, summary and provenance travel as attributes; the config parses back to the run's own
    cfg_text = ds.attrs["config_toml"]
    p = os.path.join(saved[kind], "again.toml")
    with open(p, "w") as fh:
        fh.write(cfg_text)
    assert C.load(p) == res.config
    prov = json.loads(ds.attrs["provenance_json"])
    assert prov["version"] == meanfield.__version__ and prov["command_line"] and prov["numba_threads"] >= 1
    assert ds.attrs["kind"] == kind


def test_two_layer_particles_carry_column_names(saved):
    res = meanfield.load(saved["two_layer"])
    ds = res.to_xarray()
    assert list(ds["column"].values) == ["a", "w[0]", "w[1]", "w[2]"]
    assert ds["particles_mf"].dims == ("snapshot", "particle", "column")
    assert ds["neurons_nn_N8"].dims == ("snapshot", "seed", "neuron_N8", "column")
    assert ds["coupling_index_N16"].dims == ("seed", "neuron_N16")


def test_repr_is_short_and_keys_are_listed(saved):
    res = meanfield.load(saved["deep"])
    r = repr(res)
    assert len(r) < 500 and "kind='deep'" in r and "more" in r
    assert "risk_mf_train" in res.keys() and "loss_inf" not in res.keys()


def test_old_deep_names_are_aliases_both_ways(saved, tmp_path):
    res = meanfield.load(saved["deep"])
    for old, new in ALIASES.items():
        if new in res:
            assert old in res and res[old] is res[new]
    # a directory written with the old names opens under the new ones
    old_dir = tmp_path / "old"
    os.makedirs(old_dir)
    inverse = {v: k for k, v in ALIASES.items()}
    store.save_arrays(str(old_dir / "result.npz"), {inverse.get(k, k): v for k, v in res.arrays.items()})
    with open(os.path.join(saved["deep"], "config.toml")) as a, open(old_dir / "config.toml", "w") as b:
        b.write(a.read())
    summary = store.load_json(os.path.join(saved["deep"], "summary.json"))
    summary.pop("files")  # directories of that release predate the checksums (verified by zip CRCs)
    store.save_json(str(old_dir / "summary.json"), summary)
    old = meanfield.load(str(old_dir))
    assert set(old.keys()) == set(res.keys())
    assert np.array_equal(old["risk_mf_train"], res["risk_mf_train"]) and np.array_equal(old["loss_nn"], res["risk_nn_train"])


def test_every_declared_dim_tuple_is_consistent_with_the_stored_arrays(saved):
    for kind in saved:
        res = meanfield.load(saved[kind])
        for k in res.keys():
            if k in DIMS:
                assert len(DIMS[k]) == np.ndim(res[k]), k
