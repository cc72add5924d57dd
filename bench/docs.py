"""The README's reference tables, generated from the models that define them: scenario keys
(bench.scenario, whose built-in target keys come from bench.fusefs.options) and the results
folder's files (bench.records). Each table sits between markers in README.md:

    <!-- generated: NAME -->
    ...
    <!-- end of generated table -->

`python -m bench.docs` rewrites them in place; `python -m bench.docs --check` exits 1 when
README.md is out of date (a test runs the same check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bench.programs import CATALOG, Program
from bench.records import (
    MANIFEST_DERIVED,
    RUN_SECTIONS,
    CommandRecord,
    FdPressureRecord,
    Manifest,
    RequestRecord,
    SampleRecord,
    SnapshotRecord,
)
from bench.scenario import (
    ExternalTarget,
    FdPressure,
    FuseTarget,
    Opens,
    PassthroughTarget,
    Scenario,
    Workload,
)
from bench.tree import TreeSpec

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- end of generated table -->)", re.S)
_BUILTIN = ("name", "type")


def _default(field: FieldInfo) -> str:
    shown = (field.json_schema_extra or {}).get("shown")
    if shown is not None:
        return shown
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def key_table(model: type[BaseModel], names: Iterable[str]) -> str:
    """Markdown table of scenario keys: key, default, meaning."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name in names:
        field = model.model_fields[name]
        rows.append(f"| `{name}` | {_default(field)} | {_cell(field.description or '')} |")
    return "\n".join(rows) + "\n"


def column_table(records: Iterable[type[BaseModel]], extra: dict[str, str] | None = None, *,
                 head: str = "column") -> str:
    """Markdown table of a results file's columns (or a JSON document's keys): name, meaning."""
    rows = [f"| {head} | meaning |", "|---|---|"]
    for record in records:
        rows += [f"| `{name}` | {_cell(field.description or '')} |" for name, field in record.model_fields.items()]
    rows += [f"| `{name}` | {_cell(meaning)} |" for name, meaning in (extra or {}).items()]
    return "\n".join(rows) + "\n"


def catalog_table() -> str:
    """Markdown table of the program catalog: what each entry runs, its own keys, whether it
    changes files, and the commands it needs."""
    rows = ["| `program` | what it runs | its own keys | changes files | needs |", "|---|---|---|---|---|"]
    common = set(Program.model_fields)
    for name, entry in CATALOG.items():
        own = [f"`{key}` ({_default(field).strip('`')}): {field.description}"
               for key, field in entry.model_fields.items() if key not in common and key != "program"]
        what = " ".join((entry.__doc__ or "").split())
        rows.append(f"| `{name}` | {_cell(what)} | {_cell('; '.join(own)) or '-'} | "
                    f"{'yes' if entry.mutates else 'no'} | {', '.join(entry.requires)} |")
    return "\n".join(rows) + "\n"


def _builtin_keys() -> tuple[list[str], list[str], list[str]]:
    fuse = [name for name in FuseTarget.model_fields if name not in _BUILTIN]
    passthrough = [name for name in PassthroughTarget.model_fields if name not in _BUILTIN]
    shared = [name for name in passthrough if name in fuse]
    return (shared, [name for name in fuse if name not in shared], [name for name in passthrough if name not in shared])


TABLES: dict[str, Callable[[], str]] = {
    "scenario": lambda: key_table(Scenario, Scenario.model_fields),
    "builtin-targets": lambda: key_table(PassthroughTarget, _builtin_keys()[0]),
    "fuse-target": lambda: key_table(FuseTarget, _builtin_keys()[1]),
    "passthrough-target": lambda: key_table(PassthroughTarget, _builtin_keys()[2]),
    "external-target": lambda: key_table(ExternalTarget, [n for n in ExternalTarget.model_fields if n not in _BUILTIN]),
    "workloads": lambda: key_table(Workload, Workload.model_fields),
    "opens": lambda: key_table(Opens, Opens.model_fields),
    "programs": lambda: key_table(Program, Program.model_fields),
    "tree": lambda: key_table(TreeSpec, TreeSpec.model_fields),
    "catalog": catalog_table,
    "fd-pressure": lambda: key_table(FdPressure, FdPressure.model_fields),
    "manifest.json": lambda: column_table([Manifest], MANIFEST_DERIVED, head="key"),
    "runs.csv": lambda: column_table(RUN_SECTIONS),
    "samples.csv": lambda: column_table([SampleRecord]),
    "requests.csv": lambda: column_table([RequestRecord]),
    "commands.csv": lambda: column_table([CommandRecord]),
    "fd_pressure.csv": lambda: column_table([FdPressureRecord]),
    "fd_pressure_snapshots.csv": lambda: column_table([SnapshotRecord]),
}


def render(text: str) -> str:
    """`text` with every generated table replaced by what the models say now."""
    missing = set(TABLES) - {match["name"] for match in _BLOCK.finditer(text)}
    if missing:
        raise ValueError(f"README.md lacks the generated tables {sorted(missing)}")
    return _BLOCK.sub(lambda m: m.group(1) + TABLES[m["name"]]() + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md's generated tables (or, with --check, only say whether they are current)."""
    parser = argparse.ArgumentParser(prog="python -m bench.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date, change nothing")
    args = parser.parse_args(argv)
    text = README.read_text()
    fresh = render(text)
    if args.check:
        if fresh != text:
            print("README.md is out of date: run `python -m bench.docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
