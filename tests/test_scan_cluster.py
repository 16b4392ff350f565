"""`meanfield scan --executor dask --cluster KIND`: the cluster registry, SLURM through dask-jobqueue.

No SLURM here: the job script is checked line by line, and an end-to-end run replaces ``sbatch``
and ``scancel`` by two shell scripts that run the job script on this machine, so the script
dask-jobqueue writes (resources, thread exports, worker command) is executed for real.
"""
import json
import os
import signal
import stat

import pytest

pytest.importorskip("distributed")

from meanfield.cli import main
from meanfield.scan import collect
from meanfield.scan.executors import make_executor
from meanfield.scan.spec import SpecError, load_spec
from test_scan_helpers import comparable, write_spec

SLURM = """seeds = 2
[axes]
"task.d" = [3, 4]
[cluster.slurm]
cores = 4
processes = 2
memory = "8GB"
walltime = "01:00:00"
queue = "debug"
account = "proj"
job_extra_directives = ["--qos=short"]
[cluster.local]
memory_limit = "2GB"
"""


def test_slurm_job_script_has_the_requested_directives(tmp_path):
    pytest.importorskip("dask_jobqueue")
    from meanfield.scan.clusters import get_cluster

    spec = load_spec(write_spec(tmp_path, SLURM))
    ex = make_executor("dask", None, cluster="slurm", spec_clusters=spec.clusters,
                       cluster_options=["walltime=02:30:00", "job_extra_directives=--gres=gpu:1", "jobs=3"])
    kind = get_cluster("slurm")
    script = kind.job_script(ex.cluster_options, ex.workers)
    lines = script.splitlines()
    for want in ("#SBATCH -p debug", "#SBATCH -A proj", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH -t 02:30:00",  # the command line overrides the spec
                 "#SBATCH --qos=short", "#SBATCH --gres=gpu:1"):  # list options append
        assert want in lines, (want, script)
    assert "#SBATCH -t 01:00:00" not in lines
    # 4 cores / 2 processes: each run gets 2 threads, exported before the worker imports numba
    assert any(ln.startswith("export ") and "NUMBA_NUM_THREADS=2" in ln and "OPENBLAS_NUM_THREADS=2" in ln
               for ln in lines)
    worker = next(ln for ln in lines if "distributed.cli.dask_worker" in ln)
    assert "--nworkers 2" in worker and "--resources meanfield_run=1" in worker
    assert kind.n_jobs(ex.cluster_options, None) == 3
    # without `jobs`: enough jobs for --workers worker processes (2 per job)
    ex5 = make_executor("dask", 5, cluster="slurm", spec_clusters=spec.clusters)
    assert kind.n_jobs(ex5.cluster_options, ex5.workers) == 3


def test_bad_cluster_tables_and_options_are_refused_before_work(tmp_path, capsys):
    bad = write_spec(tmp_path, '[cluster]\ncores = 4\n[cluster.slurm]\ncors = 4\nmemory = "lots"\n'
                               'walltime = "1h"\n[cluster.slrum]\nqueue = "x"\n')
    with pytest.raises(SpecError) as e:
        load_spec(bad)
    msg = str(e.value)
    assert "cores = 4 belongs under the table of the cluster it is for" in msg
    assert "'cors' (did you mean 'cores'?)" in msg
    assert "memory = 'lots'" in msg and "walltime = '1h'" in msg
    assert "[cluster.slrum]: unknown cluster kind (did you mean 'slurm'?)" in msg
    out = tmp_path / "out"
    assert main(["scan", bad, "--out", str(out), "--executor", "dask", "--cluster", "slurm"]) == 2
    assert not out.exists()
    good = write_spec(tmp_path, SLURM, name="good.toml")
    # a flag that needs dask, and a bad override on the command line: exit 2, nothing written
    assert main(["scan", good, "--out", str(out), "--cluster", "slurm"]) == 2
    assert "need --executor dask" in capsys.readouterr().err
    if pytest.importorskip("dask_jobqueue"):
        assert main(["scan", good, "--out", str(out), "--executor", "dask", "--cluster", "slurm",
                     "--cluster-option", "processes=8", "--cluster-option", "jobs=0"]) == 2
        err = capsys.readouterr().err
        assert "jobs must be an integer >= 1" in err
    assert not out.exists()


def test_local_cluster_of_the_same_spec_matches_the_local_pool(tmp_path):
    spec = write_spec(tmp_path, SLURM)  # the SLURM resources are carried, unused, by --cluster local
    a, b = tmp_path / "pool", tmp_path / "dask"
    assert main(["scan", spec, "--out", str(a), "--workers", "2", "--progress", "none"]) == 0
    assert main(["scan", spec, "--out", str(b), "--workers", "2", "--executor", "dask", "--cluster", "local",
                 "--progress", "none"]) == 0
    ta, tb = collect(a).table, collect(b).table
    assert len(ta["seed"]) == 4
    assert comparable(ta) == comparable(tb)
    for rid in os.listdir(a / "runs"):  # the arrays themselves, bit for bit
        import numpy as np

        with np.load(a / "runs" / rid / "result.npz") as x, np.load(b / "runs" / rid / "result.npz") as y:
            assert sorted(x.files) == sorted(y.files)
            for k in x.files:
                assert np.array_equal(x[k], y[k], equal_nan=True), k


def _fake_slurm(bin_dir, log_dir):
    """``sbatch`` that runs the job script here in its own session, ``scancel`` that ends it."""
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"""#!/usr/bin/env bash
cp "$1" "{log_dir}/job.$$.sh"
setsid bash "{log_dir}/job.$$.sh" > "{log_dir}/job.$$.out" 2>&1 < /dev/null &
echo "$!" >> "{log_dir}/jobs"
echo "Submitted batch job $!"
""")
    scancel = bin_dir / "scancel"
    scancel.write_text("#!/usr/bin/env bash\nfor j in \"$@\"; do kill -TERM -- -\"$j\" 2>/dev/null; done\nexit 0\n")
    for f in (sbatch, scancel):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)


def test_slurm_cluster_runs_the_scan_through_its_job_script(tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue")
    logs = tmp_path / "logs"
    logs.mkdir()
    _fake_slurm(tmp_path / "bin", logs)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))  # the jobs import meanfield
    spec = write_spec(tmp_path, SLURM.replace("cores = 4\nprocesses = 2", "cores = 2\nprocesses = 1")
                      .replace('memory = "8GB"', 'memory = "2GB"'))
    a, b = tmp_path / "pool", tmp_path / "slurm"
    assert main(["scan", spec, "--out", str(a), "--workers", "2", "--progress", "none"]) == 0

    def too_long(*_):  # a job script that cannot start a worker would leave the scan waiting for one
        raise TimeoutError("no worker joined; job output: "
                           + " | ".join(p.read_text()[-2000:] for p in logs.glob("job.*.out")))

    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(240)
    try:
        assert main(["scan", spec, "--out", str(b), "--executor", "dask", "--cluster", "slurm",
                     "--progress", "none"]) == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    jobs = (logs / "jobs").read_text().split()
    assert len(jobs) == 1  # one job (no --workers, no jobs option)
    assert comparable(collect(a).table) == comparable(collect(b).table)
    # each run computed with cores // processes = 2 numba threads, as the job script exported
    for rid in os.listdir(b / "runs"):
        with open(b / "runs" / rid / "summary.json") as fh:
            assert json.load(fh)["provenance"]["numba_threads"] == 2
