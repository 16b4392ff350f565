"""Result-level convergence/fluctuation analysis (meanfield.analysis.runs) and its figures."""
import numpy as np
import pytest

import meanfield
from meanfield.analysis import runs

from helpers import tiny


def _ts(**over):
    cfg = {"run": {"seed": 0}, "task": {"kind": "teacher_student", "d": 5, "teacher_width": 2},
           "model": {"activation": "erf"}, "eval": {"n_test": 100, "n_points": 32}}
    for k, v in over.items():
        sec, key = k.split(".", 1)
        cfg.setdefault(sec, {})[key] = v
    return cfg


def test_output_variance_at_init_scales_as_inverse_width():
    # independent networks: Var_s f_N(0, x) = Var_rho0[a sigma(w.x)] / N exactly in expectation
    res = meanfield.run(_ts(**{"limit.method": "none", "train.widths": [16, 32, 64, 128, 256], "train.seeds": 24,
                               "train.lr": 0.1, "train.coupling": False, "time.t_max": 0.1, "time.records": 2,
                               "time.snapshots": 0}))
    fl = runs.fluctuations(res)
    assert fl.t[0] == 0
    assert abs(fl.f_slope[0] + 1) < 0.15, (fl.f_slope[0], fl.f_slope_se[0])
    assert fl.f_slope_se[0] < 0.15
    # the collapse: N Var agrees across widths within its errors (chi2 well below a 5-sigma excess)
    assert fl.f_chi2[0] < 4 * (len(fl.widths) - 1) + 20


def test_coupled_distance_decreases_like_inverse_sqrt_width():
    res = meanfield.run(_ts(**{"run.seed": 2, "limit.particles": 1024, "limit.dt": 0.1, "limit.expectation": "analytic",
                               "limit.integrator": "euler", "train.widths": [16, 32, 64, 128], "train.seeds": 8,
                               "train.lr": 0.1, "train.algorithm": "population_gd", "time.t_max": 1.0,
                               "time.records": 5, "time.snapshots": 2, "eval.n_points": 4}))
    nd = runs.neuron_distances(res, w2=False, mmd=False)
    assert np.all(nd.coupled[:, 0] == 0)  # same starting particles: no distance at t = 0
    m, _ = nd.mean("coupled")
    assert np.all(np.diff(m[:, -1]) < 0), m[:, -1]
    fit = runs.fit_vs_width(nd.widths, nd.coupled[:, -1, :])
    assert -0.8 < fit.slope < -0.25, (fit.slope, fit.slope_se)
    # W2 to the coupled subsample is bounded by the identity coupling
    assert np.all(nd.w2_sub[:, -1] <= nd.coupled[:, -1] + 1e-9)


def test_movement_shrinks_like_inverse_alpha():
    alphas = [4.0, 8.0, 16.0, 32.0]
    mv = []
    for al in alphas:
        res = meanfield.run(_ts(**{"model.alpha": al, "model.antithetic": True, "limit.method": "none",
                                   "train.widths": [32], "train.seeds": 2, "train.algorithm": "population_gd",
                                   "train.lr": 0.05, "time.t_max": 1.0, "time.records": 4, "time.snapshots": 2}))
        m = runs.movement(res)
        assert m.snap_t[0] == 0 and np.all(m.nn[:, 0] == 0)
        mv.append(m.nn[0, -1])
    fit = runs.fit_vs_width(alphas, np.array(mv))
    assert abs(fit.slope + 1) < 0.15, (fit.slope, fit.slope_se)


def test_distances_and_gaps_shapes_and_guards():
    res = meanfield.run(tiny(**{"time.snapshots": 3}))
    nd = runs.neuron_distances(res, exact_max=10)  # 32 particles > 10: the sliced path
    assert nd.w2.shape == (2, 3, 2) and nd.w2_method == ("sliced", "sliced")
    assert np.all(np.isfinite(nd.w2)) and np.all(np.isfinite(nd.mmd2))
    nd2 = runs.neuron_distances(res)
    assert nd2.w2_method == ("exact", "exact")
    # sliced W2 is a lower bound of W2
    assert np.all(nd.w2 <= nd2.w2 * (1 + 1e-9) + 1e-12)
    fg = runs.function_gaps(res)
    assert fg.fdist.shape == res["risk_nn"].shape and np.allclose(fg.gap, res["risk_nn"] - res["risk_mf"])
    with pytest.raises(ValueError):
        runs.fluctuations(meanfield.run(tiny(**{"train.widths": [8], "time.snapshots": 0})))


def test_uncoupled_run_reports_why_coupled_distance_is_missing():
    res = meanfield.run(tiny(**{"train.coupling": False}))
    nd = runs.neuron_distances(res, mmd=False)
    assert np.all(np.isnan(nd.coupled)) and ("coupled", 8) in nd.reasons


def test_figures_and_gif(tmp_path):
    from PIL import Image

    from meanfield.plot import plot_dir

    cfg = tiny(**{"time.snapshots": 3, "train.seeds": 4, "train.widths": [8, 16, 32]})
    meanfield.run_to_dir(cfg, str(tmp_path))
    files = plot_dir(str(tmp_path))
    names = {p.split("/")[-1] for p in files}
    for n in ("risk.png", "variance_collapse.png", "variance_scaling.png", "distances_t.png",
              "distance_scaling.png", "clouds.png", "clouds.gif"):
        assert n in names, names
    with Image.open(tmp_path / "clouds.gif") as im:
        assert im.format == "GIF" and im.n_frames == 3


def test_distances_of_weighted_particles_use_their_masses():
    """WFR run: the network-to-limit W2 is the optimal transport between the two *weighted* clouds,
    checked against POT's emd2 on the masses (normalised), and it differs from the mass-blind value;
    row-wise quantities (coupled distance, displacement) are refused with the reason."""
    import ot

    res = meanfield.run(tiny(**{"dynamics.reaction_rate": 3.0, "train.algorithm": "population_gd",
                                "train.coupling": True, "time.snapshots": 2}))
    d = runs.neuron_distances(res, mmd=False)
    k, s, N = 1, 0, 16
    X, wx = res[f"neurons_nn_N{N}"][k, s], res[f"masses_nn_N{N}"][k, s]
    Y, wy = res["particles_mf"][k], res["masses_mf"][k]
    want = np.sqrt(ot.emd2(wx / wx.sum(), wy / wy.sum(), ot.dist(X, Y)))
    assert abs(d.w2[1, k, s] - want) < 1e-10 * want
    blind = np.sqrt(ot.emd2(np.full(N, 1 / N), np.full(len(Y), 1 / len(Y)), ot.dist(X, Y)))
    assert abs(blind - want) > 1e-4
    assert np.all(np.isnan(d.coupled)) and "identity coupling" in d.reasons[("coupled", N)]
    with pytest.raises(ValueError, match="keep their identity"):
        runs.movement(res)


def test_distances_of_a_floating_population_drop_its_empty_slots():
    """Floating birth-death: the occupied slots (equal masses) are the cloud; empty slots count for
    nothing. W2 equals the exact W2 between the occupied rows alone."""
    import ot

    res = meanfield.run(tiny(**{"dynamics.reaction_rate": 2.0, "dynamics.reaction_scheme": "birth_death",
                                "dynamics.reaction": "unbalanced", "dynamics.population": "float",
                                "train.algorithm": "population_gd", "time.snapshots": 2}))
    d = runs.neuron_distances(res, mmd=False)
    k, s, N = 1, 1, 8
    occ_x, occ_y = res[f"masses_nn_N{N}"][k, s] > 0, res["masses_mf"][k] > 0
    X, Y = res[f"neurons_nn_N{N}"][k, s][occ_x], res["particles_mf"][k][occ_y]
    want = np.sqrt(ot.emd2(np.full(len(X), 1 / len(X)), np.full(len(Y), 1 / len(Y)), ot.dist(X, Y)))
    assert abs(d.w2[0, k, s] - want) < 1e-10 * want
    assert occ_y.sum() != occ_y.size  # there were empty slots to drop
