"""Plotting primitives shared by every figure module: one style (:mod:`.style`)."""
from .style import banner, colors, pm, save, set_banner, style

__all__ = ["style", "colors", "save", "set_banner", "banner", "pm"]
