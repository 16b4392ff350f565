"""Parameter scans: grids of run configs computed in parallel, resumable, indexed and collected.

Quick use::

    from meanfield import scan
    report = scan.run_scan("experiments/scan_width.toml", "runs/scans/scan_width", workers=2)
    col = scan.collect("runs/scans/scan_width")  # col.table: dict of numpy columns
    col.groups[0].arrays["risk_nn"]            # (seeds, widths, networks, times)

Modules: :mod:`.spec` (spec files, expansion, validation), :mod:`.identity` (run ids),
:mod:`.store` (the sqlite index and run directories), :mod:`.executors` (local process pool,
dask), :mod:`.runner` (the coordinator), :mod:`.estimate` (dry-run estimates), :mod:`.collect`,
:mod:`.plot`, :mod:`.cli`.

Note that ``meanfield.scan.collect`` is the function; the module is ``meanfield.scan.collect``
in ``sys.modules`` (``from meanfield.scan.collect import Collected``).
"""
from .collect import Collected, Group
from .collect import collect as collect  # noqa: PLC0414 - the function shadows the module on purpose
from .identity import canonical_json, run_id
from .runner import CONFIRM_ABOVE, ScanRefused, ScanReport, plan_scan, run_scan, scan_status
from .spec import ScanSpec, SpecError, expand, load_spec, spec_from_dict

__all__ = ["collect", "Collected", "Group", "run_scan", "plan_scan", "scan_status", "ScanReport", "ScanRefused",
           "CONFIRM_ABOVE", "load_spec", "spec_from_dict", "expand", "ScanSpec", "SpecError", "run_id",
           "canonical_json"]
