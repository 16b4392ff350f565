"""A user's own evaluation points (``eval.points = "file.npy"``): read, checked, fingerprinted.

The file holds one ``(n, d)`` array of inputs (``numpy.save``), n >= 1 finite real rows of the
task's input dimension d. Where they are used is the wings' business (README, "Config
reference": the two-layer wing records f of both sides there, the deep wing uses them as its
test points); this module only reads them, so that validation (before any work) and the run read
them the same way.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

__all__ = ["read_points", "points_problem", "points_record"]


def points_problem(path: str, d: int):
    """``(array, None)`` for a valid file, ``(None, sentence)`` naming the file, the expected shape
    ``(n, d)`` and what is wrong otherwise (the array is float64)."""
    expect = f"one (n, {d}) array of inputs (numpy.save), n >= 1, finite real values"
    if not os.path.isfile(path):
        return None, f"eval.points: no file at {path}; give {expect}"
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a config problem
        return None, f"eval.points: cannot read {path} as .npy ({type(e).__name__}: {e}); give {expect}"
    if not isinstance(a, np.ndarray):  # an .npz archive
        a.close()
        return None, f"eval.points: {path} is an .npz archive; give {expect} saved with numpy.save as .npy"
    if a.ndim != 2 or a.shape[1] != d or a.shape[0] < 1:
        return None, f"eval.points: {path} holds an array of shape {a.shape}; expected (n, {d}) with n >= 1 (d = task.d)"
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a) or a.dtype == np.bool_:
        return None, f"eval.points: {path} holds {a.dtype} values; expected real numbers, shape (n, {d})"
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        return None, (f"eval.points: {path} has {int(bad.any(axis=1).sum())} row(s) with NaN or Inf (first: row "
                      f"{row}); every point must be finite")
    return a, None


def read_points(path: str, d: int) -> np.ndarray:
    """The ``(n, d)`` float64 points of ``path`` (ValueError with the problem otherwise)."""
    a, why = points_problem(path, d)
    if why:
        raise ValueError(why)
    return a


def points_record(path: str) -> dict:
    """What ``summary.json`` keeps of the file: its path and sha256 (a run's id covers the path
    only, so the digest shows which content a result was computed at)."""
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return {"path": path, "sha256": digest}
