"""Where a scan keeps things: ``DIR/index.sqlite`` and one directory per run, ``DIR/runs/<id>/``."""
from __future__ import annotations

import os

from .index import FINISHED, STATUSES, Index, IndexCorrupt, set_aside

__all__ = ["Index", "IndexCorrupt", "set_aside", "STATUSES", "FINISHED", "run_dir", "index_path", "RUNS", "INDEX"]

RUNS = "runs"
INDEX = "index.sqlite"


def run_dir(root, rid: str) -> str:
    """The directory of run ``rid`` in scan directory ``root`` (named by id, never by position)."""
    return os.path.join(os.fspath(root), RUNS, rid)


def index_path(root) -> str:
    return os.path.join(os.fspath(root), INDEX)
