"""Own evaluation points (``eval.points = "file.npy"``): the run records f exactly there, and the
function distance it reports equals one computed independently from the final particles and
neurons at those points; bad files are refused before any work, naming the file and the shape."""
import json
import os

import numpy as np
import pytest
from scipy.special import erf

from meanfield import config as C
from meanfield.analysis.runs import function_gaps
from meanfield.cli import main
from meanfield.run import run, run_to_dir

from helpers import tiny


def _write_cfg(folder, d):
    lines = []
    for sec, table in d.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {C._toml_value(v)}" for k, v in table.items()]
    path = os.path.join(folder, "c.toml")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _f_erf(theta, X, alpha):
    """(alpha/N) sum_i a_i erf(w_i.x / sqrt 2) for rows theta = (a, w) (the README's erf convention)."""
    a, W = theta[:, 0], theta[:, 1:]
    return alpha * (erf(X @ W.T / np.sqrt(2.0)) @ a) / theta.shape[0]


def test_two_layer_function_distance_at_own_points_matches_an_independent_computation(tmp_path):
    rng = np.random.default_rng(7)
    pts = 1.5 * rng.standard_normal((5, 3))
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "pts.npy", pts)
    cfg = C.load(_write_cfg(tmp_path, tiny(**{"eval.points": "sub/pts.npy", "time.snapshots": 2})))
    # relative to the config file's folder, stored absolute; n_points is the file's row count
    assert cfg.eval.points == str(tmp_path / "sub" / "pts.npy") and cfg.eval.n_points == 5
    res = run(cfg)
    assert np.array_equal(res["x_eval"], pts)
    with open(tmp_path / "sub" / "pts.npy", "rb") as fh:
        import hashlib

        assert res.summary["eval_points"]["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    alpha = cfg.model.alpha
    f_mf = _f_erf(res["particles_mf_final"], pts, alpha)
    assert np.allclose(res["f_mf"][-1], f_mf, rtol=1e-12, atol=1e-14)
    fd = function_gaps(res).fdist  # (W, S, T)
    for i, N in enumerate(res["widths"]):
        neurons = res[f"neurons_nn_N{N}"][-1]  # (S, N, p) at the last snapshot = t_max
        for s in range(neurons.shape[0]):
            f_nn = _f_erf(neurons[s], pts, alpha)
            independent = np.sqrt(np.mean((f_nn - f_mf) ** 2))
            assert fd[i, s, -1] == pytest.approx(independent, rel=1e-10, abs=1e-14)
    # only the points changed: every risk equals that of the same run with sampled points, bit for bit
    other = run(C.from_dict(tiny(**{"time.snapshots": 2, "eval.n_points": 5})))
    for k in ("risk_mf", "risk_mf_test", "risk_nn", "risk_nn_test"):
        assert np.array_equal(res[k], other[k], equal_nan=True), k
    assert not np.array_equal(res["x_eval"], other["x_eval"])


def test_deep_run_uses_own_points_as_test_points_labelled_by_the_teacher(tmp_path):
    pts = np.random.default_rng(3).standard_normal((3, 3))
    np.save(tmp_path / "p.npy", pts)
    deep = {"model.depth": 2, "model.activation": "tanh", "limit.method": "ntk", "train.algorithm": "gd",
            "train.n_train": 5, "limit.dt": 0.1, "train.lr": 0.1, "train.widths": [16], "train.seeds": 2,
            "time.t_max": 0.5, "task.teacher_activation": "erf"}
    cfg = C.from_dict(tiny(**deep, **{"eval.points": str(tmp_path / "p.npy")}))
    res = run(cfg)
    assert np.array_equal(res["x_test"], pts)
    # labels: the noise-free teacher f*(x) = (1/k) sum_m a*_m erf(v_m.x / sqrt 2), computed here
    from meanfield.tasks import make_task

    teacher = make_task(cfg)  # the run's teacher (drawn from the run's seed)
    tw, ta = teacher.teacher_w, teacher.teacher_a
    assert np.allclose(res["y_test"], erf(pts @ tw.T / np.sqrt(2.0)) @ ta / len(ta), rtol=1e-13, atol=1e-15)
    P = res["x_train"].shape[0]
    assert np.allclose(res["risk_mf_test"], 0.5 * np.mean((res["y_test"] - res["f_mf"][:, P:]) ** 2, axis=1),
                       rtol=1e-12)


def _problems(d, base_dir=None):
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(d, base_dir=base_dir)
    return "\n".join(e.value.problems)


def test_bad_points_files_are_refused_naming_the_file_and_shape(tmp_path, capsys):
    p = tmp_path / "p.npy"
    np.save(p, np.zeros((4, 5)))
    msg = _problems(tiny(**{"eval.points": str(p)}))
    assert str(p) in msg and "shape (4, 5)" in msg and "expected (n, 3)" in msg
    np.save(p, np.zeros(3))
    assert "shape (3,)" in _problems(tiny(**{"eval.points": str(p)}))
    bad = np.zeros((3, 3))
    bad[1, 2] = np.nan
    np.save(p, bad)
    msg = _problems(tiny(**{"eval.points": str(p)}))
    assert "NaN or Inf (first: row 1)" in msg and str(p) in msg
    np.save(p, np.array([["a", "b", "c"]]))
    assert "<U1 values" in _problems(tiny(**{"eval.points": str(p)}))
    np.savez(tmp_path / "z.npz", x=np.zeros((2, 3)))
    assert ".npz archive" in _problems(tiny(**{"eval.points": str(tmp_path / "z.npz")}))
    msg = _problems(tiny(**{"eval.points": "nowhere.npy"}), base_dir=str(tmp_path))
    assert f"no file at {tmp_path / 'nowhere.npy'}" in msg and "(n, 3)" in msg
    np.save(p, np.zeros((2, 3)))
    msg = _problems(tiny(**{"model.depth": 2, "limit.method": "ntk", "train.algorithm": "gd", "task.kind": "gaussians",
                            "eval.points": str(p)}))
    assert "only task.kind = 'teacher_student'" in msg
    # through the command line: exit 2, nothing written
    np.save(p, np.zeros((2, 4)))
    out = tmp_path / "out"
    assert main(["run", _write_cfg(tmp_path, tiny(**{"eval.points": "p.npy"})), "--out", str(out)]) == 2
    assert "expected (n, 3)" in capsys.readouterr().err and not out.exists()


def test_resolved_config_reruns_with_the_same_points(tmp_path):
    np.save(tmp_path / "p.npy", np.ones((2, 3)))
    cfg = C.load(_write_cfg(tmp_path, tiny(**{"eval.points": "p.npy", "train.seeds": 0})))
    res = run_to_dir(cfg, str(tmp_path / "r"))
    again = C.load(tmp_path / "r" / "config.toml")  # another folder: the stored path is absolute
    assert again == cfg
    with open(tmp_path / "r" / "summary.json") as fh:
        assert json.load(fh)["eval_points"]["path"] == str(tmp_path / "p.npy")
    assert res["x_eval"].shape == (2, 3)
