"""``meanfield export DIR --format netcdf|zarr``: a run as one self-describing labelled file.

The file is :meth:`meanfield.core.result.Result.to_xarray` written out: every array with its named
dimensions and its meaning (attribute ``meaning``), the coordinates ``time``, ``width`` and
``column``, and as global attributes the model family, the status, the resolved config (TOML text),
the summary and the provenance (JSON text), plus the flat provenance keys (``meanfield_version``,
``git_commit``, ``command_line``, ``backend``, ``host_cpu``) so that ``ncdump -h`` shows them.

Formats are a registry (:data:`FORMATS`). netCDF is written with the first engine installed among
h5netcdf and netCDF4 (netCDF-4 files) and scipy (netCDF-3 64-bit offset files, which have no 64-bit
integers: integer arrays such as widths and coupling indices are stored as 32-bit, which holds
every value they take). ``xarray.open_dataset(path)`` reads it back. zarr is written as a zarr
format 2 store with consolidated metadata (``xarray.open_zarr(path)``).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

__all__ = ["FORMATS", "export", "netcdf_engine", "cmd_export"]


def netcdf_engine() -> str:
    """The netCDF engine xarray will write with: h5netcdf, netcdf4 or scipy (the first importable)."""
    import importlib.util

    # h5netcdf writes through h5py, which it no longer requires at install time
    for mods, engine in ((("h5netcdf", "h5py"), "h5netcdf"), (("netCDF4",), "netcdf4"), (("scipy",), "scipy")):
        if all(importlib.util.find_spec(m) is not None for m in mods):
            return engine
    raise ImportError("writing netCDF needs h5netcdf, netCDF4 or scipy: pip install 'meanfield-dynamics[xarray]'")


def _dataset(res):
    ds = res.to_xarray()
    p = res.summary.get("provenance", {}) or {}
    for k_out, k_in in (("meanfield_version", "version"), ("git_commit", "git_commit"), ("command_line", "command_line"),
                        ("backend", "backend"), ("host_cpu", "host_cpu"), ("finished_utc", "finished_utc")):
        if p.get(k_in) is not None:
            ds.attrs[k_out] = str(p[k_in])
    return ds


def _write_netcdf(ds, path):
    engine = netcdf_engine()
    if engine == "scipy":
        # netCDF-3 has no int64 or bool: narrow integers where the values allow (they always do here)
        for name, var in list(ds.variables.items()):
            if var.dtype == np.int64 or var.dtype == np.uint64:
                v = np.asarray(var.values)
                if v.size and (v.min() < np.iinfo(np.int32).min or v.max() > np.iinfo(np.int32).max):
                    raise ValueError(f"{name} holds integers beyond 32 bits; install h5netcdf for a netCDF-4 file")
                ds[name] = var.astype(np.int32)
            elif var.dtype == bool:
                ds[name] = var.astype(np.int8)
        ds.to_netcdf(path, engine="scipy", format="NETCDF3_64BIT")
    else:
        ds.to_netcdf(path, engine=engine)
    return engine


def _write_zarr(ds, path):
    # Zarr format 2, consolidated: its data types (the fixed-length strings of the column
    # coordinate included) are specified, so every zarr reader (zarr-python 2 and 3, zarr.js,
    # tensorstore) opens it; zarr-python 3 warns that format 3 has no specification for them yet
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    return "zarr (format 2)"


#: format name -> (default file name in the run directory, writer(dataset, path) -> engine used)
FORMATS = {"netcdf": ("result.nc", _write_netcdf), "zarr": ("result.zarr", _write_zarr)}


def export(run_dir, fmt="netcdf", out=None, force=False):
    """Write the run in ``run_dir`` as ``fmt``; returns ``(path, engine)``.

    Raises ``FileNotFoundError`` (no finished run), ``FileExistsError`` (``out`` exists and not
    ``force``), ``ImportError`` (xarray or the format's library missing), ``ValueError``.
    """
    from .core.result import load

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    default, writer = FORMATS[fmt]
    res = load(run_dir)
    out = out or os.path.join(run_dir, default)
    if os.path.exists(out) and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    try:
        import xarray  # noqa: F401
    except ImportError:
        raise ImportError("meanfield export needs xarray: pip install 'meanfield-dynamics[xarray]'") from None
    if fmt == "zarr":
        import importlib.util

        if importlib.util.find_spec("zarr") is None:
            raise ImportError("--format zarr needs zarr: pip install 'meanfield-dynamics[xarray]'")
    ds = _dataset(res)
    tmp = out + ".partial"
    engine = writer(ds, tmp)
    if os.path.isdir(out) and fmt == "zarr":
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)  # a reader never sees a half-written file under the final name
    return out, engine


def cmd_export(args):
    try:
        path, engine = export(args.dir, args.format, args.out, args.force)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f"meanfield: {e}", file=sys.stderr)
        return 2
    if not getattr(args, "quiet", False):
        print(f"wrote {path} ({args.format}, engine {engine}); read it with xarray.open_dataset({json.dumps(path)})")
    return 0
