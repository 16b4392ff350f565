"""Run identity: a content hash of the fully resolved config.

The id of a run is the first 16 hex digits of the sha256 of its resolved config
(:meth:`meanfield.config.Config.to_dict`, every default filled in) serialised as JSON with sorted
keys. Seed, backend and dtype are config keys, so they are part of it. Ids never depend on where
a point sits in a grid, so editing a spec (adding a value, reordering axes) keeps the ids of the
points that did not change and a rerun computes only the new ones; two grid points with equal
resolved configs are one run.

Note that a config whose schema gains a key with a default gets a new id (its resolved dict
changed): results are then recomputed rather than silently reused under a different meaning.
The keys of :data:`NOT_IN_ID` are left out of the hash: they can refuse a run but never change
its result (``run.max_memory_gb``, ``run.checkpoint_every``), so changing them must not recompute a scan.
"""
from __future__ import annotations

import hashlib
import json

__all__ = ["canonical_json", "run_id", "ID_LENGTH", "NOT_IN_ID"]

#: (section, key) pairs that cannot change a result and are not hashed into a run's id.
NOT_IN_ID = (("run", "max_memory_gb"), ("run", "checkpoint_every"))

#: Hex digits kept (64 bits: collisions are negligible for any scan that fits on a disk).
ID_LENGTH = 16


def canonical_json(cfg) -> str:
    """The resolved config as canonical JSON (sorted keys, no whitespace, NaN refused)."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def run_id(cfg) -> str:
    """Short hex id of a resolved :class:`~meanfield.config.Config` (or its ``to_dict()``)."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else json.loads(json.dumps(cfg))
    for sec, key in NOT_IN_ID:
        data.get(sec, {}).pop(key, None)
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()[:ID_LENGTH]
