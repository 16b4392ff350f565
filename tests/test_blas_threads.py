"""The BLAS thread rule for small products (meanfield_solvers/threads.py): one thread below
SMALL_GEMM_FLOPS, the pool untouched above; the two-layer run's largest product counted as documented."""

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from meanfield import config as C
from meanfield.init import TEMPLATES
from meanfield.twolayer import wing
from meanfield_solvers.threads import SMALL_GEMM_FLOPS, blas_threads_for


def _blas():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_small_products_run_on_one_blas_thread_and_large_ones_keep_the_pool():
    with threadpool_limits(limits=2, user_api="blas"):
        if _blas() != {2}:
            pytest.skip("this BLAS cannot run two threads, so there is no pool to limit")
        with blas_threads_for(SMALL_GEMM_FLOPS / 10):
            assert _blas() == {1}
        assert _blas() == {2}
        with blas_threads_for(SMALL_GEMM_FLOPS * 10):
            assert _blas() == {2}


def test_largest_product_of_the_quickstart_template(tmp_path):
    path = tmp_path / "first.toml"
    path.write_text(TEMPLATES["two-layer"].text)
    cfg = C.load(str(path))
    st = wing.setup(cfg, lambda s: None)
    # closed-form expectations: the Monte Carlo sample does not count; the test sample (1000 rows) against
    # the 512 particles and the 4 x 256 neurons of the widest networks, times 2d
    units = max(cfg.limit.particles, cfg.train.seeds * max(cfg.train.widths))
    assert st.expectation == "analytic"
    assert wing.largest_product_flops(st) == 2.0 * units * max(cfg.eval.n_test, units) * cfg.task.d
    assert wing.largest_product_flops(st) < SMALL_GEMM_FLOPS  # so the quickstart runs on one BLAS thread
    # sampled expectations: the Monte Carlo sample (10^4 rows) is the largest product's other side
    mc = C.load(str(path), ["limit.expectation=\"mc\""])
    st_mc = wing.setup(mc, lambda s: None)
    assert wing.largest_product_flops(st_mc) == 2.0 * units * mc.limit.mc_samples * cfg.task.d
