"""A generated tree shaped like a source tree, for the program workloads: seeded, so every run
and every machine builds the same one, and reused while its marker says it is whole.

Directories hang off each other at random (some deep, most shallow); files go into them at
random; sizes follow a log-normal spread around `median_size`, clipped to [1, `max_size`]
(most files small, a few large, as in a source tree). Content is incompressible and never a
zero page, so no file system can answer reads from holes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from pydantic import model_validator

from bench.fields import LocatedError, Size, Strict, key
from bench.stop import StopToken
from bench.workspace import build_unless_whole, owned_dir

TREES_DIR = "fusebench-trees"
VERSION = 2  # 2: content written in chunks (other bytes than version 1)
SIGMA = 1.6  # spread of log(size): with a 4 KiB median, 1 file in 20 is over 50 KiB
EXTENSIONS = (".c", ".h", ".py", ".txt", ".md", ".json", ".rs", ".go")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file of the tree: its path relative to the tree's root, and its size."""

    path: str
    size: int


class TreeSpec(Strict):
    """The shape of a generated tree."""

    files: int = key(5000, "files in the tree", ge=1, le=1_000_000)
    dirs: int = key(300, "directories the files are spread over", ge=1, le=100_000)
    median_size: Size = key("4k", "median file size (sizes spread log-normally around it; at most `max_size`)",
                            ge=1, le=1 << 30)
    max_size: Size = key("4M", "largest file size (up to 1G)", ge=1, le=1 << 30)
    seed: int = key(1, "seed of names, shape and content: the same seed gives the same tree")

    @model_validator(mode="after")
    def _median_within_max(self):
        if self.median_size > self.max_size:
            raise LocatedError(("median_size",), "median_size is larger than max_size: every file would be max_size")
        return self

    def digest(self) -> str:
        """A short name for this shape (the directory it is generated in)."""
        text = json.dumps([VERSION, self.model_dump()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def layout(self) -> tuple[list[str], list[Entry]]:
        """Every directory (parents first) and every file of the tree, computed, not written."""
        rng = random.Random(f"fusebench-tree-v{VERSION}:{self.seed}")
        dirs = [""]
        for index in range(1, self.dirs):
            parent = dirs[rng.randrange(len(dirs))]
            dirs.append(f"{parent}/d{index:05d}" if parent else f"d{index:05d}")
        entries = []
        for index in range(self.files):
            where = dirs[rng.randrange(len(dirs))]
            name = f"f{index:06d}{EXTENSIONS[rng.randrange(len(EXTENSIONS))]}"
            size = int(min(self.max_size, max(1, round(math.exp(rng.gauss(math.log(self.median_size), SIGMA))))))
            entries.append(Entry(f"{where}/{name}" if where else name, size))
        return dirs, entries

    def totals(self) -> tuple[int, int]:
        """Files and bytes of the tree."""
        _, entries = self.layout()
        return len(entries), sum(entry.size for entry in entries)

    def path_in(self, source: Path) -> Path:
        """Where this tree lives under a source directory."""
        return source / TREES_DIR / self.digest()

    def generate(self, source: Path, stop: StopToken | None = None) -> Path:
        """The tree under `source`, written unless its marker says it is already there whole."""
        root = owned_dir(source, TREES_DIR) / self.digest()
        build_unless_whole(root, {"version": VERSION, "spec": self.model_dump()}, lambda: self._write(root, stop))
        return root

    def _write(self, root: Path, stop: StopToken | None) -> None:
        dirs, entries = self.layout()
        for directory in dirs:
            (root / directory).mkdir(parents=True, exist_ok=True)
        for index, entry in enumerate(entries):
            if stop is not None and index % 256 == 0:
                stop.check()
            stream = random.Random(f"fusebench-tree-content-v{VERSION}:{self.seed}:{index}")
            with open(root / entry.path, "wb") as out:
                for offset in range(0, entry.size, CHUNK):  # never a whole large file in memory
                    out.write(stream.randbytes(min(CHUNK, entry.size - offset)))
