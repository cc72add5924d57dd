"""fusebench: measure what Linux FUSE passthrough buys and what it costs."""

__version__ = "0.2.0"  # 0.2.0: results folder format 2 (requests.csv, fd-pressure snapshots)
