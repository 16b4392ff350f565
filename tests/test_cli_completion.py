"""Shell completion (argcomplete's protocol): the shell runs ``meanfield`` with ``_ARGCOMPLETE`` and
``COMP_LINE``/``COMP_POINT`` set and reads the candidates; here they go to a file."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("argcomplete")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _complete(line, tmp_path):
    out = tmp_path / "candidates"
    env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE_IFS="\n",
               _ARGCOMPLETE_STDOUT_FILENAME=str(out),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "meanfield"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {c.strip() for c in out.read_text().split("\n")} - {""}  # (a unique one ends in a space)


def test_subcommands_options_and_choices_complete(tmp_path):
    assert _complete("meanfield sc", tmp_path) == {"scan"}
    assert {"status", "show"} <= _complete("meanfield s", tmp_path)
    assert _complete("meanfield scan spec.toml --clu", tmp_path) == {"--cluster", "--cluster-option"}
    assert _complete("meanfield scan spec.toml --cluster ", tmp_path) == {"local", "slurm"}
    assert _complete("meanfield export runs/a --format ", tmp_path) == {"netcdf", "zarr"}


def test_without_the_protocol_variable_nothing_is_completed(capsys):
    from meanfield.cli import main

    assert main([]) == 0  # plain help: argcomplete is not consulted
    assert "COMMAND" in capsys.readouterr().out
