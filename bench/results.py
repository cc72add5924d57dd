"""The results folder (DESIGN.md): write it while a run goes on, read it back to resume.

CSV rows are appended, flushed and fsynced as each run finishes so a killed run loses
nothing already measured; manifest.json and scenario.yaml are replaced atomically.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.columns import FD_PRESSURE_COLUMNS, RUN_COLUMNS
from bench.errors import InputError

MANIFEST = "manifest.json"
SCENARIO = "scenario.yaml"
RUNS = "runs.csv"
SAMPLES = "samples.csv"
FD_PRESSURE = "fd_pressure.csv"
FIO_DIR = "fio"
FORMAT_VERSION = 1

# Statuses of a run (runs.csv `status`) and of a whole results folder (manifest `status`).
STATUS_OK, STATUS_FAILED, STATUS_UNAVAILABLE = "ok", "failed", "unavailable"
FOLDER_RUNNING, FOLDER_INTERRUPTED, FOLDER_COMPLETE = "running", "interrupted", "complete"


@dataclass
class Manifest:
    """manifest.json: what was run, where, in which order, and how far it got."""

    scenario: str
    scenario_hash: str
    seed: int
    repeat: int
    plan: list[dict[str, Any]]  # run_id, cell, target, repetition, in run order
    target_order: list[list[str]]  # target order of each repetition
    host: dict[str, Any]
    fio_version: str | None
    tool_version: str
    workdir: str
    started_at: str
    ended_at: str | None = None
    status: str = FOLDER_RUNNING
    runs: dict[str, str] = field(default_factory=dict)  # run_id -> status
    skipped_targets: dict[str, str] = field(default_factory=dict)  # target -> why
    fd_pressure: str | None = None  # status, when the scenario has it
    notes: list[str] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def cells(self) -> dict[str, dict[str, str]]:
        """Per cell and target: ok, failed, unavailable, partial or pending."""
        statuses: dict[str, dict[str, list[str]]] = {}
        for entry in self.plan:
            status = self.runs.get(entry["run_id"], "pending")
            statuses.setdefault(entry["cell"], {}).setdefault(entry["target"], []).append(status)
        return {
            cell: {target: seen[0] if len(set(seen)) == 1 else _mixed(seen) for target, seen in targets.items()}
            for cell, targets in statuses.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with the derived per-cell status."""
        return dict(asdict(self), cells=self.cells())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse a manifest written by `to_dict`."""
        if not isinstance(data, Mapping):
            raise ResultsError(f"{MANIFEST} is not a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as exc:
            raise ResultsError(f"{MANIFEST} is incomplete: {exc}") from None


def _mixed(statuses: list[str]) -> str:
    return STATUS_FAILED if STATUS_FAILED in statuses else "partial"


class ResultsError(InputError):
    """A results folder that cannot be written or read as asked."""


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader sees the old or the new file, never a torn one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cell(value: Any) -> str:
    """How one value is spelled in a CSV cell: empty for None, lowercase booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ResultsWriter:
    """Writes one results folder; never replaces a folder it did not create unless forced."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fio_dir = folder / FIO_DIR

    @classmethod
    def create(cls, folder: Path, *, force: bool = False) -> ResultsWriter:
        """A new, empty results folder; an existing one is replaced only with `force`."""
        folder = folder.absolute()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            if not force:
                raise ResultsError(
                    f"{folder} already exists; use --resume to complete it, --force to replace it, "
                    "or --out to write somewhere else"
                )
            if not (folder / MANIFEST).is_file():
                # --force replaces results, not an arbitrary directory someone pointed --out at.
                raise ResultsError(
                    f"{folder} exists and is not a results folder (no {MANIFEST}); refusing to delete it"
                )
            shutil.rmtree(folder)
        (folder / FIO_DIR).mkdir(parents=True, exist_ok=True)
        writer = cls(folder)
        writer._append(RUNS, RUN_COLUMNS, [])  # the header alone: readers see the columns before any run ends
        return writer

    @classmethod
    def reopen(cls, folder: Path) -> ResultsWriter:
        """An existing results folder, to append the runs a resumed run completes."""
        folder = folder.absolute()
        load_manifest(folder)
        (folder / FIO_DIR).mkdir(exist_ok=True)
        return cls(folder)

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace manifest.json atomically."""
        atomic_write_text(self.folder / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")

    def write_scenario(self, text: str) -> None:
        """Keep the scenario text exactly as run."""
        atomic_write_text(self.folder / SCENARIO, text)

    def fio_output_path(self, run_id: str) -> Path:
        """Where fio writes the raw JSON of a run (kept verbatim)."""
        return self.fio_dir / f"{run_id}.json"

    def append_run(self, row: Mapping[str, Any]) -> None:
        """Append one runs.csv row (RUN_COLUMNS) and make it durable."""
        self._append(RUNS, RUN_COLUMNS, [row])

    def append_samples(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """Append monitor samples (bench.monitor.SAMPLE_COLUMNS) of one run."""
        self._append(SAMPLES, columns, rows)

    def append_fd_pressure(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Append one or more fd_pressure.csv rows (FD_PRESSURE_COLUMNS)."""
        self._append(FD_PRESSURE, FD_PRESSURE_COLUMNS, [rows] if isinstance(rows, Mapping) else rows)

    def set_aside(self, name: str) -> Path | None:
        """Rename a partly written file (an unfinished attempt) to NAME.incomplete; its new path."""
        path = self.folder / name
        if not path.exists():
            return None
        aside = path.with_name(name + ".incomplete")
        os.replace(path, aside)
        return aside

    def drop_runs(self, run_ids: Iterable[str]) -> list[dict[str, str]]:
        """Remove the rows of runs about to be redone (resume); return the removed rows."""
        wanted = set(run_ids)
        rows = load_runs(self.folder)
        removed = [row for row in rows if row["run_id"] in wanted]
        if removed:
            kept = [row for row in rows if row["run_id"] not in wanted]
            atomic_write_text(self.folder / RUNS, _csv_text(RUN_COLUMNS, kept, header=True))
        return removed

    def _append(self, name: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
        path = self.folder / name
        rows = list(rows)
        unknown = {key for row in rows for key in row} - set(columns)
        if unknown:
            raise ValueError(f"{name}: columns {sorted(unknown)} are not in the column contract")
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            header = _read_header(path)
            if header != list(columns):
                raise ResultsError(
                    f"{path} has different columns than this version writes; finish it with the "
                    "version that started it, or start a new results folder"
                )
        with path.open("a", newline="") as handle:
            handle.write(_csv_text(columns, rows, header=new))
            handle.flush()
            os.fsync(handle.fileno())


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _read_header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle), [])


def load_manifest(folder: Path) -> Manifest:
    """manifest.json of a results folder."""
    path = Path(folder) / MANIFEST
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ResultsError(f"{folder} is not a results folder: {MANIFEST} is missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read the manifest: {exc}") from None


def load_runs(folder: Path) -> list[dict[str, str]]:
    """runs.csv rows as strings (empty list when no run finished yet)."""
    path = Path(folder) / RUNS
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def completed_run_ids(folder: Path) -> set[str]:
    """Run ids with status ok: what a resumed run must not repeat."""
    return {row["run_id"] for row in load_runs(folder) if row["status"] == STATUS_OK}
