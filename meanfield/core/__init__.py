"""Pieces shared by every model family of the product (the two-layer and the deep wings never
import each other; what both need lives here): time grids, backend choice, provenance, results,
the registries of limit methods and model kinds."""
