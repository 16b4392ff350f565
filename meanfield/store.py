"""Atomic, pickle-free storage of run results.

Every file is written to a temporary name in its final directory and renamed into place
(``os.replace`` is atomic on POSIX), so an interrupted run never leaves a ``result.npz`` that
looks complete. ``summary.json`` is written last: its presence marks a finished run.
Arrays are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_arrays", "load_arrays", "save_json", "load_json"]


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def save_arrays(path, arrays: dict):
    """Save a dict of numpy arrays as an uncompressed .npz, atomically. Object arrays are refused."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError(f"array {k!r} has dtype object; results must be pickle-free")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def save_json(path, obj):
    """Write JSON atomically; non-finite floats become null (JSON has no NaN)."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, default=_default) + "\n")


def _finite(o):
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.floating):
        return _finite(float(o))
    return o


def load_json(path):
    with open(path) as fh:
        return json.load(fh)
