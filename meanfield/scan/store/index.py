"""The scan index ``DIR/index.sqlite``: one row per run, one per grid point, a little metadata.

Only the coordinating process writes it (workers only write their own run directories), so
there is never write contention; WAL mode lets ``meanfield status`` and ``collect`` read while a
scan is writing. The index is a cache of what the run directories say, plus what only the
coordinator knows (attempts, worker crashes, error text): a run directory holding
``summary.json`` is the authority on a finished run, and :meth:`Index.reconcile` re-derives
statuses from the directories at every start, so a crash of the coordinator at any point (even
between a run finishing and its row being updated) loses nothing.

Tables
------
runs(id, params, config, status, attempts, crashes, error, worker, queued_at, started_at,
     finished_at, seconds, seconds_run)
    ``params`` is the JSON of the first grid point mapping to the run, ``config`` the canonical
    resolved config, ``seconds`` the wall time in the worker (compute and writes), ``seconds_run``
    the run's own ``seconds_total``.
points(idx, params, id)
    The grid points of the latest spec, in grid order (several may share an id).
meta(key, value)
    ``spec`` (the spec text), ``param_names`` (JSON list), ``updated_at``.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time

__all__ = ["Index", "IndexCorrupt", "STATUSES", "FINISHED", "set_aside"]

STATUSES = ("pending", "running", "completed", "diverged", "failed")
#: Statuses of runs whose directory holds a summary.json.
FINISHED = ("completed", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    id TEXT PRIMARY KEY,
    params TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'diverged', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    worker TEXT,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    seconds REAL,
    seconds_run REAL
);
CREATE TABLE IF NOT EXISTS points(idx INTEGER PRIMARY KEY, params TEXT NOT NULL, id TEXT NOT NULL);
"""


_TABLES = {"meta", "runs", "points"}


class IndexCorrupt(ValueError):
    """``index.sqlite`` is not a readable scan index (damaged, truncated, or another file)."""


def set_aside(path) -> str:
    """Move a damaged index (and its WAL files) to ``<path>.corrupt-<n>``; returns the new name."""
    n = 1
    while os.path.exists(f"{path}.corrupt-{n}"):
        n += 1
    dest = f"{path}.corrupt-{n}"
    os.replace(path, dest)
    for ext in ("-wal", "-shm"):
        if os.path.exists(path + ext):
            os.replace(path + ext, dest + ext)
    return dest


def _json(obj):
    return json.dumps(obj, sort_keys=False, separators=(",", ":"))


class Index:
    """Read/write access to ``index.sqlite`` (write only from the coordinating process).

    Parameters
    ----------
    path : str
        The sqlite file.
    readonly : bool
        Open for reading only (status, collect): never creates or modifies the file.
    """

    def __init__(self, path, readonly: bool = False):
        self.path = os.fspath(path)
        self.readonly = readonly
        if readonly and not os.path.isfile(self.path):
            raise FileNotFoundError(f"no scan index at {self.path}")
        try:
            if readonly:
                self.db = sqlite3.connect(self.path, timeout=30.0)
                self.db.execute("PRAGMA query_only = ON")
            else:
                self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                self.db.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable across application crashes in WAL mode; only a power loss can
                # drop the last transactions, and reconcile() rebuilds them from the run directories.
                self.db.execute("PRAGMA synchronous = NORMAL")
                self.db.executescript(_SCHEMA)
            self._check()
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
            with contextlib.suppress(Exception):
                self.db.close()
            raise IndexCorrupt(f"{self.path} is not a readable scan index ({e})") from None
        self.db.row_factory = sqlite3.Row

    def _check(self):
        """The whole file is checked (``quick_check``: every page, cheap for an index) and its tables exist."""
        ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {ok}")
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not _TABLES <= tables:
            raise sqlite3.DatabaseError(f"tables {sorted(_TABLES - tables)} are missing")

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ writes
    def _tx(self, sql_list):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in sql_list:
                if isinstance(args, list):
                    self.db.executemany(sql, args)
                else:
                    self.db.execute(sql, args)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def set_meta(self, **kv):
        self._tx([("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   [(k, v if isinstance(v, str) else _json(v)) for k, v in kv.items()])])

    def register(self, points, configs: dict):
        """Record the grid points of the current spec and add unseen runs as pending.

        Parameters
        ----------
        points : list of Point
            In grid order.
        configs : dict
            ``id -> canonical config JSON``.
        """
        now = time.time()
        first = {}
        for p in points:
            first.setdefault(p.id, p.params)
        self._tx([
            ("DELETE FROM points", ()),
            ("INSERT INTO points(idx, params, id) VALUES (?, ?, ?)",
             [(i, _json(p.params), p.id) for i, p in enumerate(points)]),
            ("INSERT INTO runs(id, params, config, status, queued_at) VALUES (?, ?, ?, 'pending', ?) "
             "ON CONFLICT(id) DO UPDATE SET params = excluded.params",
             [(rid, _json(params), configs[rid], now) for rid, params in first.items()]),
        ])

    def update(self, rid, **fields):
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._tx([(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), rid))])

    def mark_running(self, rid, worker: str):
        self._tx([("UPDATE runs SET status = 'running', attempts = attempts + 1, worker = ?, started_at = ?, "
                   "error = NULL WHERE id = ?", (worker, time.time(), rid))])

    def mark_finished(self, rid, status, error=None, seconds=None, seconds_run=None, count_attempt=False):
        """A run's outcome as reported by its worker (``count_attempt`` where no start was seen)."""
        inc = ", attempts = attempts + 1" if count_attempt else ""
        self._tx([(f"UPDATE runs SET status = ?, error = ?, finished_at = ?, seconds = ?, seconds_run = ?{inc} "
                   "WHERE id = ?", (status, error, time.time(), seconds, seconds_run, rid))])

    def update_many(self, updates):
        """``[(id, {column: value}), ...]`` in one transaction (reconciling thousands of runs)."""
        stmts = []
        for rid, fields in updates:
            cols = ", ".join(f"{k} = ?" for k in fields)
            stmts.append((f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), rid)))
        if stmts:
            self._tx(stmts)

    def mark_crash(self, rid, error: str, max_crashes: int, final: bool = False) -> str:
        """Count a worker death during this run; returns the new status (failed at ``max_crashes``).

        ``final``: the executor has already retried it (dask): the run is failed now.
        """
        row = self.db.execute("SELECT crashes FROM runs WHERE id = ?", (rid,)).fetchone()
        crashes = (row["crashes"] if row else 0) + 1
        if final:
            crashes = max(crashes, max_crashes)
        status = "failed" if crashes >= max_crashes else "pending"
        msg = f"{error} (worker deaths: {crashes} of at most {max_crashes})"
        self._tx([("UPDATE runs SET status = ?, crashes = ?, error = ?, finished_at = ? WHERE id = ?",
                   (status, crashes, msg, time.time(), rid))])
        return status

    # ------------------------------------------------------------------ reads
    def meta(self) -> dict:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}

    def runs(self, ids=None) -> dict:
        """``id -> row dict`` (all runs, or those in ``ids``)."""
        rows = self.db.execute("SELECT * FROM runs").fetchall()
        out = {r["id"]: dict(r) for r in rows}
        if ids is not None:
            out = {i: out[i] for i in ids if i in out}
        return out

    def points(self) -> list:
        """``[(params dict, id), ...]`` of the latest spec, in grid order."""
        return [(json.loads(r["params"]), r["id"]) for r in self.db.execute("SELECT params, id FROM points ORDER BY idx")]

    def scan_ids(self) -> list:
        """Distinct run ids of the latest spec, in grid order of their first point."""
        seen = {}
        for _, rid in self.points():
            seen.setdefault(rid, None)
        return list(seen)

    def counts(self, ids=None) -> dict:
        """Number of runs per status (runs of the latest spec by default)."""
        ids = self.scan_ids() if ids is None else ids
        runs = self.runs(ids)
        out = {s: 0 for s in STATUSES}
        for r in runs.values():
            out[r["status"]] += 1
        return out
