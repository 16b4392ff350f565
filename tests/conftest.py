import os

# Keep BLAS/numba single-minded on the 2-core CI machine, and make numba caches land in the tree.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))

import matplotlib

matplotlib.use("Agg")
