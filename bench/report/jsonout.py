"""JSON report: the whole analysis of a results folder, or a comparison of folders, as one
versioned document, for dashboards and CI jobs. Their JSON Schemas ship beside this module
(schema/report.schema.json, schema/compare.schema.json), generated from the same tables that
build the documents: `python -m bench.report.jsonout` rewrites them."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bench import __version__
from bench.analysis import (
    SECONDARY_METRICS,
    SECTIONS,
    Analysis,
    Finding,
    Settings,
    environment,
)
from bench.analysis.compare import (
    CHANGE_COLUMNS,
    COMPARED_METRICS,
    NOTE_COLUMNS,
    ONLY_COLUMNS,
    Comparison,
)
from bench.analysis.compare import SUMMARY_COLUMNS as COMPARE_SUMMARY_COLUMNS
from bench.analysis.fdmemory import (
    FD_FIGURE_COLUMNS,
    FD_MEMORY_COLUMNS,
    FD_MEMORY_QUANTITIES,
    FD_MEMORY_UNITS,
    FD_RELEASE_COLUMNS,
)
from bench.analysis.load import METRIC_UNITS, MIXED_TRANSPORT
from bench.analysis.metrics import (
    CPU_COLUMNS,
    DISK_COLUMNS,
    FD_LIMIT_COLUMNS,
    LATENCY_FRAME_COLUMNS,
    PASSTHROUGH_VERDICTS,
    PER_OP_COLUMNS,
    REQUEST_COLUMNS,
    SUMMARY_COLUMNS,
    WORK_COLUMNS,
)
from bench.analysis.statistics import VERDICTS, describe
from bench.analysis.sweeps import DOT_COLUMNS, POINT_COLUMNS
from bench.analysis.timeline import COLUMNS as TIMELINE_COLUMNS
from bench.records import RUN_SECTIONS, FdPressureRecord, Manifest
from bench.results import dtypes
from bench.transport import TRANSPORTS

FORMAT = "fusebench-report"
COMPARE_FORMAT = "fusebench-compare"
# Changes whenever a document's shape does (a key added, removed or changing meaning).
SCHEMA_VERSION = 3  # 3: fd_memory, fd_figures, fd_releases
SCHEMA_PATH = Path(__file__).with_name("schema") / "report.schema.json"
COMPARE_SCHEMA_PATH = SCHEMA_PATH.with_name("compare.schema.json")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def plain(value: Any) -> Any:
    """A value as JSON has it: None for NaN, NA, NaT and infinities; Python numbers for numpy
    ones; lists and dicts element by element; anything else as text."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(item) for item in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (column -> value, NaN -> None)."""
    return [{column: plain(value) for column, value in zip(frame.columns, row)}
            for row in frame.itertuples(index=False, name=None)]


class Table(NamedTuple):
    """One table of the document: where its frame comes from, its columns, and the record types
    that type some of them (the others are typed by _COLUMN_TYPES, else numbers)."""

    frame: Callable[[Any], pd.DataFrame]    # from an Analysis (report) or a Comparison (compare)
    columns: list[str]
    typed: dict[str, str] = {}        # column -> pandas dtype, from bench.results.dtypes
    overrides: dict[str, dict] = {}   # column -> its schema, where this table differs


# What describe() gives for every set of values: n, median, mean, ..., its interval.
_STATISTICS = list(describe(np.array([]), Settings()))

TABLES = {
    "summary": Table(lambda a: a.summary, SUMMARY_COLUMNS),
    "secondary": Table(lambda a: a.secondary, ["cell", "target", "metric", *_STATISTICS],
                       overrides={"metric": {"enum": list(SECONDARY_METRICS)}}),
    "latency": Table(lambda a: a.latency, LATENCY_FRAME_COLUMNS),
    "cpu": Table(lambda a: a.cpu, CPU_COLUMNS),
    "requests": Table(lambda a: a.requests, ["cell", "target", "target_type", *REQUEST_COLUMNS]),
    "requests_per_op": Table(lambda a: a.per_op, PER_OP_COLUMNS),
    "work": Table(lambda a: a.work, WORK_COLUMNS),
    "disk": Table(lambda a: a.disk, DISK_COLUMNS),
    "passthrough_verdicts": Table(lambda a: a.verdicts, ["section", "cells", *PASSTHROUGH_VERDICTS]),
    "sweeps": Table(lambda a: a.sweeps, POINT_COLUMNS),
    "sweep_runs": Table(lambda a: a.sweep_runs, DOT_COLUMNS),
    "timeline": Table(lambda a: a.timeline, TIMELINE_COLUMNS),
    "fd_steps": Table(lambda a: a.fd_steps, ["config", *FdPressureRecord.columns()], dtypes(FdPressureRecord)),
    "fd_limits": Table(lambda a: a.fd_limits, FD_LIMIT_COLUMNS),
    "fd_memory": Table(lambda a: a.fd_memory, FD_MEMORY_COLUMNS, overrides={
        "quantity": {"enum": list(FD_MEMORY_QUANTITIES)}, "unit": {"enum": list(FD_MEMORY_UNITS)}}),
    "fd_figures": Table(lambda a: a.fd_figures, FD_FIGURE_COLUMNS),
    "fd_releases": Table(lambda a: a.fd_releases, FD_RELEASE_COLUMNS, {
        column: dtype for column, dtype in dtypes(FdPressureRecord).items() if column in FD_RELEASE_COLUMNS}),
    "runs": Table(lambda a: a.results.runs, ["run_id", "cell", "target", "repetition", "status", "metric", "value",
                                             "outlier"], dtypes(*RUN_SECTIONS)),
}


def table_records(source: Any, table: Table) -> list[dict[str, Any]]:
    """The rows of one table of an Analysis or a Comparison (none when its frame is empty)."""
    frame = table.frame(source)
    return records(frame.loc[:, table.columns]) if not frame.empty else []


def report_document(analysis: Analysis) -> dict[str, Any]:
    """The whole analysis of one results folder as a JSON-ready dict (schema: SCHEMA_PATH)."""
    results, settings = analysis.results, analysis.settings
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "fusebench": __version__,
        "name": results.path.resolve().name,
        "results_folder": str(results.path),
        "baseline": analysis.baseline,
        "plain": analysis.plain,
        "method": {**dataclasses.asdict(settings), "compare_confidence": settings.compare_confidence},
        "cells": list(results.cells),
        "targets": [{"name": target, "type": results.target_types.get(target, ""),
                     "description": results.targets_described.get(target, ""),
                     "transport": results.transports.get(target)} for target in results.targets],
        "environment": environment(results),
        "manifest": results.manifest.model_dump(mode="json") if results.manifest else None,
        **{key: table_records(analysis, table) for key, table in TABLES.items()},
        "findings": [dataclasses.asdict(finding) for finding in analysis.findings],
    }


def dumps(document: dict[str, Any]) -> str:
    """A document as JSON text; a NaN that slipped through is an error, never invalid JSON."""
    return json.dumps(plain(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_report(analysis: Analysis) -> str:
    """The JSON report."""
    return dumps(report_document(analysis))


# The schema: every column is a number (or null) unless it is named here or typed by its record.
_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": ["number", "null"]}
_COLUMN_TYPES = {
    **dict.fromkeys(("cell", "workload", "target", "target_type", "direction", "opcode", "config", "errno", "run_id",
                     "panel", "key", "scale", "x_label"), _TEXT),
    **dict.fromkeys(("failed", "unavailable", "missing", "outliers", "excluded", "n", "ios", "runs", "cells",
                     *PASSTHROUGH_VERDICTS), _COUNT),
    "section": {"enum": list(SECTIONS)},
    "metric": {"enum": list(METRIC_UNITS)},
    "unit": {"enum": list(METRIC_UNITS.values())},
    "outlier": {"type": "boolean"},
}
_SUFFIX_TYPES = {"_verdict": {"enum": [*VERDICTS, ""]}, "_significant": {"type": "boolean"}}
_DTYPE_TYPES = {"string": "string", "boolean": "boolean", "Int64": "integer", "float64": "number"}


def _column_schema(column: str, table: Table) -> dict[str, Any]:
    if column in table.overrides:
        return table.overrides[column]
    if column in table.typed:
        return {"type": [_DTYPE_TYPES[table.typed[column]], "null"]}
    suffixed = next((kind for suffix, kind in _SUFFIX_TYPES.items() if column.endswith(suffix)), None)
    return _COLUMN_TYPES.get(column) or suffixed or _NUMBER


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these keys."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _method_schema() -> dict[str, Any]:
    kinds = {"int": {"type": "integer"}, "float": {"type": "number"}}
    return _object({field.name: kinds[field.type] for field in dataclasses.fields(Settings)}
                   | {"compare_confidence": {"type": "number"}})


def _findings_schema() -> dict[str, Any]:
    return _array(_object({field.name: _TEXT for field in dataclasses.fields(Finding)}))


def _document_schema(form: str, title: str, description: str, properties: dict[str, Any], tables: dict[str, Table],
                     definitions: dict[str, Any]) -> dict[str, Any]:
    """A document's schema: its format and version, `properties`, then an array per table."""
    definitions = definitions | {key: _object({column: _column_schema(column, table) for column in table.columns})
                                 for key, table in tables.items()}
    document = _object({"format": {"const": form}, "schema_version": {"const": SCHEMA_VERSION}, "fusebench": _TEXT,
                        **properties, **{key: _array({"$ref": f"#/$defs/{key}"}) for key in tables}})
    return {"$schema": SCHEMA_DIALECT, "title": title,
            "description": f"{description} ({form} version {SCHEMA_VERSION})", **document, "$defs": definitions}


def schema() -> dict[str, Any]:
    """The JSON Schema of report_document(), generated from TABLES and the models it dumps."""
    manifest = Manifest.model_json_schema(mode="serialization")
    definitions = manifest.pop("$defs", {})
    return _document_schema(FORMAT, "fusebench report", "`fusebench report --format json`: the whole analysis of one "
                            "results folder (README: The report command)", {
                                "name": _TEXT,
                                "results_folder": _TEXT,
                                "baseline": {"type": ["string", "null"]},
                                "plain": {"type": ["string", "null"]},
                                "method": _method_schema(),
                                "cells": _array(_TEXT),
                                "targets": _array(_object({"name": _TEXT, "type": _TEXT, "description": _TEXT, "transport": {
                                    "enum": [*TRANSPORTS, MIXED_TRANSPORT, None]}})),
                                "environment": {"type": "object", "additionalProperties": _TEXT},
                                "manifest": {"anyOf": [manifest, {"type": "null"}]},
                                "findings": _findings_schema(),
                            }, TABLES, definitions)


COMPARE_TABLES = {
    "changes": Table(lambda c: c.changes, CHANGE_COLUMNS, overrides={
        "folder": _TEXT, "metric": {"enum": list(COMPARED_METRICS)}, "unit": _TEXT, "n_base": _COUNT,
        "verdict": _SUFFIX_TYPES["_verdict"], "significant": {"type": "boolean"}}),
    "summary": Table(lambda c: c.summary, COMPARE_SUMMARY_COLUMNS, overrides={
        "folder": _TEXT, "metric": {"enum": list(COMPARED_METRICS)}, "pairs": _COUNT,
        **dict.fromkeys(VERDICTS, _COUNT)}),
    "only": Table(lambda c: c.only, ONLY_COLUMNS, overrides=dict.fromkeys(("present_in", "missing_in"), _array(_TEXT))),
    "notes": Table(lambda c: c.notes, NOTE_COLUMNS, overrides={"folder": _TEXT, "compared": {"type": "boolean"},
                                                               "note": _TEXT}),
}


def compare_document(comparison: Comparison) -> dict[str, Any]:
    """A comparison of folders as a JSON-ready dict (schema: COMPARE_SCHEMA_PATH)."""
    analyses = [comparison.base, *comparison.others]
    return {
        "format": COMPARE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "fusebench": __version__,
        "base": comparison.names[0],
        "method": {**dataclasses.asdict(comparison.settings), "compare_confidence": comparison.settings.compare_confidence},
        "metrics": {key: metric._asdict() for key, metric in COMPARED_METRICS.items()},
        "folders": [{"name": name, "results_folder": str(analysis.results.path), "baseline": analysis.baseline,
                     "environment": environment(analysis.results),
                     "findings": [dataclasses.asdict(finding) for finding in analysis.findings]}
                    for name, analysis in zip(comparison.names, analyses)],
        "environment_differences": comparison.differences,
        **{key: table_records(comparison, table) for key, table in COMPARE_TABLES.items()},
    }


def render_comparison(comparison: Comparison) -> str:
    """The JSON comparison."""
    return dumps(compare_document(comparison))


def compare_schema() -> dict[str, Any]:
    """The JSON Schema of compare_document(), generated from COMPARE_TABLES."""
    return _document_schema(COMPARE_FORMAT, "fusebench compare", "`fusebench compare --format json`: other results "
                            "folders against a base one (README: compare)", {
                                "base": _TEXT,
                                "method": _method_schema(),
                                "metrics": _object({key: _object({
                                    "label": _TEXT, "unit": {"type": ["string", "null"]},
                                    "lower_is_better": {"type": "boolean"}}) for key in COMPARED_METRICS}),
                                "folders": _array(_object({
                                    "name": _TEXT, "results_folder": _TEXT, "baseline": {"type": ["string", "null"]},
                                    "environment": {"type": "object", "additionalProperties": _TEXT},
                                    "findings": _findings_schema()})),
                                "environment_differences": {"type": "object", "additionalProperties": _array(_TEXT)},
                            }, COMPARE_TABLES, {})


SCHEMAS = {SCHEMA_PATH: schema, COMPARE_SCHEMA_PATH: compare_schema}


def schema_text(path: Path = SCHEMA_PATH) -> str:
    """A schema as shipped at `path` (one of SCHEMAS)."""
    return json.dumps(SCHEMAS[path](), indent=2) + "\n"


if __name__ == "__main__":
    for path in SCHEMAS:
        path.parent.mkdir(exist_ok=True)
        path.write_text(schema_text(path))
        print(f"wrote {path}", file=sys.stderr)
