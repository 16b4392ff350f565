"""Scan specs: expansion, zipped groups, seeds, dedup, validation naming the point, ids, dry run, --yes."""
import os

import pytest

from meanfield.cli import main
from meanfield.scan import SpecError, expand, load_spec, run_id
from meanfield.scan.runner import CONFIRM_ABOVE, ScanRefused, run_scan
from meanfield.scan.spec import distinct
from test_scan_helpers import write_spec


def test_grid_zip_seeds_and_dedup(tmp_path):
    spec = load_spec(write_spec(tmp_path, """
seeds = 2
[axes]
task.d = [3, 4]
"train.widths" = [8, [8], 16]
[[zip]]
"limit.dt" = [0.1, 0.05]
"train.lr" = [0.1, 0.05]
"""))
    assert spec.param_names == ["task.d", "train.widths", "limit.dt", "train.lr", "seed"]
    pts = expand(spec)
    assert len(pts) == spec.n_points == 2 * 3 * 2 * 2
    # zipped keys vary together; the int 8 means the list [8], so two width values collapse
    assert {(p.config.limit.dt, p.config.train.lr) for p in pts} == {(0.1, 0.1), (0.05, 0.05)}
    assert {p.config.run.seed for p in pts} == {0, 1}
    runs = distinct(pts)
    assert len(runs) == 2 * 2 * 2 * 2
    # the id is the resolved config's hash: same config -> same id, whatever the grid position
    p = pts[0]
    assert p.id == run_id(p.config) and len(p.id) == 16
    assert run_id(p.config.replace(**{"run.seed": 1})) != p.id


def test_base_file_relative_to_spec(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "run.toml").write_text("[task]\nd = 5\nteacher_width = 2\n[limit]\nparticles = 16\n")
    (tmp_path / "s.toml").write_text('base = "cfg/run.toml"\nseeds = [4, 7]\n[axes]\n"model.alpha" = [1.0, 2]\n')
    pts = expand(load_spec(tmp_path / "s.toml"))
    assert len(pts) == 4 and all(p.config.task.d == 5 for p in pts)
    assert sorted({p.config.run.seed for p in pts}) == [4, 7]
    assert {p.config.model.alpha for p in pts} == {1.0, 2.0}


def test_every_point_validated_and_named(tmp_path):
    path = write_spec(tmp_path, """
[axes]
task.d = [3, 1]
"train.lr" = [0.1, -1.0]
""")
    with pytest.raises(SpecError) as e:
        expand(load_spec(path))
    msg = str(e.value)
    # three of the four points are invalid; each is named by its axis values with its problems
    assert len(e.value.problems) == 3
    assert 'point task.d=3, train.lr=-1.0: train.lr = -1.0 is out of range' in msg
    assert "task.d=1, train.lr=0.1" in msg and "teacher_width <= d" in msg
    # the CLI stops before writing anything
    out = tmp_path / "out"
    assert main(["scan", path, "--out", str(out)]) == 2
    assert not out.exists()


def test_spec_errors(tmp_path):
    for body, needle in [("[axes]\n\"task.dd\" = [1]\n", "did you mean 'task.d'"),
                         ("[axes]\n\"run.seed\" = [1, 2]\n", "seeds = K"),
                         ("[axes]\n\"task.d\" = 3\n", "non-empty list"),
                         ("[[zip]]\n\"limit.dt\" = [0.1]\n\"train.lr\" = [0.1, 0.2]\n", "equal lengths"),
                         ("seeds = 0\n", "seeds = 0"),
                         ("seed = 3\n", "did you mean 'seeds'")]:
        with pytest.raises(SpecError, match=needle):
            load_spec(write_spec(tmp_path, body))


def test_dry_run_counts_and_estimates(tmp_path, capsys):
    path = write_spec(tmp_path, 'seeds = 3\n[axes]\n"train.widths" = [8, [8], 16]\n')
    out = tmp_path / "out"
    assert main(["scan", path, "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "9 grid points -> 6 distinct runs (3 points repeat an equal resolved config)" in text
    assert "memory per run" in text and "time:" in text and "probe" in text
    assert not out.exists()  # a dry run writes nothing
    # after running part of it, the dry run says what is left
    assert run_scan(write_spec(tmp_path, 'seeds = 3\n[axes]\n"train.widths" = [8]\n', "part.toml"), out,
                    workers=1, progress=False).exit_code == 0
    assert main(["scan", path, "--out", str(out), "--dry-run"]) == 0
    assert "3 already finished" in capsys.readouterr().out


def test_large_scan_needs_yes(tmp_path, capsys):
    path = write_spec(tmp_path, f"seeds = {CONFIRM_ABOVE + 1}\n")
    out = tmp_path / "out"
    assert main(["scan", path, "--out", str(out)]) == 2
    assert "--yes" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ScanRefused):
        run_scan(path, out)
    assert main(["scan", path, "--out", str(out), "--dry-run"]) == 0
    assert "needs --yes" in capsys.readouterr().out
