"""The command line's conventions: --version, python -m meanfield, help on bare `meanfield`, help
text on every argument, -v/-q and --progress."""
import argparse
import os
import subprocess
import sys

import pytest

from meanfield.cli import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_version_via_python_dash_m():
    import tomllib

    import meanfield

    out = subprocess.run([sys.executable, "-m", "meanfield", "--version"], capture_output=True, text=True,
                         env=_env(), cwd=ROOT)
    assert out.returncode == 0
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        shipped = tomllib.load(fh)["project"]["version"]
    assert out.stdout.strip() == f"meanfield {meanfield.__version__}" == f"meanfield {shipped}"


def test_bare_meanfield_prints_help_not_an_error(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: meanfield")
    for cmd in ("init", "run", "show", "plot", "export", "scan", "status", "collect", "bench"):
        assert f"    {cmd} " in out


def _subparsers(p):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            yield from a.choices.items()


def test_every_argument_has_help_text():
    p = build_parser()
    missing = []
    for name, sp in [("meanfield", p)] + list(_subparsers(p)):
        for a in sp._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not a.help or a.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    assert missing == []
    listed = {a.dest: a.help for a in p._actions if isinstance(a, argparse._SubParsersAction)}
    assert listed  # every subcommand has a one-line help in the command list
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            assert all(c.help for c in a._choices_actions)


def _cfg(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[run]\nbackend = "numpy"\n[task]\nd = 3\nteacher_width = 2\n[limit]\nparticles = 16\ndt = 0.1\n'
                 '[train]\nwidths = [4]\nseeds = 1\nlr = 0.1\n[time]\nt_max = 0.3\nrecords = 3\nsnapshots = 0\n'
                 '[eval]\nn_test = 50\nn_points = 2\n')
    return str(p)


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_prints_nothing(tmp_path, capsys, where):
    args = ["run", _cfg(tmp_path), "--out", str(tmp_path / "o")]
    args = ["-q"] + args if where == "before" else args + ["-q"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert os.path.isfile(tmp_path / "o" / "summary.json")


def test_default_and_verbose_output(tmp_path, capsys):
    assert main(["run", _cfg(tmp_path), "--out", str(tmp_path / "a")]) == 0
    normal = capsys.readouterr().out
    assert normal.startswith("completed: wrote") and "meanfield plot" in normal
    assert main(["-v", "run", _cfg(tmp_path), "--out", str(tmp_path / "b")]) == 0
    verbose = capsys.readouterr().out
    assert len(verbose.splitlines()) > len(normal.splitlines()) and "backend   numpy" in verbose


def test_progress_text_on_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEANFIELD_PROGRESS_INTERVAL", "0")
    assert main(["run", _cfg(tmp_path), "--out", str(tmp_path / "o"), "--progress", "text"]) == 0
    err = capsys.readouterr().err
    assert "limit: 3/3 step (100 %)" in err and "N=4: 3/3 step (100 %)" in err


def test_unknown_progress_mode_is_a_usage_error(tmp_path, capsys):
    assert main(["run", _cfg(tmp_path), "--progress", "loud"]) == 2  # argparse's exit as a status
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_a_set_value_that_looks_like_an_option_is_refused_with_the_fix(tmp_path, capsys):
    # argparse reads '-x' as another option; its message alone does not say how to pass such a value
    assert main(["run", _cfg(tmp_path), "--set", "-:", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "argument --set: expected one argument" in err and "--set=-x.y=1" in err
    assert not (tmp_path / "o").exists()


def test_a_closed_pipe_is_not_an_error(monkeypatch, capsys):
    """`meanfield ... | head`: the reader closes the pipe early, so writing raises BrokenPipeError;
    the command ends quietly with status 0 (it printed 'internal error ... This is a bug')."""
    import sys

    from meanfield.cli import main

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["template"]) == 0
    assert "internal error" not in capsys.readouterr().err
