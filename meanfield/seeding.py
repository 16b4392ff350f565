"""One root seed, one independent random stream per purpose.

Streams are ``numpy.random.SeedSequence(root, spawn_key=(purpose, *sub))``: adding a purpose or a
width never changes the draws of another, so results stay comparable across config edits, and
the same config gives bitwise-identical draws. Initial particles are always drawn here, on the
host, in float64, so every backend starts from the same arrays.
"""
from __future__ import annotations

import numpy as np

__all__ = ["PURPOSES", "stream"]

#: Fixed purpose codes (never renumber: that would change every result).
PURPOSES = {
    "teacher": 0,      # teacher network
    "init": 1,         # mean-field particles
    "mc": 2,           # the limit's Monte Carlo sample(s)
    "train_set": 3,    # fixed training set (sgd, gd)
    "test_set": 4,     # test sample
    "eval_points": 5,  # points where f is recorded
    "nn_init": 6,      # finite-width initial neurons / subsample choice, per (width, seed)
    "nn_data": 7,      # finite-width SGD sample/minibatch stream, per (width, seed) (deep runs: per width)
    "noise": 8,        # the limit's Brownian increments (dynamics.temperature > 0)
    "nn_noise": 9,     # finite-width Langevin noise, per (width, seed)
}


def stream(seed: int, purpose: str, *sub: int) -> np.random.Generator:
    """A generator for ``purpose`` (and optional integer sub-keys) under root ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PURPOSES[purpose], *map(int, sub))))
