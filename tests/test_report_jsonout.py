"""bench.report.jsonout: the JSON report of the fixture folders, valid against the shipped schema."""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from fd_pressure_folder import fd_pressure_folder
from fio_log_folder import with_logs
from sweep_folder import sweep_folder
from test_analysis import _families_folder
from test_report import BASIC, BASIC_B, FIXTURES

from bench import report
from bench.report import jsonout


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(jsonout.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> dict:
    return json.loads(report.write_report(BASIC, tmp_path_factory.mktemp("json") / "basic.json", "json").read_text())


@pytest.mark.parametrize("path", list(jsonout.SCHEMAS), ids=lambda path: path.name)
def test_the_shipped_schemas_are_the_generated_ones(path: Path) -> None:
    assert path.read_text() == jsonout.schema_text(path), "run `python -m bench.report.jsonout`"


def with_device_counts(path: Path) -> Path:
    """The basic folder with what the block device read and wrote during each run."""
    shutil.copytree(BASIC, path)
    runs = pd.read_csv(path / "runs.csv")
    runs["dev_read_bytes"], runs["dev_write_bytes"] = runs["read_io_bytes"], runs["write_io_bytes"]
    runs.to_csv(path / "runs.csv", index=False)
    return path


# Between them these folders fill every table of the document, so each table's schema is checked.
FOLDERS = {
    "basic": lambda tmp: BASIC,
    "basic-b": lambda tmp: BASIC_B,
    "v1-format": lambda tmp: FIXTURES / "v1-format",
    "families": lambda tmp: _families_folder(tmp / "families"),
    "sweeps": lambda tmp: sweep_folder(tmp / "sweeps"),
    "fio-logs": lambda tmp: with_logs(BASIC, tmp / "logs"),
    "device": lambda tmp: with_device_counts(tmp / "device"),
    "fd-scale": lambda tmp: fd_pressure_folder(tmp / "fd-scale"),
}


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict[str, str]:
    """Each of FOLDERS' JSON report, as text."""
    tmp = tmp_path_factory.mktemp("folders")
    return {name: report.render(report.analyse_folder(make(tmp)), "json") for name, make in FOLDERS.items()}


@pytest.mark.parametrize("name", FOLDERS)
def test_reports_are_valid_against_the_schema(name: str, documents: dict[str, str], validator) -> None:
    text = documents[name]
    problems = sorted(validator.iter_errors(json.loads(text)), key=lambda error: list(error.absolute_path))
    assert not problems, f"{list(problems[0].absolute_path)}: {problems[0].message}"
    assert "NaN" not in text and "Infinity" not in text


def test_every_table_is_checked_on_some_folder(documents: dict[str, str]) -> None:
    filled = {table for text in documents.values() for table, rows in json.loads(text).items()
              if table in jsonout.TABLES and rows}
    assert filled == set(jsonout.TABLES)


def test_the_schema_catches_mistakes(basic: dict, validator) -> None:
    def broken(change) -> dict:
        document = copy.deepcopy(basic)
        change(document)
        return document

    mistakes = [
        lambda d: d.pop("summary"),                              # a table missing
        lambda d: d["summary"][0].pop("vs_plain_ratio"),         # a column missing
        lambda d: d["summary"][0].update(extra=1),               # a column nobody declared
        lambda d: d["summary"][0].update(median="2000"),         # a number as text
        lambda d: d["summary"][0].update(vs_plain_verdict="better"),  # not a verdict
        lambda d: d["summary"][0].update(n=-1),
        lambda d: d["latency"][0].update(cell=None),
        lambda d: d["method"].pop("threshold"),
        lambda d: d.update(schema_version=jsonout.SCHEMA_VERSION + 1),
        lambda d: d["findings"].append({"kind": "note"}),
    ]
    assert validator.is_valid(basic)
    for number, mistake in enumerate(mistakes):
        assert not validator.is_valid(broken(mistake)), f"mistake {number} passed the schema"


def test_every_frame_of_the_analysis_is_a_table(basic: dict) -> None:
    analysis = report.analyse_folder(BASIC)
    frames = [field.name for field in dataclasses.fields(analysis) if isinstance(getattr(analysis, field.name), pd.DataFrame)]
    carried = [table.frame(analysis) for table in jsonout.TABLES.values()]
    assert [name for name in frames if not any(getattr(analysis, name) is frame for frame in carried)] == []


def test_the_document_carries_the_whole_analysis(basic: dict) -> None:
    assert (basic["format"], basic["schema_version"], basic["name"]) == ("fusebench-report", jsonout.SCHEMA_VERSION,
                                                                         "basic")
    assert (basic["baseline"], basic["plain"]) == ("native", "fuse")
    assert (basic["method"]["threshold"], basic["method"]["confidence"]) == (0.05, 0.95)
    assert basic["cells"] == ["seqread-1m", "randread-4k", "seqwrite-1m", "randwrite-4k"]
    assert [t["name"] for t in basic["targets"]] == ["native", "fuse", "passthrough"]
    assert basic["environment"]["kernel"].startswith("6.18.0-fixture") and basic["manifest"]["seed"] == 7
    passthrough = next(r for r in basic["summary"] if (r["cell"], r["target"]) == ("seqread-1m", "passthrough"))
    assert passthrough["vs_plain_ratio"] == pytest.approx(4.0, rel=1e-3)
    assert (passthrough["vs_plain_verdict"], passthrough["vs_plain_significant"]) == ("faster", True)
    assert (passthrough["n"], passthrough["ci_level"]) == (3, 0.75)
    read = next(r for r in basic["latency"] if (r["cell"], r["target"], r["direction"], r["percentile"])
                == ("randread-4k", "native", "read", 50.0))
    assert read["ios"] == 6144
    assert {"missing", "failed", "not_engaged", "noisy"} <= {f["kind"] for f in basic["findings"]}
    for table in ("secondary", "cpu", "requests", "passthrough_verdicts", "fd_steps", "fd_limits", "runs"):
        assert basic[table], f"{table} is empty"
    assert sum(run["outlier"] for run in basic["runs"]) == sum(r["outliers"] for r in basic["summary"])


def test_figures_are_the_csv_reports_at_full_precision(basic: dict, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(report.write_report(BASIC, tmp_path / "r.csv", "csv").read_text())))
    assert len(rows) == len(basic["summary"])
    for row, record in zip(rows, basic["summary"]):
        for column, text in row.items():
            if column in record and isinstance(record[column], float):
                assert record[column] == pytest.approx(float(text), rel=1e-5), (row["cell"], column)
            elif column in record and record[column] is None:
                assert text == "", (row["cell"], column)


def test_nan_is_null_and_numbers_stay_numbers(basic: dict) -> None:
    single = next(r for r in basic["summary"] if (r["cell"], r["target"]) == ("randwrite-4k", "fuse"))
    assert single["n"] == 1 and single["stdev"] is None and single["ci_low"] is None
    assert isinstance(single["median"], float) and isinstance(single["failed"], int)


def test_records_turns_a_frame_into_json_ready_rows() -> None:
    frame = pd.DataFrame({"x": [1.5, np.nan], "n": pd.array([2, None], dtype="Int64"), "name": ["a", None],
                          "flag": [np.True_, False], "inf": [np.inf, -np.inf]})
    rows = jsonout.records(frame)
    assert rows == [{"x": 1.5, "n": 2, "name": "a", "flag": True, "inf": None},
                    {"x": None, "n": None, "name": None, "flag": False, "inf": None}]
    assert type(rows[0]["n"]) is int and type(rows[0]["flag"]) is bool
    json.dumps(rows, allow_nan=False)


def test_a_comparison_of_three_folders_is_valid_and_complete(tmp_path: Path) -> None:
    """basic-b lacks a cell of basic's and has one of its own; basic-c ran on another kernel."""
    schema = json.loads(jsonout.COMPARE_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    text = report.write_comparison(BASIC, [BASIC_B, FIXTURES / "basic-c"], tmp_path / "c.json", "json").read_text()
    document = json.loads(text)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert (document["format"], document["base"]) == ("fusebench-compare", "basic")
    assert [folder["name"] for folder in document["folders"]] == ["basic", "basic-b", "basic-c"]
    change = next(row for row in document["changes"] if (row["folder"], row["cell"], row["target"], row["metric"])
                  == ("basic-b", "seqread-1m", "passthrough", "primary"))
    assert change["ratio"] == pytest.approx(1.1) and change["verdict"] == "faster"
    assert {row["metric"] for row in document["changes"]} >= {"primary", "clat_p99_us", "cpu_s_per_gib",
                                                              "requests_per_gib"}
    only = {(row["cell"], row["target"]): row for row in document["only"]}
    assert only[("seqwrite-1m", "fuse")]["missing_in"] == ["basic-c"]
    assert any("6.19.0-fixture" in line for line in document["environment_differences"]["basic-c"])
    assert {row["folder"] for row in document["summary"]} == {"basic-b", "basic-c"}
    broken = copy.deepcopy(document)
    broken["changes"][0]["verdict"] = "better"  # the words of the text report are not verdicts
    assert not jsonschema.Draft202012Validator(schema).is_valid(broken)
