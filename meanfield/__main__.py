"""``python -m meanfield``: the same command line as ``meanfield``."""
import sys

from .cli import main

sys.exit(main())
