"""The results folder: written while a run goes on (ResultsWriter), read back by one reader
(ResultsFolder) that `--resume`, the analysis and the reports all use.

CSV rows are appended, flushed and fsynced as each run finishes so a killed run loses
nothing already measured; manifest.json and scenario.yaml are replaced atomically. Columns
and their types come from bench.records.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from bench.errors import InputError, first_problem
from bench.fio_logs import FioLog, read_log
from bench.fio_output import FioResult, read_fio_output
from bench.fusefs.files import atomic_write
from bench.opens import OpensResult
from bench.opens import read_result as read_opens_result
from bench.records import (
    RUN_COLUMNS,
    RUN_SECTIONS,
    STATUS_OK,
    CommandRecord,
    FdPressureRecord,
    Manifest,
    Record,
    RequestRecord,
    RunRecord,
    SampleRecord,
    SnapshotRecord,
)
from bench.scenario_file import read_regular_file, read_scenario_text
from bench.vocabulary import FIO, OPENS

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20  # a plan of MAX_RUNS runs takes about 15 MiB
_DAMAGED = "it is damaged; measure again into another --out, or over this folder with --force"
SCENARIO = "scenario.yaml"
RUNS = "runs.csv"
SAMPLES = "samples.csv"
REQUESTS = "requests.csv"
COMMANDS = "commands.csv"
FD_PRESSURE = "fd_pressure.csv"
FD_SNAPSHOTS = "fd_pressure_snapshots.csv"
FIO_DIR = "fio"
FIO_LOGS_DIR = "fio_logs"  # fio's bandwidth, IOPS and latency logs of each run (format 5)
OPENS_DIR = "opens"  # each open/close loop's output (its latency histograms), as JSON
FD_CLIENT_DIR = "fd_pressure"  # each step's client report (every open's latency), as JSON
# Files whose rows belong to one run each: a redone run's rows go from all of them.
PER_RUN_FILES = (RUNS, SAMPLES, REQUESTS, COMMANDS)


class ResultsError(InputError):
    """A results folder that cannot be written or read as asked."""


def _cell(value: Any) -> str:
    """How one value is spelled in a CSV cell: empty for None, lowercase booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        ResultsFolder(folder).manifest(required=True)
        (folder / FIO_DIR).mkdir(exist_ok=True)
        return cls(folder)

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace manifest.json atomically."""
        atomic_write(self.folder / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")

    def write_scenario(self, text: str) -> None:
        """Keep the scenario text exactly as run."""
        atomic_write(self.folder / SCENARIO, text)

    def fio_output_path(self, run_id: str) -> Path:
        """Where fio writes the raw JSON of a run (kept verbatim)."""
        return self.fio_dir / f"{run_id}.json"

    def output_path(self, run_id: str, family: str) -> Path | None:
        """Where a run's raw output is kept: fio's JSON, an open/close loop's result; None for a
        program (its measured time is the run's duration)."""
        if family == FIO:
            return self.fio_output_path(run_id)
        if family == OPENS:
            (self.folder / OPENS_DIR).mkdir(exist_ok=True)
            return opens_output_path(self.folder, run_id)
        return None

    def logs_prefix(self, run_id: str, family: str) -> Path | None:
        """The prefix fio's logs of a run are written to (bench.fio_logs names the files); None
        for the families fio does not run."""
        if family != FIO:
            return None
        (self.folder / FIO_LOGS_DIR).mkdir(exist_ok=True)
        return fio_logs_prefix(self.folder, run_id)

    def append_run(self, record: RunRecord, samples: Sequence[SampleRecord] = (),
                   requests: Sequence[RequestRecord] = (), command: CommandRecord | None = None) -> None:
        """Append one run: its samples, per-opcode requests and command line, then its runs.csv
        row, which marks the run done (a run killed before it is redone, its other rows dropped)."""
        self._append(SAMPLES, SampleRecord.columns(), [sample.row() for sample in samples])
        self._append(REQUESTS, RequestRecord.columns(), [request.row() for request in requests])
        self._append(COMMANDS, CommandRecord.columns(), [command.row()] if command else [])
        self._append(RUNS, RUN_COLUMNS, [record.row()])

    def append_fd_pressure(self, record: FdPressureRecord, snapshots: Sequence[SnapshotRecord] = (),
                           client: Mapping[str, Any] | None = None) -> None:
        """Append one fd-pressure step and what it was derived from: the readings, and the
        clients' report (kept verbatim, like fio's output)."""
        if client is not None:
            path = fd_client_path(self.folder, record.target, record.open_files, record.release)
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, json.dumps(client) + "\n")
        self._append(FD_SNAPSHOTS, SnapshotRecord.columns(), [snapshot.row() for snapshot in snapshots])
        self._append(FD_PRESSURE, FdPressureRecord.columns(), [record.row()])

    def set_aside(self, *names: str) -> list[Path]:
        """Rename partly written files (an unfinished attempt) to NAME.incomplete; their new paths."""
        moved = []
        for name in names:
            path = self.folder / name
            if path.exists():
                aside = path.with_name(name + ".incomplete")
                os.replace(path, aside)
                moved.append(aside)
        return moved

    def drop_runs(self, run_ids: Iterable[str]) -> int:
        """Remove every row of the runs about to be redone (resume), and any row cut short by a
        kill; how many runs.csv rows went."""
        wanted = set(run_ids)
        dropped = 0
        for name in PER_RUN_FILES:
            path = self.folder / name
            if not path.exists() or path.stat().st_size == 0:
                continue
            header, rows, damaged = read_rows(path)
            kept = [row for _, row in rows if row[header.index("run_id")] not in wanted]
            if len(kept) != len(rows) or damaged:
                atomic_write(path, _csv_text(header, [dict(zip(header, row)) for row in kept], header=True))
            if name == RUNS:
                dropped = len(rows) - len(kept) + len(damaged)
        return dropped

    def _append(self, name: str, columns: Sequence[str], rows: list[Mapping[str, Any]]) -> None:
        path = self.folder / name
        new = not path.exists() or path.stat().st_size == 0
        if not rows and not (new and name == RUNS):
            return
        if not new and (header := _read_header(path)) != list(columns):
            if header == list(columns[: len(header)]):
                _widen(path, columns)  # a folder written before columns were added at the end
            else:
                raise ResultsError(
                    f"{path} has different columns than this version writes; finish it with the "
                    "version that started it, or start a new results folder"
                )
        with path.open("a", newline="") as handle:
            handle.write(_csv_text(columns, rows, header=new))
            handle.flush()
            os.fsync(handle.fileno())


def _widen(path: Path, columns: Sequence[str]) -> None:
    """Rewrite a CSV file whose columns are a prefix of `columns` with all of them (the new ones
    empty), atomically; rows cut short stay out, as readers leave them out."""
    header, rows, _ = read_rows(path)
    atomic_write(path, _csv_text(columns, (dict(zip(header, fields)) for _, fields in rows), header=True))


def opens_output_path(folder: Path, run_id: str) -> Path:
    """Where an open/close loop's result is kept."""
    return folder / OPENS_DIR / f"{run_id}.json"


def fio_logs_prefix(folder: Path, run_id: str) -> Path:
    """The prefix of a run's fio logs: fio_logs/RUN_ID_bw.1.log and so on."""
    return folder / FIO_LOGS_DIR / run_id


def fd_client_path(folder: Path, target: str, open_files: int, release: str | None = None) -> Path:
    """Where the clients' report of an fd-pressure step is kept (format 6 and earlier: no release,
    which was always drop_caches)."""
    suffix = f"--{release}" if release and release != "drop_caches" else ""
    return folder / FD_CLIENT_DIR / f"{target}--n{open_files}{suffix}.json"


# ---------------------------------------------------------------- reading


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], list[int]]:
    """A CSV file's header, its (line, fields) rows, and the lines of rows with fewer or more
    fields than the header: rows cut short when the process writing them was killed."""
    with path.open(newline="", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows: list[tuple[int, list[str]]] = []
        damaged: list[int] = []
        for fields in reader:
            if len(fields) == len(header):
                rows.append((reader.line_num, fields))
            else:
                damaged.append(reader.line_num)
    return header, rows, damaged


def _read_text(path: Path) -> tuple[list[str], pd.DataFrame, list[int], list[int]]:
    """A CSV file as text: header, rows, the line of each row, and the lines of rows cut short.

    Rows are only ever appended whole, each ending in a newline, so a file that does not end
    in one ends in a row cut short by a kill; pandas' C reader takes the rest at once. Anything
    else odd (more rows or fewer than lines) goes through read_rows, which names every line."""
    raw = path.read_bytes()
    torn = not raw.endswith(b"\n")
    try:
        rows = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, on_bad_lines="skip",
                           encoding_errors="replace")
    except pd.errors.EmptyDataError:
        return [], pd.DataFrame(), [], []
    if len(rows) == raw.count(b"\n") - 1 + torn:
        damaged = [len(rows) + 1] if torn else []
        rows = rows.iloc[: len(rows) - torn].reset_index(drop=True)
        return list(rows.columns), rows, list(range(2, len(rows) + 2)), damaged
    header, kept, damaged = read_rows(path)
    frame = pd.DataFrame([fields for _, fields in kept], columns=header, dtype=object)
    return header, frame, [line for line, _ in kept], damaged


def _typed(values: pd.Series, dtype: str, where: Callable[[int], str]) -> pd.Series:
    """A column of CSV text as `dtype`; ResultsError naming the file and line of a value that is not one."""
    empty = values == ""
    if dtype == "string":
        return values.mask(empty).astype("string")
    if dtype == "boolean":
        typed = values.str.lower().map({"true": True, "false": False, "": None})
    else:
        typed = pd.to_numeric(values.mask(empty), errors="coerce")
    wrong = typed.isna() & ~empty
    if dtype == "Int64":
        wrong |= typed.notna() & (typed != typed.round())
    if wrong.any():
        first = wrong.idxmax()
        raise ResultsError(f"{where(first)}: {values.name} {values[first]!r} is not a {dtype.lower()} value; "
                           "the file was changed by hand or by another tool")
    return typed.astype(dtype)


def _dtype(annotation: Any) -> str:
    """The pandas dtype of a record field's annotation."""
    kinds = {arg for arg in typing.get_args(annotation) if arg is not type(None)} or {annotation}
    if kinds <= {bool}:
        return "boolean"
    if kinds <= {int}:
        return "Int64"
    if kinds <= {int, float}:
        return "float64"
    return "string"


def dtypes(*records: type[Record]) -> dict[str, str]:
    """column -> pandas dtype for the columns of `records`."""
    return {name: _dtype(field.annotation) for record in records for name, field in record.model_fields.items()}


class ResultsFolder:
    """A results folder as written by any version: the manifest, scenario, every CSV file as a
    typed DataFrame, and each run's fio result (parsed by the one parser)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.damaged: dict[str, list[int]] = {}  # file -> lines of rows cut short, left out
        if not self.path.is_dir():
            raise ResultsError(f"{self.path} is not a directory; give a results folder made by `fusebench run`")
        if not os.path.lexists(self.path / MANIFEST) and not (self.path / RUNS).is_file():
            raise ResultsError(f"{self.path} is not a results folder: it has neither {MANIFEST} nor {RUNS}")

    def manifest(self, *, required: bool = False) -> Manifest | None:
        """manifest.json (None when absent, unless `required`)."""
        path = self.path / MANIFEST
        if not os.path.lexists(path):
            if required:
                raise ResultsError(f"{self.path} is not a results folder: {MANIFEST} is missing")
            return None
        raw = read_regular_file(path, MAX_MANIFEST_BYTES, "manifest", ResultsError)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ResultsError(f"{path}: the manifest is larger than {MAX_MANIFEST_BYTES >> 20} MiB: {_DAMAGED}")
        try:
            data = json.loads(raw.decode())
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ResultsError(f"{path}: cannot read the manifest ({str(exc)[:200]}): {_DAMAGED}") from None
        if not isinstance(data, dict):
            raise ResultsError(f"{path}: the manifest is not a JSON object")
        try:
            return Manifest.model_validate(data)
        except ValidationError as exc:
            raise ResultsError(f"{path}: the manifest is incomplete or damaged: {first_problem(exc)}") from None

    def scenario_text(self) -> str | None:
        """The scenario as run, or None when the folder has none (ScenarioError when it is not a
        scenario file: not UTF-8, too big, not a regular file)."""
        path = self.path / SCENARIO
        return read_scenario_text(path) if path.exists() else None

    def _frame(self, name: str, *records: type[Record]) -> pd.DataFrame | None:
        """A results file as a frame typed by its records; rows cut short are left out (and
        noted in `damaged`), columns an older version did not write are empty."""
        path = self.path / name
        if not path.is_file() or path.stat().st_size == 0:
            return None
        header, rows, lines, damaged = _read_text(path)
        if damaged:
            self.damaged[name] = damaged
        columns = {}
        for column, dtype in dtypes(*records).items():
            values = rows[column] if column in rows else pd.Series([""] * len(rows), dtype=object)
            columns[column] = _typed(values.rename(column), dtype, lambda row: f"{path}:{lines[row]}")
        extra = {column: rows[column] for column in header if column not in columns}  # kept, as text
        return pd.DataFrame({**columns, **extra})

    def runs(self) -> pd.DataFrame:
        """runs.csv, one row per run, typed (empty, with every column, before the first run ends)."""
        frame = self._frame(RUNS, *RUN_SECTIONS)
        if frame is None:
            frame = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes(*RUN_SECTIONS).items()})
        return frame

    def completed_run_ids(self) -> set[str]:
        """Run ids with status ok: what a resumed run must not repeat."""
        runs = self.runs()
        return set(runs.loc[runs["status"] == STATUS_OK, "run_id"])

    def samples(self) -> pd.DataFrame | None:
        """samples.csv, or None when no run was sampled."""
        return self._frame(SAMPLES, SampleRecord)

    def commands(self) -> pd.DataFrame | None:
        """commands.csv (each run's exact command line), or None before format 4."""
        return self._frame(COMMANDS, CommandRecord)

    def requests(self) -> pd.DataFrame | None:
        """requests.csv (per run and opcode), or None (format 1 folders, or nothing counted)."""
        return self._frame(REQUESTS, RequestRecord)

    def fd_pressure(self) -> pd.DataFrame | None:
        """fd_pressure.csv, or None when the scenario had no fd pressure."""
        return self._frame(FD_PRESSURE, FdPressureRecord)

    def fd_snapshots(self) -> pd.DataFrame | None:
        """fd_pressure_snapshots.csv, or None (format 1 folders, or no fd pressure)."""
        return self._frame(FD_SNAPSHOTS, SnapshotRecord)

    def fd_client_report(self, target: str, open_files: int, release: str | None = None) -> dict[str, Any] | None:
        """The clients' report of an fd-pressure step (format 2), or None when not kept."""
        path = fd_client_path(self.path, target, open_files, release)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{path}: cannot read the client's report: {exc}") from None

    def fio_output_path(self, run_id: str) -> Path:
        """Where the raw fio output of a run is kept."""
        return self.path / FIO_DIR / f"{run_id}.json"

    def opens_result(self, run_id: str) -> OpensResult | None:
        """An open/close loop's result, or None when the run has none; ResultsError when unreadable."""
        path = opens_output_path(self.path, run_id)
        if not path.exists():
            return None
        try:
            return read_opens_result(path)
        except (OSError, ValueError, KeyError) as exc:
            raise ResultsError(f"{path}: cannot read the open/close loop's result: {exc}") from None

    def fio_log(self, run_id: str, kind: str) -> FioLog | None:
        """A run's fio log of `kind` (bench.fio_logs.KINDS), its jobs added up, or None when it
        has none (folders before format 5, `log_interval: 0`); lines cut short are left out and named."""
        return read_log(fio_logs_prefix(self.path, run_id), kind)

    def fio_result(self, run_id: str) -> FioResult | None:
        """A run's fio result, or None when its output was not kept; FioError when it is unreadable."""
        path = self.fio_output_path(run_id)
        return read_fio_output(path) if path.exists() else None
