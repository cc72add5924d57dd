"""bench.report writers on the fixture results folders: golden text, parsed HTML, Markdown, CSV."""

from __future__ import annotations

import csv
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench import report
from bench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "results"
BASIC = FIXTURES / "basic"
BASIC_B = FIXTURES / "basic-b"
EXPECTED = FIXTURES / "expected"


class Page(HTMLParser):
    """Collects what a self-contained page must not have, and what it must."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.links: list[str] = []      # every src / href / xlink:href value
        self.styles: list[str] = []     # inline style attributes and <style> bodies
        self.rows: list[list[tuple[str, str]]] = []  # (class, text) per <td> of each <tr>
        self._in_style = False
        self._td: list | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items() if k in ("src", "href", "xlink:href") and v]
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self._td = [attrs.get("class") or "", ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._td is not None:
            self.rows[-1].append((self._td[0], self._td[1].strip()))
            self._td = None
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        if self._td is not None:
            self._td[1] += data


def external_references(page: Page) -> list[str]:
    urls = [link for link in page.links if not link.startswith("#")]
    urls += [u for style in page.styles for u in re.findall(r"url\(\s*['\"]?([^)'\"]+)", style) if not u.startswith("#")]
    return urls


@pytest.fixture(scope="module")
def basic_html(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("html") / "basic.html"
    return report.write_report(BASIC, out, "html").read_text()


def test_text_report_matches_golden_file() -> None:
    assert report.render_text(BASIC) == (EXPECTED / "basic.txt").read_text()


def test_text_fits_80_columns() -> None:
    for text in (report.render_text(BASIC), report.render_text(BASIC_B)):
        assert max(len(line) for line in text.splitlines()) <= 80


def test_text_comparison_matches_golden_file(tmp_path: Path) -> None:
    out = report.write_comparison(BASIC, BASIC_B, tmp_path / "cmp.txt", "text")
    assert out.read_text() == (EXPECTED / "basic-vs-basic-b.txt").read_text()
    assert max(len(line) for line in out.read_text().splitlines()) <= 80


def test_default_output_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = report.write_report(BASIC, None, "text")
    assert out == Path("reports/basic.txt")
    assert out.read_text() == report.render_text(BASIC)
    assert report.write_comparison(BASIC, BASIC_B, None, "markdown") == Path("reports/basic-vs-basic-b.md")


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a results folder"):
        report.write_report(tmp_path, tmp_path / "x.html", "html")
    with pytest.raises(InputError, match="unknown report format 'pdf'"):
        report.write_report(BASIC, tmp_path / "x.pdf", "pdf")
    assert not (tmp_path / "x.html").exists()


def test_html_is_self_contained_with_charts(basic_html: str) -> None:
    page = Page(basic_html)
    assert external_references(page) == []
    assert not re.search(r"(src|href)\s*=\s*['\"]?https?://", basic_html)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    # throughput, latency, CPU, time series, fd pressure
    assert page.tags.get("svg") == 5
    assert "@media print" in basic_html
    assert len(basic_html) < 400_000


def test_html_headline_and_sections(basic_html: str) -> None:
    page = Page(basic_html)
    cells = [text for row in page.rows for _, text in row]
    assert "4.00x [3.84-4.17] +" in cells and "[1980, 2020] 75%" in cells
    assert "3 missing" in cells and "1 failed" in cells and "1 not engaged" in cells
    by_class = {kind: [text for row in page.rows for cls, text in row if cls == kind] for kind in ("better", "worse", "same")}
    # coloured only where decided: faster, slower, equivalent (randwrite fuse at n = 1 stays plain)
    assert by_class["better"] == ["4.00x [3.84-4.17] +", "1.73x [1.31-2.28] +", "150% +"]
    assert by_class["worse"] == ["25% -", "58% -", "0.67x [0.65-0.69] -", "10000", "10000"]  # and fd limits hit
    assert by_class["same"] == ["100% =", "100% =", "101% ="]
    assert "50% ?" in cells
    # summed-bin latency rows: 3 runs x 8 MiB / 4 KiB = 6,144 reads behind randread-4k native
    latency = next(row for row in page.rows if [text for _, text in row[:2]] == ["randread-4k / native", "read"])
    assert latency[-1][1] == "6,144"
    for needle in ("nothing measured explains it", "passthrough did not engage", "noisy, CoV 11.1%",
                   "6.18.0-fixture", "fio-3.33", "EMFILE", "hidden_files", "<details class=\"warnings\"",
                   "fusebench&#39;s built-in FUSE server (Python"):
        assert needle in basic_html


def test_html_comparison_colours_only_significant_changes(tmp_path: Path) -> None:
    page = Page(report.write_comparison(BASIC, BASIC_B, tmp_path / "cmp.html").read_text())
    assert external_references(page) == []
    coloured = {(row[0][1], row[1][1], cls) for row in page.rows for cls, _ in row if cls in ("better", "worse")}
    assert coloured == {("seqread-1m", "passthrough", "better"), ("seqread-1m", "fuse", "worse")}
    assert page.tags.get("svg") == 1


def test_markdown_report(tmp_path: Path) -> None:
    text = report.write_report(BASIC, tmp_path / "r.md", "markdown").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 12  # header, rule, one row per cell x target
    assert ("| block I/O | seqread-1m | MiB/s | passthrough | 3 | 2000 | [1980, 2020] 75% | 100% = | "
            "**4.00x [3.84-4.17] +** |  |") in table


def test_csv_report(tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(report.write_report(BASIC, tmp_path / "r.csv", "csv").read_text())))
    assert len(rows) == 12
    passthrough = next(r for r in rows if r["cell"] == "seqread-1m" and r["target"] == "passthrough")
    assert float(passthrough["vs_plain_ratio"]) == pytest.approx(4.0, rel=1e-3)
    assert (passthrough["vs_plain_verdict"], passthrough["ci_level"]) == ("faster", "0.75")
    assert float(passthrough["daemon_sys_s_per_gib"]) > 0


def test_csv_comparison_lists_one_sided_cells(tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(report.write_comparison(BASIC, BASIC_B, tmp_path / "c.csv", "csv").read_text())))
    assert {r["only_in"] for r in rows} == {"", "A", "B"}
    assert sum(r["only_in"] == "B" for r in rows) == 3


def test_partial_folder_reports_what_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "started"
    folder.mkdir()
    for name in ("manifest.json", "scenario.yaml"):
        shutil.copy(BASIC / name, folder / name)
    text = report.render_text(folder)
    assert "seqread-1m / native: no result for r1, r2, r3" in text
    html = report.write_report(folder, tmp_path / "r.html", "html").read_text()
    assert external_references(Page(html)) == []
    assert "results are partial" in html


def test_runs_csv_alone_is_enough(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copy(BASIC / "runs.csv", folder / "runs.csv")
    text = report.render_text(folder)
    assert "4.00x [3.84-4.17] +" in text
    assert "never run" not in text  # without a plan or scenario nothing is known to be missing
    assert text.splitlines()[1] == "kernel unknown; unknown CPU, memory unknown; fio version unknown; fusebench"


@pytest.mark.parametrize("fmt", ["html", "text", "markdown", "csv"])
def test_a_folder_of_the_previous_format_still_reports(tmp_path: Path, fmt: str) -> None:
    """tests/fixtures/results/v1-format was written by fusebench 0.1.0 (format 1) on this VM."""
    out = report.write_report(FIXTURES / "v1-format", tmp_path / f"v1.{fmt}", fmt)
    text = out.read_text()
    for cell in ("randread-4k", "seqwrite-1m"):
        assert cell in text
    if fmt == "text":
        assert "fd pressure" in text and "passthrough" in text
