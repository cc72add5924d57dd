"""bench.fusefs stands alone: no module of it imports anything of bench outside bench.fusefs."""

from __future__ import annotations

import ast
from pathlib import Path

FUSEFS = Path(__file__).resolve().parent.parent / "bench" / "fusefs"


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_fusefs_imports_nothing_of_bench_outside_itself() -> None:
    outside = {f"{path.name}: {name}" for path in FUSEFS.glob("*.py") for name in imported_modules(path)
               if (name == "bench" or name.startswith("bench.")) and not name.startswith("bench.fusefs")}
    assert not outside, sorted(outside)


def test_the_check_would_see_such_an_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom bench.fusefs import mounts\nfrom bench import errors\n")
    assert imported_modules(module) == ["os", "bench.fusefs", "bench"]
