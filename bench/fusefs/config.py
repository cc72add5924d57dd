"""The server's options (one field per command-line option)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Options:
    """How to mount and serve; validated by `bench.fusefs.cli`."""

    source: str
    mountpoint: str
    mode: str = "plain"  # plain | passthrough
    fd_policy: str = "keep"  # keep | close | cache (passthrough only)
    cache_size: int = 1024
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_pages: int = 256
    max_background: int = 64
    batch: int = 32  # plain mode: READs per io_submit (1: one pread each)
    writeback_cache: bool = False
    keep_cache: bool = False
    direct_io: bool = False
    attr_timeout: float = 1.0
    entry_timeout: float = 1.0
    xattr: str = "off"
    stats_file: str | None = None
    stats_interval: float = 0.25
    nofile: int | None = None

    @property
    def passthrough(self) -> bool:
        """True in passthrough mode."""
        return self.mode == "passthrough"

    @property
    def max_write(self) -> int:
        """Largest READ/WRITE payload negotiated with the kernel."""
        return self.max_pages * 4096

    def summary(self) -> dict[str, Any]:
        """The options as the stats file reports them."""
        return asdict(self)
