"""How long a tree of small files takes to make and to reuse (bench.smallfiles.create_files):
creates N files (default 1,000,000) in a fresh directory under /var/tmp, times the creation
(missing names found with one listing, then created one by one in this process) and then
the reuse pass over the complete tree, prints both, and removes the tree.

The creation time is mostly the file system's: on ext4 the creates of one directory are
serialised by its lock, and without a journal ext4 skips, one by one, the inodes freed in the
last few minutes (recently_deleted) when it allocates a new one, so a run right after a big tree
was removed (this script's own last run too) is several times slower. Compare runs made on a
quiet file system.

Usage: python benchmarks/smallfiles_tree.py [--files N] [--empty] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import smallfiles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000, help="files in the tree (default 1000000)")
    parser.add_argument("--empty", action="store_true", help="empty files (mknod), as the fd-pressure steps make")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the temporary tree is made (default /var/tmp)")
    args = parser.parse_args()
    tree = Path(tempfile.mkdtemp(prefix="fusebench-smallfiles-", dir=args.dir))
    try:
        start = time.monotonic()
        smallfiles.create_files(tree, args.files, progress=lambda line: print(f"  {line}", flush=True),
                                empty=args.empty)
        created = time.monotonic() - start
        start = time.monotonic()
        smallfiles.create_files(tree, args.files, empty=args.empty)
        reused = time.monotonic() - start
        found = len(os.listdir(tree))
        print(f"{args.files} {'empty ' if args.empty else ''}files in {args.dir}:")
        print(f"  create {created:7.2f} s  ({created / args.files * 1e6:.1f} us/file)")
        print(f"  reuse  {reused:7.2f} s  ({found} files there)")
    finally:
        start = time.monotonic()
        shutil.rmtree(tree)
        print(f"  removed the tree in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
