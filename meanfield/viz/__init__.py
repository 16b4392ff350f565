"""Plotting primitives shared by every figure module: one style (:mod:`.style`)."""
from .style import colors, style

__all__ = ["style", "colors"]
