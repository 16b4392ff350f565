"""Numerics of interacting-particle gradient flows and their infinite-width limits.

Knows nothing of configs, files or the command line: arrays in, arrays out.
"""
from . import activations, gaussian

__all__ = ["activations", "gaussian"]
