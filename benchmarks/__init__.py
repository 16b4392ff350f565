"""Performance benchmarks of the particle backends (``meanfield bench`` runs :mod:`benchmarks.suite`)."""
