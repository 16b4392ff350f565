import os

# Keep BLAS/numba single-minded on the 2-core CI machine, and make numba caches land in the tree.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))

import matplotlib

matplotlib.use("Agg")

# The product's default backend is "auto" (numba here). The suite compares against the numpy reference
# unless a test names another backend (the fast paths have their own agreement tests), so the schema
# default is pinned back to numpy in this process; test_progress.py checks the shipped default in a
# fresh interpreter and that "auto" resolves to numba and is recorded.
import dataclasses  # noqa: E402

from meanfield import config as _config  # noqa: E402

_config.SCHEMA["run"]["backend"] = dataclasses.replace(_config.SCHEMA["run"]["backend"], default="numpy")
