"""bench.report writers on the fixture results folders: golden text, parsed HTML, Markdown, CSV."""

from __future__ import annotations

import csv
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sweep_folder import sweep_folder

from bench import report
from bench.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "results"
BASIC = FIXTURES / "basic"
BASIC_B = FIXTURES / "basic-b"
BASIC_C = FIXTURES / "basic-c"
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
    assert report.render(report.analyse_folder(BASIC), "text") == (EXPECTED / "basic.txt").read_text()


def test_text_fits_80_columns() -> None:
    for text in (report.render(report.analyse_folder(BASIC), "text"), report.render(report.analyse_folder(BASIC_B), "text")):
        assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_three_way_comparison_matches_golden_file(tmp_path: Path, fmt: str) -> None:
    """basic-b lacks randwrite-4k and adds seqread-4m; basic-c lacks seqwrite-1m and ran on another kernel."""
    out = report.write_comparison(BASIC, [BASIC_B, BASIC_C], tmp_path / "cmp", fmt)
    text = out.read_text()
    assert text == (EXPECTED / f"basic-vs-basic-b-vs-basic-c.{report.FORMATS[fmt].extension}").read_text()
    for needle in ("kernel: 6.18.0-fixture x86_64 -> 6.19.0-fixture x86_64", "seqwrite-1m / fuse: in basic, basic-b; "
                   "not in basic-c", "latency p99", "CPU s per GiB", "FUSE requests per GiB"):
        assert needle in text


@pytest.mark.parametrize("width", [40, 60, 72, 80, 120])
def test_text_fits_its_width(tmp_path: Path, width: int, swept: Path) -> None:
    texts = [report.render(report.analyse_folder(folder), "text", width) for folder in (BASIC, BASIC_B, swept)]
    texts.append(report.write_comparison(BASIC, [BASIC_B, BASIC_C], tmp_path / "c.txt", "text", width).read_text())
    for text in texts:
        assert max(len(line) for line in text.splitlines()) <= width
    headline = texts[0].splitlines()
    # columns that do not fit go to a second block of the same rows, never off the edge
    assert sum(line.startswith("  passthrough") for line in headline) >= (3 if width >= 72 else 4)


def test_text_formats_are_ascii_whatever_the_machine_says(tmp_path: Path) -> None:
    folder = tmp_path / "accents"
    shutil.copytree(BASIC, folder)
    manifest = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(manifest.replace("Fixture CPU @ 2.0GHz", "Proc\u00e9ssor\u00ae \u00b5arch \u2013 2\u00d72"))
    analysis = report.analyse_folder(folder)
    for fmt in ("text", "markdown"):
        text = report.render(analysis, fmt)
        assert text.isascii() and "Processor? uarch - 2x2" in text, fmt
    assert "Proc\u00e9ssor\u00ae" in report.render(analysis, "json")  # JSON keeps what the machine said


def test_markdown_wraps_prose_but_not_tables() -> None:
    text = report.render(report.analyse_folder(BASIC), "markdown", 72)
    prose = [line for line in text.splitlines() if not line.startswith(("|", "#"))]
    assert max(map(len, prose)) <= 72 and max(map(len, text.splitlines())) > 72  # the table rows stay whole


def test_default_output_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = report.write_report(BASIC, None, "html")
    assert out == Path("reports/basic.html")
    assert out.read_text() == report.render(report.analyse_folder(BASIC), "html")
    assert report.write_comparison(BASIC, [BASIC_B], None, "html") == Path("reports/basic-vs-basic-b.html")
    assert report.write_comparison(BASIC, [BASIC_B, BASIC_C], None, "csv") == Path(
        "reports/basic-vs-basic-b-vs-basic-c.csv")


@pytest.mark.parametrize("fmt", list(report.FORMATS))
def test_dash_and_text_formats_go_to_stdout(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert report.write_report(BASIC, Path("-"), fmt) is None
    assert report.write_comparison(BASIC, [BASIC_B], Path("-"), fmt) is None
    out = capsys.readouterr().out
    assert report.render(report.analyse_folder(BASIC), fmt) in out and len(out) > 100
    assert not Path("-").exists() and not Path("reports").exists()
    if report.FORMATS[fmt].to_stdout:
        assert report.write_report(BASIC, None, fmt) is None
        assert report.write_comparison(BASIC, [BASIC_B], None, fmt) is None
        assert capsys.readouterr().out and not Path("reports").exists()


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
    # throughput, absolute figures, latency, CPU, time series, fd pressure
    assert page.tags.get("svg") == 6
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


def test_html_comparison_colours_only_decided_changes(tmp_path: Path) -> None:
    page = Page(report.write_comparison(BASIC, [BASIC_B, BASIC_C], tmp_path / "cmp.html").read_text())
    assert external_references(page) == []
    throughput = [row for row in page.rows if len(row) == 6 and row[2][1] in ("MiB/s", "IOPS")]
    coloured = {(row[0][1], row[1][1], column, cls) for row in throughput
                for column, (cls, _) in enumerate(row) if cls in ("better", "worse")}
    assert coloured == {("seqread-1m", "passthrough", 4, "better"), ("seqread-1m", "fuse", 4, "worse"),
                        ("seqread-1m", "fuse", 5, "better")}
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
    out = report.write_comparison(BASIC, [BASIC_B, BASIC_C], tmp_path / "c.csv", "csv")
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    one_sided = [r for r in rows if r["present_in"]]
    assert {r["present_in"] for r in one_sided} == {"basic", "basic-b", "basic;basic-b"}
    assert sum(r["present_in"] == "basic-b" for r in rows) == 3  # seqread-4m on three targets
    assert all(r["metric"] and r["ratio"] for r in rows if not r["present_in"])


def test_partial_folder_reports_what_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "started"
    folder.mkdir()
    for name in ("manifest.json", "scenario.yaml"):
        shutil.copy(BASIC / name, folder / name)
    text = report.render(report.analyse_folder(folder), "text")
    assert "seqread-1m / native: no result for r1, r2, r3" in text
    html = report.write_report(folder, tmp_path / "r.html", "html").read_text()
    assert external_references(Page(html)) == []
    assert "results are partial" in html


def test_runs_csv_alone_is_enough(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copy(BASIC / "runs.csv", folder / "runs.csv")
    text = report.render(report.analyse_folder(folder), "text")
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


# ---------------------------------------------------------------- sweeps and absolute figures


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    return sweep_folder(tmp_path_factory.mktemp("sweeps") / "sweeps")


def figures(html: str) -> dict[str, str]:
    """Each <figure>'s SVG by the first words of its caption."""
    found = re.findall(r"<figure>(<svg.*?</svg>)\s*<figcaption>(.*?)</figcaption>", html, flags=re.DOTALL)
    return {" ".join(caption.split()[:4]): svg for svg, caption in found}


def test_text_report_has_a_table_per_sweep_curve(swept: Path) -> None:
    lines = report.render(report.analyse_folder(swept), "text").splitlines()
    start = lines.index("depth (numjobs=1): IOPS against iodepth, log scale; intervals cover 75%")
    assert lines[start + 1:start + 6] == [
        "  iodepth                native                  fuse           passthrough",
        "  1        10240 [10138, 10342]     5120 [5069, 5171]   10035 [9935, 10136]",
        "  4        20480 [20275, 20685]  10240 [10138, 10342]  20070 [19870, 20271]",
        "  16       40960 [40550, 41370]  20480 [20275, 41370]  40141 [39739, 40542]",  # fuse r3 is an outlier
        "  64       81920 [81101, 82739]  40960 [40550, 41370]  80282 [79479, 81084]",
    ]
    # with the intervals the numjobs=2 table would not fit in 80 columns: medians alone
    start = lines.index("depth (numjobs=2): IOPS against iodepth, log scale; intervals cover 75%")
    assert lines[start + 1:start + 3] == ["  iodepth  native   fuse  passthrough",
                                          "  1         20480  10240        20070"]
    assert "blocks: MiB/s against bs, log scale; intervals cover 75%" in lines
    assert "jobs (rw=write): MiB/s against numjobs; intervals cover 75%" in lines
    assert max(len(line) for line in lines) <= 80
    assert "Sweeps:" not in report.render(report.analyse_folder(BASIC), "text")


def test_markdown_report_has_the_sweep_tables(swept: Path, tmp_path: Path) -> None:
    text = report.write_report(swept, tmp_path / "s.md", "markdown").read_text()
    assert "### blocks: MiB/s against bs, log scale; intervals cover 75%" in text
    assert "| bs | native | fuse | passthrough |" in text
    assert "| 64k | 160 [158, 162] | 80 [79.2, 80.8] | 157 [155, 158] |" in text


def test_html_charts_sweeps_and_absolute_figures_with_every_run(swept: Path, tmp_path: Path) -> None:
    html = report.write_report(swept, tmp_path / "s.html", "html").read_text()
    assert external_references(Page(html)) == []
    charts = figures(html)
    sweeps, absolute = charts["One panel per swept"], charts["Median of each target"]
    for title in ("depth (numjobs=1)", "depth (numjobs=2)", "blocks", "jobs (rw=read)", "jobs (rw=write)"):
        assert f">{title}<" in sweeps
    assert all(f">{tick}<" in sweeps for tick in ("4k", "64k", "1m", "iodepth (log scale)", "numjobs"))
    assert "First 12 of 18 workloads shown." in html  # 18 cells, at most MAX_PANELS panels
    assert ">depth_iodepth-1_numjobs-1<" in absolute and ">single<" not in absolute
    assert '<h2 id="sweeps">' in html and "<th>iodepth</th>" in html
    assert '<h2 id="sweeps">' not in report.write_report(BASIC, tmp_path / "b.html", "html").read_text()



def test_comparison_keeps_long_folder_names_apart_and_prints_its_notes(tmp_path: Path) -> None:
    """Default folder names differ only at their end; a cell measured in other units is noted."""
    import pandas as pd

    names = [f"metadata-20261128T10{minute}31Z-patched-v2" for minute in (52, 53, 54)]
    for name in names:
        shutil.copytree(BASIC_B, tmp_path / name)
    runs = pd.read_csv(tmp_path / names[2] / "runs.csv")
    runs.loc[runs["cell"] == "randread-4k", "bs"] = "1M"
    runs.to_csv(tmp_path / names[2] / "runs.csv", index=False)
    folders = [tmp_path / name for name in names]
    for width in (40, 72):
        text = report.write_comparison(folders[0], folders[1:], tmp_path / f"c{width}.txt", "text", width).read_text()
        lines = text.splitlines()
        assert max(map(len, lines)) <= width
        # the names do not fit a table's label column: A, B and C stand for them, said in the header
        assert [line for line in lines if line[1:3] == ": "] == [f"{letter}: {name}" for letter, name in zip("ABC", names)]
        rows = [line for line in lines if line.startswith("  ") and line.split()[-1] in ("base", "same")
                and line.split()[1].isdigit()]
        assert {row.split()[0] for row in rows} == {"A", "B", "C"}
        assert "Not compared, or compared with a caveat:" in text and "MiB/s in" in text
    for fmt in ("markdown", "html"):
        out = report.write_comparison(folders[0], folders[1:], tmp_path / f"c.{fmt}", fmt).read_text()
        assert "IOPS in the base folder, MiB/s in" in out, fmt
