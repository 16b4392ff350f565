"""The dask executor (on a LocalCluster) gives the same runs and table as the local pool."""
import os

import pytest

pytest.importorskip("distributed")

from meanfield.scan import collect, run_scan
from test_scan_helpers import comparable, hook_env, write_spec


def test_dask_local_cluster_matches_local_pool(tmp_path, monkeypatch):
    for k, v in hook_env(**{"raise": ["boom"]}).items():
        monkeypatch.setenv(k, v)
    spec = write_spec(tmp_path, 'seeds = 2\n[axes]\n"task.d" = [3, 4]\n"run.name" = ["tiny", "boom"]\n')
    a = run_scan(spec, tmp_path / "local", workers=2, progress=False, log=lambda s: None)
    b = run_scan(spec, tmp_path / "dask", workers=2, executor="dask", progress=False, log=lambda s: None)
    assert a.counts == b.counts == {"pending": 0, "running": 0, "completed": 4, "diverged": 0, "failed": 4}
    assert sorted(os.listdir(tmp_path / "local" / "runs")) == sorted(os.listdir(tmp_path / "dask" / "runs"))
    assert comparable(collect(tmp_path / "local").table) == comparable(collect(tmp_path / "dask").table)
    assert {p[2] for p in b.problems} == {"failed"} and all("boom" in p[3] for p in b.problems)
    # a running scheduler given by address (what --scheduler does)
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        c = run_scan(spec, tmp_path / "remote", executor="dask", scheduler=cluster.scheduler_address,
                     progress=False, log=lambda s: None)
    assert c.counts == a.counts
    assert comparable(collect(tmp_path / "remote").table) == comparable(collect(tmp_path / "local").table)


def test_dask_worker_death_is_retried_then_failed(tmp_path, monkeypatch):
    for k, v in hook_env(crash={"crash3": 99, "crash1": 1}).items():
        monkeypatch.setenv(k, v)
    spec = write_spec(tmp_path, '[axes]\n"run.name" = ["tiny", "crash3", "crash1"]\n')
    rep = run_scan(spec, tmp_path / "d", workers=2, executor="dask", progress=False, log=lambda s: None)
    assert rep.counts["completed"] == 2 and rep.counts["failed"] == 1
    (rid, params, st, err), = rep.problems
    assert params == {"run.name": "crash3"} and "died" in err
