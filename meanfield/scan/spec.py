"""Scan specifications: a base config, axes, zipped groups and seeds, expanded into run configs.

A spec is a TOML file::

    base = "teacher_student_erf.toml"      # a run config, relative to the spec; or inline:
    # [base.task]
    # d = 10

    seeds = 5                              # run.seed = 0..4 (or an explicit list [3, 7])

    [axes]                                 # grid: the product of every axis
    "task.d" = [5, 20]                     # quoted or nested keys: task.d = [...] works too
    "train.widths" = [16, 64]              # an int inside a list-valued key means [16], [64]

    [[zip]]                                # values that vary together (one factor of the grid)
    "limit.dt" = [0.1, 0.05]
    "train.lr" = [0.1, 0.05]

    [cluster.slurm]                        # resources of --executor dask --cluster slurm (no run id
    cores = 8                              # depends on them; meanfield.scan.clusters)
    memory = "16GB"

The base may also be a table holding both a ``file`` key and ``[base.<section>]`` overrides of
that file. Every point is resolved with :func:`meanfield.config.from_dict` (defaults filled,
everything validated) before anything runs; one invalid point stops the scan, naming the point
by its axis values.
"""
from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
from dataclasses import dataclass, field

from .. import config as C
from .identity import run_id

__all__ = ["ScanSpec", "Point", "SpecError", "load_spec", "spec_from_dict", "expand", "SEED_PARAM"]

#: Name of the seed factor in a point's parameters (it sets ``run.seed``).
SEED_PARAM = "seed"

_TOP_KEYS = ("base", "axes", "zip", "seeds", "description", "cluster")


class SpecError(ValueError):
    """A scan spec that cannot be expanded, or a point that does not validate; one problem a line."""

    def __init__(self, problems):
        self.problems = list(problems)
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid scan ({len(self.problems)} problem(s)):\n{body}")


@dataclass
class ScanSpec:
    """A parsed spec (not yet expanded).

    Attributes
    ----------
    base : dict
        Raw base config sections (defaults are filled per point).
    base_dir : str or None
        Folder against which relative dataset paths of the base resolve.
    axes : dict
        ``'section.key' -> list of values`` (grid factors, in file order).
    zips : list of dict
        Each a ``'section.key' -> list`` group whose lists have equal lengths.
    seeds : list of int or None
        Values of ``run.seed`` (None: the base's seed, no seed factor).
    text : str
        The spec file's text (kept in the index for the record).
    clusters : dict
        Resources of dask clusters, ``kind -> options`` (the ``[cluster.<kind>]`` tables,
        :mod:`meanfield.scan.clusters`); not part of any run's id.
    """

    base: dict
    base_dir: str | None = None
    axes: dict = field(default_factory=dict)
    zips: list = field(default_factory=list)
    seeds: list | None = None
    text: str = ""
    path: str | None = None
    clusters: dict = field(default_factory=dict)

    @property
    def param_names(self) -> list:
        """Names of the varying parameters, in the order of the spec (seed last)."""
        names = list(self.axes)
        for z in self.zips:
            names += list(z)
        if self.seeds is not None:
            names.append(SEED_PARAM)
        return names

    @property
    def n_points(self) -> int:
        n = 1
        for v in self.axes.values():
            n *= len(v)
        for z in self.zips:
            n *= len(next(iter(z.values())))
        return n * (len(self.seeds) if self.seeds is not None else 1)


@dataclass
class Point:
    """One expanded grid point: its parameters, resolved config and run id."""

    params: dict
    config: "C.Config"
    id: str


def load_spec(path) -> ScanSpec:
    """Read and check a spec file (relative paths resolve against its folder)."""
    path = os.fspath(path)
    try:
        data = C.read_toml(path, what="scan spec")  # a directory, FIFO, non-UTF-8 file: refused
    except C.ConfigError as e:
        raise SpecError(e.problems) from None
    spec = spec_from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)))
    with open(path, "rb") as fh:
        spec.text = fh.read().decode("utf-8")
    spec.path = os.path.abspath(path)
    return spec


def _flatten(table, prefix=""):
    """``{'task': {'d': [..]}}`` and ``{'task.d': [..]}`` both become ``{'task.d': [..]}``."""
    out = {}
    for k, v in table.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _check_key(name, where, problems):
    """A dotted key must name a schema field; returns the Field or None."""
    if name.count(".") != 1:
        problems.append(f"{where}: {name!r} must be 'section.key' (e.g. 'train.lr')")
        return None
    sec, key = name.split(".")
    if sec not in C.SCHEMA:
        m = difflib.get_close_matches(sec, list(C.SCHEMA), n=1)
        problems.append(f"{where}: unknown section in {name!r}" + (f" (did you mean {m[0]!r}?)" if m else ""))
        return None
    if key not in C.SCHEMA[sec]:
        m = difflib.get_close_matches(key, list(C.SCHEMA[sec]), n=1)
        problems.append(f"{where}: unknown key {name!r}" + (f" (did you mean '{sec}.{m[0]}'?)" if m else ""))
        return None
    if name == "run.seed":
        problems.append(f"{where}: vary the seed with the top-level 'seeds = K' (or a list), not run.seed")
        return None
    return C.SCHEMA[sec][key]


def _values(name, f, vals, where, problems):
    if not isinstance(vals, list) or not vals:
        problems.append(f"{where}: {name} must be a non-empty list of values, got {vals!r}")
        return None
    if f.type == "int_list":
        # convenience: an axis over widths lists single widths; [16] and 16 mean the same run
        vals = [[v] if isinstance(v, int) and not isinstance(v, bool) else v for v in vals]
    return vals


def spec_from_dict(data: dict, base_dir: str | None = None) -> ScanSpec:
    """Check a parsed spec and return a :class:`ScanSpec` (raises :class:`SpecError`)."""
    problems = []
    if not isinstance(data, dict):
        raise SpecError(["a scan spec must be a TOML table"])
    for k in data:
        if k not in _TOP_KEYS:
            m = difflib.get_close_matches(k, _TOP_KEYS, n=1)
            problems.append(f"unknown top-level key {k!r}" + (f" (did you mean {m[0]!r}?)" if m else "")
                            + f"; allowed: {', '.join(_TOP_KEYS)}")
    base, cfg_dir = _load_base(data.get("base", {}), base_dir, problems)

    axes = {}
    raw_axes = data.get("axes", {})
    if not isinstance(raw_axes, dict):
        problems.append("[axes] must be a table of 'section.key' = [values]")
        raw_axes = {}
    for name, vals in _flatten(raw_axes).items():
        f = _check_key(name, "[axes]", problems)
        if f is not None:
            vals = _values(name, f, vals, "[axes]", problems)
            if vals is not None:
                axes[name] = vals

    zips = []
    raw_zips = data.get("zip", [])
    if isinstance(raw_zips, dict):
        raw_zips = [raw_zips]
    if not isinstance(raw_zips, list):
        problems.append("[[zip]] must be an array of tables")
        raw_zips = []
    seen = set(axes)
    for i, z in enumerate(raw_zips):
        where = f"[[zip]] #{i + 1}"
        if not isinstance(z, dict) or not z:
            problems.append(f"{where}: must be a non-empty table of 'section.key' = [values]")
            continue
        group = {}
        for name, vals in _flatten(z).items():
            f = _check_key(name, where, problems)
            if f is None:
                continue
            vals = _values(name, f, vals, where, problems)
            if vals is None:
                continue
            if name in seen:
                problems.append(f"{where}: {name} is varied twice (in [axes] or another [[zip]])")
                continue
            seen.add(name)
            group[name] = vals
        lengths = {len(v) for v in group.values()}
        if len(lengths) > 1:
            problems.append(f"{where}: lists of one zip group must have equal lengths, got "
                            + ", ".join(f"{k}: {len(v)}" for k, v in group.items()))
        elif group:
            zips.append(group)

    seeds = data.get("seeds")
    if seeds is not None:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                problems.append(f"seeds = {seeds}: must be >= 1 (or a list of seeds)")
            seeds = list(range(max(seeds, 0)))
        elif isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                       for s in seeds):
            if len(set(seeds)) != len(seeds):
                problems.append(f"seeds = {seeds}: repeated seeds")
        else:
            problems.append(f"seeds must be a positive integer K (seeds 0..K-1) or a list of seeds >= 0, got {seeds!r}")
            seeds = None
    from .clusters import spec_clusters

    clusters = spec_clusters(data.get("cluster", {}), problems)
    if problems:
        raise SpecError(problems)
    return ScanSpec(base=base, base_dir=cfg_dir, axes=axes, zips=zips, seeds=seeds, clusters=clusters)


def _load_base(base, spec_dir, problems):
    """The raw base sections and the folder its relative dataset paths refer to."""
    cfg_dir = spec_dir
    if isinstance(base, str):
        base = {"file": base}
    if not isinstance(base, dict):
        problems.append("base must be a path to a run config or a table of [base.<section>] tables")
        return {}, cfg_dir
    base = copy.deepcopy(base)
    out = {}
    file = base.pop("file", None)
    if file is not None:
        if not isinstance(file, str):
            problems.append(f"base.file must be the path of a run config, got {file!r}")
            return {}, cfg_dir
        path = file if os.path.isabs(file) or spec_dir is None else os.path.join(spec_dir, file)
        try:
            out = C.read_toml(path, what="base run config")
            cfg_dir = os.path.dirname(os.path.abspath(path))
        except C.ConfigError as e:
            problems += [f"base: {q}" for q in e.problems]
    for sec, table in base.items():
        if not isinstance(table, dict):
            problems.append(f"base.{sec} must be a table")
            continue
        out.setdefault(sec, {})
        if not isinstance(out[sec], dict):
            problems.append(f"base: [{sec}] of the base file is not a table")
            continue
        out[sec].update(table)
    return out, cfg_dir


def _factors(spec: ScanSpec):
    """Grid factors: each a list of ``{param: value}`` dicts (an axis, a zip group, the seeds)."""
    fs = [[{name: v} for v in vals] for name, vals in spec.axes.items()]
    for z in spec.zips:
        names = list(z)
        fs.append([dict(zip(names, row)) for row in zip(*(z[n] for n in names))])
    if spec.seeds is not None:
        fs.append([{SEED_PARAM: s} for s in spec.seeds])
    return fs


def point_label(params: dict) -> str:
    """A point named by its axis values, e.g. ``task.d=5, train.lr=0.1, seed=3``."""
    if not params:
        return "(the base config)"
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def expand(spec: ScanSpec, max_invalid_shown: int = 20) -> list:
    """Every grid point as a validated :class:`Point`, in grid order (last factor fastest).

    Raises
    ------
    SpecError
        Listing each invalid point by its axis values with its config problems (all points are
        checked, so one pass shows every mistake).
    """
    points, bad = [], []
    for combo in itertools.product(*_factors(spec)):
        params = {}
        for part in combo:
            params.update(part)
        data = copy.deepcopy(spec.base)
        for name, v in params.items():
            if name == SEED_PARAM:
                data.setdefault("run", {})["seed"] = v
            else:
                sec, key = name.split(".")
                if not isinstance(data.setdefault(sec, {}), dict):
                    continue  # reported by from_dict
                data[sec][key] = copy.deepcopy(v)
        try:
            cfg = C.from_dict(data, base_dir=spec.base_dir)
        except C.ConfigError as e:
            bad.append((params, e.problems))
            continue
        points.append(Point(params=params, config=cfg, id=run_id(cfg)))
    if bad:
        lines = [f"point {point_label(p)}: " + "; ".join(probs) for p, probs in bad[:max_invalid_shown]]
        if len(bad) > max_invalid_shown:
            lines.append(f"... and {len(bad) - max_invalid_shown} more invalid point(s)")
        raise SpecError(lines)
    return points


def distinct(points: list) -> dict:
    """``id -> first Point`` in grid order: equal resolved configs collapse to one run."""
    out = {}
    for p in points:
        out.setdefault(p.id, p)
    return out
