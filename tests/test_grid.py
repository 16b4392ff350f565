"""The recording grid (meanfield/core/grid.py): every grid starts at step 0 and ends at t_max."""
import numpy as np
import pytest

from meanfield.core.grid import record_grid


@pytest.mark.parametrize("spacing", ["linear", "log"])
@pytest.mark.parametrize("records", [2, 3, 50])
def test_grid_starts_at_zero_and_ends_at_t_max(spacing, records):
    steps = record_grid(10.0, records, spacing, 0.1)
    assert steps[0] == 0 and steps[-1] == 100  # two log records used to end at t = h (step 1)
    assert np.all(np.diff(steps) > 0) and len(steps) <= records


def test_log_grid_is_geometric_after_zero():
    steps = record_grid(100.0, 5, "log", 1.0)
    assert list(steps) == [0, 1, 5, 22, 100]  # 1, 100^(1/3), 100^(2/3), 100 rounded
