"""meanfield_solvers.heap: the allocator setting the entry points apply (see its docstring for the why)."""
import os
import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_set_once_and_opt_out_respected():
    code = "from meanfield_solvers.heap import retain_freed_memory as r; print(r(), r())"
    env = dict(os.environ)
    env.pop("MEANFIELD_NO_MALLOPT", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
    env["MEANFIELD_NO_MALLOPT"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

