"""The shared time loop with a state that lives away from the host (the GPU-resident path).

A boxed state stands in for device memory: the loop may only move it through the residency's
put/get/all_finite, so these tests pin down that particles come back at recording steps only and
that a divergence keeps the last finite state, as with host arrays.
"""
import numpy as np

from meanfield.march import march


class Box:
    def __init__(self, a):
        self.a = a


class Remote:
    """put/get/all_finite over boxed arrays, counting transfers."""

    def __init__(self):
        self.gets = 0
        self.checks = 0

    def put(self, theta):
        return Box(np.array(theta))

    def get(self, state):
        self.gets += 1
        return state.a.copy()

    def all_finite(self, state):
        self.checks += 1
        return bool(np.all(np.isfinite(state.a)))


def observe(theta):
    return {"risk": np.array(float(np.sum(theta ** 2)))}


def test_remote_state_comes_back_only_at_records():
    # theta_{k+1} = 0.5 theta_k: a closed form to check the records against
    where = Remote()
    th0 = np.ones((3, 2))
    res = march(lambda s, k: Box(0.5 * s.a), th0, [0, 2, 5, 9], 0.1, observe, snapshot_records=(1, 3),
                residency=where)
    assert res.status == "completed" and res.steps_done == 9
    assert [r["risk"] for r in res.records] == [6.0 * 0.25 ** k for k in (0, 2, 5, 9)]
    assert np.array_equal(res.snapshots[1], 0.25 * th0) and np.array_equal(res.theta, 0.5 ** 9 * th0)
    assert isinstance(res.theta, np.ndarray)
    # one transfer per recording step (snapshot and observation share it) + the final state
    assert where.gets == 4 + 1 and where.checks == 9


def test_remote_divergence_keeps_last_finite_state():
    where = Remote()
    th0 = np.ones(2)

    def step(s, k):
        return Box(s.a * (np.inf if k == 3 else 2.0))

    res = march(step, th0, [0, 10], 1.0, observe, residency=where)
    assert res.status == "diverged" and res.diverged_step == 4
    assert np.array_equal(res.theta, 8.0 * th0) and res.steps_done == 3
    assert "step 4" in res.message and "last finite state (step 3)" in res.message


def test_a_failing_step_ends_the_side_like_a_divergence():
    """A step that cannot go on (e.g. a birth-death population that died out) is reported with its
    step, and the last good state is kept."""
    from meanfield_solvers.state import DynamicsFailure, ParticleState

    def step(st, k):
        if k == 4:
            raise DynamicsFailure("every particle of system 0 was killed")
        return st.replace(theta=st.theta + 1.0, step=st.step + 1)

    res = march(step, ParticleState(np.zeros((3, 2))), [0, 2, 8], 0.5, lambda st: observe(st.theta))
    assert res.status == "diverged" and res.diverged_step == 5 and res.steps_done == 4
    assert "step 5" in res.message and "killed" in res.message
    assert np.array_equal(res.theta, np.full((3, 2), 4.0)) and res.records[2] is None


def test_birth_death_runs_are_reproducible_per_seed():
    import meanfield

    from helpers import tiny

    cfg = {"dynamics.reaction_rate": 2.0, "dynamics.reaction_scheme": "birth_death_prior",
           "train.algorithm": "population_gd", "time.snapshots": 2}
    a, b = meanfield.run(tiny(**cfg)), meanfield.run(tiny(**cfg))
    for k in a.keys():
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    three = meanfield.run(tiny(**cfg, **{"train.seeds": 3}))
    assert np.array_equal(three["risk_nn"][:, :2], a["risk_nn"])  # a seed's jumps are its own
    quiet = meanfield.run(tiny(**{"train.algorithm": "population_gd", "time.snapshots": 2}))
    assert not np.array_equal(a["risk_mf"], quiet["risk_mf"])
