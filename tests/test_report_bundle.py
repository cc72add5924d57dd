"""bench.report.bundle: a bundle holds the folder and every report, and reports again to the same figures."""

from __future__ import annotations

import json
import shlex
import tarfile
from pathlib import Path

import pytest
from test_report import BASIC

from bench import report
from bench.cli import main
from bench.errors import InputError
from bench.report import FORMATS
from bench.report.bundle import README


def files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def figures(json_report: Path) -> dict:
    """The JSON report without what names the folder it was made from."""
    document = json.loads(json_report.read_text())
    return {key: value for key, value in document.items() if key not in ("name", "results_folder")}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    """The bundle of tests/fixtures/results/basic as an archive, unpacked."""
    where = tmp_path_factory.mktemp("bundle")
    archive = report.write_bundle(BASIC, where / "basic.tar.gz")
    with tarfile.open(archive) as members:
        assert {member.name.split("/")[0] for member in members} == {"basic"}
        assert {(member.uid, member.uname) for member in members} == {(0, "")}
        members.extractall(where / "unpacked")
    return where / "unpacked" / "basic"


def test_the_bundle_holds_the_results_folder_every_report_and_a_readme(unpacked: Path) -> None:
    bundled = files(unpacked)
    assert {name: data for name, data in bundled.items() if name in files(BASIC)} == files(BASIC)
    assert "fio/seqread-1m--native--r1.json" in bundled and "manifest.json" in bundled and "runs.csv" in bundled
    assert {f"report.{chosen.extension}" for chosen in FORMATS.values()} | {README} == set(bundled) - set(files(BASIC))
    assert (unpacked / "report.txt").read_text() == report.render(report.analyse_folder(BASIC), "text")


def test_the_readme_commands_derive_the_same_reports_from_the_bundle(unpacked: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = {name: (unpacked / name).read_text() for name in files(unpacked) if name.startswith("report.")}
    commands = [shlex.split(line) for line in (unpacked / README).read_text().splitlines()
                if line.startswith("  fusebench report ")]
    assert len(commands) == len(FORMATS)
    monkeypatch.chdir(unpacked.parent)
    for command in commands:
        assert main(command[1:]) == 0
    again = {name: (unpacked / name).read_text() for name in shipped}
    assert again["report.txt"] == shipped["report.txt"] and again["report.csv"] == shipped["report.csv"]
    assert again["report.md"] == shipped["report.md"]
    (tmp_path / "shipped.json").write_text(shipped["report.json"])
    assert figures(unpacked / "report.json") == figures(tmp_path / "shipped.json")


def test_a_bundle_as_a_folder_reports_like_its_results_folder(tmp_path: Path) -> None:
    out = report.write_bundle(BASIC, tmp_path / "publish")
    assert out == tmp_path / "publish" and (out / README).is_file()
    assert figures(report.write_report(out, tmp_path / "again.json", "json")) == figures(out / "report.json")
    assert figures(out / "report.json") == figures(report.write_report(BASIC, tmp_path / "basic.json", "json"))
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no work folder left


@pytest.mark.parametrize("where, message", [
    (lambda tmp: tmp / "full", "exists and is not an empty folder"),
    (lambda tmp: tmp / "folder.tar.gz", "is a folder: name an archive"),
    (lambda tmp: tmp / "copy" / "inside.tar.gz", "inside the results folder"),
    (lambda tmp: tmp / "kept.tar.gz", "exists; a bundle never replaces files"),
])
def test_a_bundle_never_replaces_files_or_goes_inside_its_folder(tmp_path: Path, where, message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("mine")
    (tmp_path / "folder.tar.gz").mkdir()
    (tmp_path / "kept.tar.gz").write_text("an archive published earlier")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "runs.csv").write_bytes((BASIC / "runs.csv").read_bytes())
    results = tmp_path / "copy" if "inside" in message else BASIC
    before = files(tmp_path)
    with pytest.raises(InputError, match=message):
        report.write_bundle(results, where(tmp_path))
    assert files(tmp_path) == before


def test_a_folder_that_is_not_a_results_folder_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a results folder"):
        report.write_bundle(tmp_path / "empty", tmp_path / "out.tar.gz")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty"]
