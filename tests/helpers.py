"""Small configs shared by the tests."""
import copy


def tiny(**over):
    """A tiny, fast teacher-student config dict; ``over`` maps 'section.key' to values."""
    cfg = {
        "run": {"seed": 1},
        "task": {"kind": "teacher_student", "d": 3, "teacher_width": 2},
        "model": {"activation": "erf"},
        "limit": {"particles": 32, "dt": 0.1, "expectation": "analytic"},
        "train": {"widths": [8, 16], "seeds": 2, "lr": 0.1, "batch": 8},
        "time": {"t_max": 1.0, "records": 6, "snapshots": 2},
        "eval": {"n_test": 200, "n_points": 4},
    }
    cfg = copy.deepcopy(cfg)
    for k, v in over.items():
        sec, key = k.split(".", 1)
        cfg.setdefault(sec, {})[key] = v
    return cfg
