"""Coordinate check: under muP the per-layer update sizes do not depend on width; under the standard
parametrisation the hidden-layer updates grow with width, under the NTK parametrisation they shrink."""
import os

import numpy as np

from meanfield.cli import main
from meanfield.deep.coordcheck import coord_data, coord_table
from meanfield.deep.parametrisation import make_parametrisation


def _points():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 5))
    return X, np.tanh(X[:, 0])


def test_update_size_exponents_by_parametrisation():
    X, y = _points()
    ps = {n: make_parametrisation(n, 1.0) for n in ("mup", "ntk", "standard")}
    cd = coord_data("tanh", X, y, 3, [64, 128, 256, 512], ps, lr=0.02, steps=3, seeds=4)
    for t in (1, 2, 3):
        e = cd.exponent("mup", "upd", t)
        assert np.all(np.abs(e) < 0.1), (t, e)  # width-independent updates, every layer and f
        assert np.all(np.abs(cd.exponent("mup", "act", t)[:-1]) < 0.05)
    sp = cd.exponent("standard", "upd", 1)
    assert np.all(sp[1:] > 0.4), sp  # hidden layers h2, h3 and f grow with width (~N^1/2, f ~ N)
    ntk = cd.exponent("ntk", "upd", 1)
    assert np.all(ntk[:-1] < -0.3), ntk  # lazy: hidden updates shrink (~N^-1/2)
    assert "exponent" in coord_table(cd)


def test_residual_mup_updates_are_width_independent():
    X, y = _points()
    p = {"mup": make_parametrisation("mup", 1.0, residual=True)}
    cd = coord_data("tanh", X, y, 6, [64, 128, 256, 512], p, lr=0.05, steps=2, seeds=4)
    assert np.all(np.abs(cd.exponent("mup", "upd", 2)) < 0.1)


def test_cli_coordcheck_writes_table_and_plot(tmp_path, capsys):
    cfgp = tmp_path / "c.toml"
    cfgp.write_text('[run]\nname = "cc"\n[task]\nd = 4\n[model]\ndepth = 2\nactivation = "tanh"\n'
                    '[limit]\nmethod = "none"\n[train]\nwidths = [16, 32]\nseeds = 2\nlr = 0.05\nn_train = 6\n')
    out = tmp_path / "out"
    assert main(["coordcheck", str(cfgp), "--out", str(out), "--steps", "2",
                 "--parametrisations", "mup,standard"]) == 0
    for f in ("coordcheck.npz", "coordcheck.txt", "coordcheck.png"):
        assert os.path.getsize(out / f) > 0
    z = np.load(out / "coordcheck.npz")
    assert z["upd_mup"].shape == (2, 3, 3) and z["upd_standard"].shape == (2, 3, 3)
    assert "[standard]" in capsys.readouterr().out
    assert main(["coordcheck", str(cfgp), "--out", str(tmp_path / "o2"), "--parametrisations", "mup,sp"]) == 2
    assert not (tmp_path / "o2").exists()
