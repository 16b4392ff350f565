r"""Checkpoints of a run: the full state of both sides, written atomically into the run's folder,
so that a stopped run (kill -9, Ctrl-C, a machine going down) continues bit-identically and a
finished run can be continued to a later time (README, "Long runs: checkpoints, resume, extend").

Parts
-----
A run is a fixed, deterministic sequence of *parts*, each named by its ordinal and a label
(``"0:limit"``, ``"1:N=8"``, ...): the time loops of :func:`meanfield.march.march` (the limit's
particle flow, one loop per width of networks) and *units* computed in one go (the deep limit's
DMFT / NTK solve). A checkpoint holds, for every part reached:

* a time loop in progress: its state (a :class:`~meanfield_solvers.state.ParticleState` —
  positions, masses, lineage, jump counters, integrator carry and random streams as numpy
  bit-generator states — or the deep networks' weight array), the random streams its step
  function holds (``step.streams``: the resampled Monte Carlo stream of the limit, the SGD data
  streams), its position on the time grid (step ``k``, next record index ``ri``), the records
  and snapshots so far, and the loop's bookkeeping (the state of the last accepted record and the
  record criteria's state: the reference risk of step 0, the risks at their precision floor,
  :mod:`meanfield.health`);
* a time loop that ended (completed or diverged): the same at its end, so that a resume skips it
  and an extension (:mod:`meanfield.extend`) continues it;
* a unit: its outputs, with the horizon they were computed for.

A resumed run rebuilds everything that is a deterministic function of the config (data sets,
initial particles, step functions), then each time loop starts from its part: the state and the
streams are restored exactly, so every later step draws the same numbers and computes the same
floating-point operations as the uninterrupted run — bitwise-identical results.

Files
-----
``DIR/checkpoint/manifest.json`` names the files of the current checkpoint (``part-<i>-g<gen>.npz``,
one per part) with sizes and sha256, the config (TOML text) and each part's bookkeeping (JSON).
A save writes the changed parts' files (each atomically, :func:`meanfield.store.atomic_write_bytes`),
then the manifest (atomically: the commit point), then removes the files no manifest names. A kill
at any instant leaves the previous manifest and all its files whole; :func:`read` verifies every
file against the manifest's checksums.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import json
import os
import signal
import threading
import time

import numpy as np

from meanfield_solvers.state import JumpCounts, ParticleState

from . import store

__all__ = ["Checkpointer", "CheckpointError", "Interrupted", "FOLDER", "read", "exists", "active", "activate",
           "loop_for", "unit", "stop_on_sigint", "lock", "Busy", "schedule", "describe", "config_of", "folder_of"]

#: the checkpoint's folder inside a run directory
FOLDER = "checkpoint"
MANIFEST = "manifest.json"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or does not fit the run it should continue."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after writing a checkpoint (``folder``; the loop ``where`` at time ``t``)."""

    def __init__(self, folder, where, t):
        super().__init__(f"interrupted at {where}, t = {t:g}")
        self.folder, self.where, self.t = folder, where, t


# --------------------------------------------------------------------------- encoding
_DATACLASSES = {"ParticleState": ParticleState, "JumpCounts": JumpCounts}


def pack(obj, arrays: dict, path: str):
    """A JSON tree for ``obj``; its arrays go to ``arrays`` under keys starting with ``path``.

    Exact for what a time loop holds: arrays (any dtype, bitwise), numpy scalars, Python floats
    (as hex), ints, strings, None, lists, tuples, dicts (str or int keys), numpy Generators (their
    bit-generator state), :class:`ParticleState` and :class:`JumpCounts`.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return {"int": obj}
    if isinstance(obj, float):
        return {"float": obj.hex()}
    if isinstance(obj, np.random.Generator):
        return {"gen": obj.bit_generator.state}
    if isinstance(obj, (np.ndarray, np.generic)):
        arrays[path] = np.asarray(obj)
        return {"nd": path, "scalar": isinstance(obj, np.generic)}
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in _DATACLASSES:
        return {"dc": type(obj).__name__,
                "f": {f.name: pack(getattr(obj, f.name), arrays, f"{path}.{f.name}") for f in dataclasses.fields(obj)}}
    if isinstance(obj, (list, tuple)):
        return {"list" if isinstance(obj, list) else "tuple": [pack(v, arrays, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, dict):
        return {"dict": [[pack(k, arrays, f"{path}.k{i}"), pack(v, arrays, f"{path}.{i}")]
                         for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(f"a checkpoint cannot hold a {type(obj).__name__} (at {path})")


def unpack(tree, arrays):
    """The object :func:`pack` encoded (arrays are fresh copies; Generators are new objects)."""
    if tree is None or isinstance(tree, (bool, str)):
        return tree
    (tag, v), = [(t, tree[t]) for t in ("int", "float", "gen", "nd", "dc", "list", "tuple", "dict") if t in tree]
    if tag == "int":
        return int(v)
    if tag == "float":
        return float.fromhex(v)
    if tag == "gen":
        g = np.random.Generator(getattr(np.random, v["bit_generator"])())
        g.bit_generator.state = v
        return g
    if tag == "nd":
        a = np.array(arrays[v], copy=True)
        return a[()] if tree.get("scalar") else a
    if tag == "dc":
        return _DATACLASSES[v](**{k: unpack(x, arrays) for k, x in tree["f"].items()})
    if tag == "list":
        return [unpack(x, arrays) for x in v]
    if tag == "tuple":
        return tuple(unpack(x, arrays) for x in v)
    return {unpack(k, arrays): unpack(x, arrays) for k, x in v}


def _generators(rng):
    """The generators of a random stream (None, one Generator, or a tuple of them), as a list."""
    if rng is None:
        return []
    return [rng] if isinstance(rng, np.random.Generator) else list(rng)


def _set_states(targets, sources, what):
    if len(targets) != len(sources):
        raise CheckpointError(f"{what}: the checkpoint holds {len(sources)} random stream(s), the run {len(targets)}")
    for t, s in zip(targets, sources):
        t.bit_generator.state = s.bit_generator.state if isinstance(s, np.random.Generator) else s


# --------------------------------------------------------------------------- schedule
def schedule(every):
    """``("time", t)`` for a mean-field interval, ``("wall", seconds)`` for a duration, None when off."""
    from .config import duration_seconds

    if isinstance(every, str):
        return ("wall", duration_seconds(every))
    return ("time", float(every)) if every and every > 0 else None


# --------------------------------------------------------------------------- reading
def folder_of(run_dir):
    return os.path.join(os.fspath(run_dir), FOLDER)


def exists(run_dir) -> bool:
    return os.path.isfile(os.path.join(folder_of(run_dir), MANIFEST))


def read(run_dir) -> dict:
    """The manifest of ``run_dir``'s checkpoint, every file verified; :class:`CheckpointError` if none or damaged."""
    folder = folder_of(run_dir)
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        if os.path.isfile(os.path.join(os.fspath(run_dir), "summary.json")):
            raise CheckpointError(f"the run in {run_dir} is finished (and kept no checkpoint): nothing to resume")
        raise CheckpointError(f"{run_dir} holds no checkpoint ({path} is missing): only runs with "
                              "run.checkpoint_every set, or stopped with Ctrl-C, can be resumed")
    try:
        man = store.load_json(path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT or not isinstance(man.get("parts"), dict):
        raise CheckpointError(f"{path} is not a checkpoint manifest of this version (format {FORMAT})")
    for key, part in man["parts"].items():
        if not isinstance(part, dict) or not all(isinstance(part.get(f), t) for f, t in
                                                 (("file", str), ("bytes", int), ("sha256", str))):
            raise CheckpointError(f"{path}: part {key} has no file, size and checksum: the checkpoint is damaged")
        p = os.path.join(folder, os.path.basename(part["file"]))
        try:
            with open(p, "rb") as fh:
                data = fh.read()
        except OSError:
            raise CheckpointError(f"{p} (part {key} of the checkpoint) is missing") from None
        if len(data) != part["bytes"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise CheckpointError(f"{p} (part {key}) does not match the checksum its manifest records: the "
                                  "checkpoint is damaged")
    if not isinstance(man.get("config"), str):
        raise CheckpointError(f"{path} holds no config: the checkpoint is damaged")
    man["folder"] = folder
    return man


def config_of(man):
    """The validated :class:`~meanfield.config.Config` a checkpoint was written for."""
    import tomllib

    from . import config as C

    try:
        return C.from_dict(tomllib.loads(man["config"]))
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's config is unreadable ({type(e).__name__}: {e})") from None


def describe(man) -> str:
    """One line: where the checkpoint stands (the last part and its time)."""
    parts = man.get("parts", {})
    if not parts:
        return "nothing computed yet"
    last = max(parts, key=lambda k: int(k.split(":", 1)[0]))
    p = parts[last]
    label = last.split(":", 1)[1]
    if p.get("kind") == "unit":
        return f"{label} solved"
    return f"{label} at t = {p['t']:g}" + (" (ended)" if p.get("done") else "")


# --------------------------------------------------------------------------- the checkpointer
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("meanfield_checkpointer", default=None)


def active():
    """The checkpointer of the run in progress in this context (None: no checkpoints)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def activate(ck):
    token = _ACTIVE.set(ck)
    try:
        yield ck
    finally:
        _ACTIVE.reset(token)


class Checkpointer:
    """Saves the parts of one run into ``run_dir/checkpoint`` and restores them from ``source``.

    Parameters
    ----------
    run_dir : the run's output directory (the checkpoint goes to ``run_dir/checkpoint``)
    config_text : the resolved config (TOML) of the run
    every : ``run.checkpoint_every`` (a mean-field time, a duration string, or 0: only on request)
    source : a manifest (:func:`read`) whose parts this run continues (a resume or an extension), or None
    """

    def __init__(self, run_dir, config_text: str, every=0.0, source: dict | None = None):
        self.folder = folder_of(run_dir)
        self.config_text = config_text
        self.schedule = schedule(every)
        self.source = source
        self.saved = dict(source["parts"]) if source else {}  # parts to continue from
        self.parts = {}  # key -> manifest record of a part written to disk (in self.folder)
        self.pending = {}  # key -> callable giving (meta tree, arrays) of an ended part not yet written
        if source and os.path.realpath(source["folder"]) == os.path.realpath(self.folder):
            self.parts = dict(source["parts"])  # still on disk: referenced until replaced
        self.n = 0
        self.generation = int(source.get("generation", 0)) if source else 0
        self.saves = 0
        self.last_save = time.monotonic()
        self.stop_requested = False
        self.last_where = None

    # -- the sequence of parts
    def next_key(self, label: str) -> str:
        key = f"{self.n}:{label}"
        self.n += 1
        return key

    def due(self, k, k0, h) -> bool:
        if self.schedule is None or k <= k0:
            return False
        kind, every = self.schedule
        if kind == "wall":
            return time.monotonic() - self.last_save >= every
        return k % max(1, int(round(every / h))) == 0

    # -- writing
    def save(self, current: dict | None = None, complete: bool = False):
        """Write the parts ``current`` (key -> (meta, arrays)) and every pending ended part, then the
        manifest; returns its path."""
        os.makedirs(self.folder, exist_ok=True)
        store.clean_partial(self.folder)
        self.generation += 1
        self.saves += 1
        todo = {k: f() for k, f in self.pending.items()}
        todo.update(current or {})
        for key, (record, arrays) in todo.items():
            name = f"part-{key.split(':', 1)[0]}-g{self.generation}.npz"
            data = store.arrays_bytes(arrays)
            store.atomic_write_bytes(os.path.join(self.folder, name), data)
            self.parts[key] = {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                               **record}
        self._adopt_foreign_files()
        store._test_kill(f"checkpoint-{self.saves}-partial")
        man = {"format": FORMAT, "generation": self.generation, "complete": complete,
               "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": self.config_text,
               "parts": self.parts}
        store.atomic_write_bytes(os.path.join(self.folder, MANIFEST),
                                 (json.dumps(man, indent=1, allow_nan=False) + "\n").encode("utf-8"))
        self.pending = {}
        self.last_save = time.monotonic()
        keep = {p["file"] for p in self.parts.values()} | {MANIFEST}
        for f in os.listdir(self.folder):
            if f.startswith("part-") and f not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.folder, f))
        store._test_kill(f"checkpoint-{self.saves}")
        return os.path.join(self.folder, MANIFEST)

    def _adopt_foreign_files(self):
        """Parts continued from another run directory (``--extend --out``) are linked (or copied) in."""
        if not self.source or os.path.realpath(self.source["folder"]) == os.path.realpath(self.folder):
            return
        for key, part in self.source["parts"].items():
            if key in self.parts or key not in self.saved:
                continue
            name = f"part-{key.split(':', 1)[0]}-g{self.generation}.npz"
            src, dst = os.path.join(self.source["folder"], part["file"]), os.path.join(self.folder, name)
            try:
                os.link(src, dst)
            except OSError:
                with open(src, "rb") as fh:
                    store.atomic_write_bytes(dst, fh.read())
            self.parts[key] = dict(part, file=name)

    def finish(self):
        """The run ended: write the checkpoint at its end (every part whole), marked complete."""
        return self.save(complete=True)

    # -- reading a saved part
    def saved_part(self, key):
        """``(record, tree, arrays)`` of the saved part ``key`` (None when there is none)."""
        part = self.saved.get(key)
        if part is None:
            return None
        arrays = store.load_arrays(os.path.join(self.source["folder"], part["file"]))
        return part, unpack(part["meta"], arrays), arrays


# --------------------------------------------------------------------------- time loops
class Loop:
    """The checkpointing of one call of :func:`meanfield.march.march` (its ``checkpoint`` argument).

    march calls :meth:`start` once (a resumed loop starts at its saved position) and
    :meth:`boundary` after the records of every step (a save when due, or when Ctrl-C asked).
    """

    def __init__(self, ck: Checkpointer, key, desc, step, record_steps, snapshot_records, h):
        self.ck, self.key, self.desc, self.h = ck, key, desc, h
        self.streams = list(getattr(step, "streams", ()))
        # state the step function itself carries between steps (e.g. Adam's moments): an object with
        # get_memory() -> packable tree and set_memory(tree)
        self.memory = getattr(step, "memory", None)
        self.record_steps = [int(s) for s in record_steps]
        self.snaps = sorted(int(i) for i in snapshot_records)
        self.k0 = 0
        self.end = None  # (k, ri, kept, health state, state) at the final step

    def _memory(self):
        return None if self.memory is None else self.memory.get_memory()

    def _part(self, k, ri, kept, health, res, state, done, streams=None, memory=False):
        """The manifest record (without file) and the arrays of the loop at step ``k``."""
        arrays = {}
        fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)
                  if f.name not in ("records", "state", "theta")}
        records = res.records[:ri]
        names = list(records[0]) if records else []
        for n in names:  # one array per observed quantity, stacked over the records so far
            arrays[f"rec.{n}"] = np.stack([np.asarray(r[n]) for r in records])
        part = {"kind": "march", "k": int(k), "ri": int(ri), "t": float(k * self.h), "done": done,
                "diverged": res.status != "completed", "desc": self.desc,
                "record_steps": self.record_steps[:ri], "record_names": names,
                "record_scalar": [not isinstance(records[0][n], np.ndarray) for n in names],
                "streams": streams if streams is not None else [g.bit_generator.state for g in self.streams],
                "meta": pack({"res": fields, "kept": kept, "health": health, "state": state,
                              "memory": self._memory() if memory is False else memory}, arrays, "m")}
        return part, arrays

    def _restore(self, res, saved, theta0, resume=True):
        """Fill ``res`` from a saved part; returns ``(k, ri, kept, health state, state)``. ``resume``:
        the loop goes on from there (its next record must lie ahead)."""
        part, tree, arrays = saved
        k, ri = part["k"], part["ri"]
        rs = self.record_steps
        if rs[:ri] != part["record_steps"] or k > rs[-1] or (resume and ri < len(rs) and rs[ri] <= k):
            raise CheckpointError(f"{self.desc}: the checkpoint's recording grid (position step {k}, record {ri}) "
                                  "is not a prefix of this run's")
        missing = [i for i in self.snaps if i < ri and i not in tree["res"].get("snapshots", {})]
        if missing:
            raise CheckpointError(f"{self.desc}: the checkpoint has no snapshot at record(s) {missing}, which this "
                                  "run keeps")
        for name, v in tree["res"].items():
            if name in ("snapshots", "snapshot_masses"):
                v = {i: a for i, a in v.items() if i in self.snaps}
            setattr(res, name, v)
        res.records = [None] * len(rs)
        for j in range(ri):
            res.records[j] = {n: (arrays[f"rec.{n}"][j][()] if sc else np.array(arrays[f"rec.{n}"][j]))
                              for n, sc in zip(part["record_names"], part["record_scalar"])}
        state = tree["state"]
        if isinstance(state, ParticleState) and isinstance(theta0, ParticleState):
            # the run's own generator objects continue (anything else holding them sees the same stream)
            _set_states(_generators(theta0.rng), _generators(state.rng), self.desc)
            state = state.replace(rng=theta0.rng)
        _set_states(self.streams, part["streams"], f"{self.desc} (step streams)")
        if self.memory is not None:
            if tree.get("memory") is None:
                raise CheckpointError(f"{self.desc}: the checkpoint holds no state of the step function "
                                      "(e.g. Adam's moments); it was written by a run that did not use it")
            self.memory.set_memory(tree["memory"])
        res.state = state
        res.theta = state.theta if isinstance(state, ParticleState) else state
        res.steps_done = k
        self.k0 = k
        return k, ri, tree["kept"], tree["health"], state

    def done_result(self, res, theta0):
        """``res`` filled with the saved result of a loop that ended and that this run does not
        continue (diverged, or completed at this run's last step); None otherwise."""
        saved = self.ck.saved_part(self.key)
        if saved is None or not saved[0].get("done"):
            return None
        if saved[0].get("diverged") or saved[0]["k"] >= self.record_steps[-1]:
            self._restore(res, saved, theta0, resume=False)
            return res
        return None

    def start(self, res, where, theta, k, ri, kept, health):
        """Where the loop starts: ``(k, ri, kept, theta)`` (a saved position, or as given); the record
        criteria ``health`` (:class:`meanfield.health.Health`) get their saved state back."""
        saved = self.ck.saved_part(self.key)
        if saved is None:
            return k, ri, kept, theta
        k, ri, kept, hstate, state = self._restore(res, saved, res.state)
        _set_health(health, hstate)
        return k, ri, kept, where.put(state)

    def boundary(self, k, ri, kept, health, res, get_state, n_total):
        """After the records of step ``k``: save when due, or when Ctrl-C asked for it (then stop).

        The loop's bookkeeping travels with its state: ``kept`` (the state of the last accepted
        record, kept if a later record is refused) and the record criteria's state (``health``: the
        reference risk of step 0, the risks at their precision floor)."""
        ck = self.ck
        ck.last_where = (self.desc, k * self.h)
        if k >= n_total:
            self.end = (k, ri, kept, _health_state(health), get_state())
        if ck.stop_requested:
            ck.save({self.key: self._part(k, ri, kept, _health_state(health), res, get_state(), done=False)})
            raise Interrupted(ck.folder, self.desc, k * self.h)
        if ck.due(k, self.k0, self.h):
            ck.save({self.key: self._part(k, ri, kept, _health_state(health), res, get_state(), done=False)})

    def ended(self, res):
        """The loop returned: its part (whole, at its end) is written with the next save."""
        if res.status == "completed" and self.end is not None:
            k, ri, kept, hstate, state = self.end
        else:  # diverged or failed: kept as it stopped (never continued)
            k, ri = res.steps_done, sum(r is not None for r in res.records)
            kept, hstate, state = None, None, res.state
        # the streams as they are now (the part is written later, with the next save)
        streams = [g.bit_generator.state for g in self.streams]
        memory = self._memory()
        if isinstance(state, ParticleState) and state.rng is not None:
            state = state.replace(rng=copy.deepcopy(state.rng))
        self.ck.pending[self.key] = lambda: self._part(k, ri, kept, hstate, res, state, done=True, streams=streams,
                                                       memory=memory)

    def run(self, march, step, theta0, record_steps, h, observe, **kw):
        """``march(step, theta0, record_steps, h, observe, **kw)`` through this Loop (see march)."""
        from .march import MarchResult

        done = self.done_result(MarchResult(records=[], snapshots={}, theta=None), theta0)
        if done is not None:
            return done
        res = march(step, theta0, record_steps, h, observe, checkpoint=self, **kw)
        self.ended(res)
        return res


def _health_state(health):
    """The mutable state of the record criteria (:class:`meanfield.health.Health`), as plain values."""
    if health is None:
        return None
    return {"reference": health.reference, "floored": {n: tuple(v) for n, v in health.floored.items()}}


def _set_health(health, state):
    if health is not None and state is not None:
        health.reference = state["reference"]
        health.floored = dict(state["floored"])


def loop_for(step, record_steps, snapshot_records, h, desc):
    """The :class:`Loop` of a new time loop of the active run, or None when it has no checkpoints."""
    ck = active()
    if ck is None:
        return None
    return Loop(ck, ck.next_key(desc or "loop"), desc or "loop", step, record_steps, snapshot_records, h)


def unit(label, signature, compute):
    """``compute()`` of a part computed in one go, or its saved value when the signature matches.

    ``signature`` (JSON) names what the value depends on beyond the config (e.g. the horizon): a
    saved unit with another signature is computed again. The value must be something :func:`pack`
    encodes (a dict of arrays and plain values).
    """
    ck = active()
    if ck is None:
        return compute()
    key = ck.next_key(label)
    saved = ck.saved.get(key)
    if saved is not None and saved.get("kind") == "unit" and saved.get("signature") == signature:
        return ck.saved_part(key)[1]["value"]
    value = compute()

    def part():
        arrays = {}
        return {"kind": "unit", "signature": signature, "done": True, "desc": label,
                "meta": pack({"value": value}, arrays, "m")}, arrays

    ck.pending[key] = part
    return value


class Busy(CheckpointError):
    """Another process is computing into the same run directory (its checkpoint folder is locked)."""


@contextlib.contextmanager
def lock(run_dir, needed: bool):
    """Hold an ``flock`` on ``run_dir/checkpoint`` while a run writes checkpoints there, so that a
    second process continuing the same checkpoint (a second ``--resume``) is refused with
    :class:`Busy` instead of interleaving its saves (and removing the other's files)."""
    if not needed:
        yield
        return
    import fcntl

    folder = folder_of(run_dir)
    os.makedirs(folder, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Busy(f"another meanfield process is computing into {run_dir} (its checkpoint folder is "
                       "locked); wait for it to finish or stop it") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def stop_on_sigint(ck, log):
    """While the run computes, the first Ctrl-C asks for a checkpoint at the next step boundary and a
    stop (:class:`Interrupted`); a second one stops at once (``KeyboardInterrupt``)."""
    if ck is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if ck.stop_requested:
            raise KeyboardInterrupt
        ck.stop_requested = True
        log("Ctrl-C: writing a checkpoint at the next step boundary, then stopping (Ctrl-C again stops at once, "
            "without it)")

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
