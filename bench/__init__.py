"""fusebench: measure what Linux FUSE passthrough buys and what it costs."""

__version__ = "0.1.0"
