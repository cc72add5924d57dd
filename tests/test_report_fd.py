"""fd pressure at scale in the reports: the figures to quote, who can see the files, the step
tables, the chart per configuration and the JSON tables, on the synthetic folder
(tests/fd_pressure_folder.py), and older folders without those columns."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from fd_pressure_folder import fd_pressure_folder
from test_report import BASIC, Page, external_references

from bench import report
from bench.analysis.metrics import fd_steps
from bench.report import charts, fdrows

OLD_COLUMNS = list(pd.read_csv(BASIC / "fd_pressure.csv", nrows=0).columns)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> Path:
    return fd_pressure_folder(tmp_path_factory.mktemp("fd") / "fd-scale")


@pytest.fixture(scope="module")
def text(scaled: Path) -> str:
    with pytest.MonkeyPatch.context() as patch:   # file-nr's tolerance depends on the CPUs: fixed here
        patch.setattr(fdrows, "file_nr_error", lambda cpus: 128)
        return report.render(report.analyse_folder(scaled), "text")


def joined(text: str) -> str:
    """The report with its wrapped lines joined, so a sentence reads as one."""
    return re.sub(r"\n +", " ", text)


def test_text_quotes_the_figures_per_configuration(text: str) -> None:
    prose = joined(text)
    assert ("- passthrough-close/close: 1,000,000 files held; 3 KiB of slab per open file (2.93 MiB per 1,000, "
            "r2 1.00) = 350,000 files per GiB; meminfo Slab 3.75 KiB per file = 280,000 per GiB; open p50 52 us, "
            "p99 156 us, 19,200 opens/s at N=1,000,000; nothing stays open after close (512 B of slab per file "
            "still cached)\n") in prose     # nothing idle: no release timed, none quoted
    assert "- passthrough-keep/keep: 100,000 files held, opens fail from N=1,000,000 (EMFILE);" in prose
    assert ("after close 65,536 backing ids, 65,536 hidden files stay (613 B of slab per file still cached); "
            "the cache evicted 934,464 ids; released at N=1,000,000: drop_caches 0.76 s, unmount 1.50 s") in prose
    assert "- native: 1,000,000 files held; 1.5 KiB of slab per open file" in prose


def test_text_says_who_can_see_the_files(text: str) -> None:
    prose = joined(text)
    assert "- listed: n/a: no listing of a connection's backing files was read (this kernel has no fusectl " \
           "backing_files, or fusectl could not be read)" in prose
    assert ("hidden files are allocated files (in file-nr), so they count against fs.file-max: "
            "passthrough-close/close at N=1,000,000 held 1,000,000 hidden, file-nr 2,005,000 of fs.file-max "
            "4,000,000 (50.1%)") in prose
    assert "bfilp objects (up to 1,000,000) are in no fd table and not in file-nr" in prose
    assert ("fs.nr_open 1,048,576 (the ceiling of any process's RLIMIT_NOFILE) limits a single fd table; hidden "
            "files are in none, so it does not count them: passthrough-close/close at N=1,000,000 held 1,000,000 "
            "hidden while its largest fd table held about 250,000 (one of 4 clients)") in prose


def test_text_step_tables_name_the_release_and_what_stays(text: str) -> None:
    lines = text.splitlines()
    held = lines.index("While held (counts are growth from the clients' start to all files held):")
    assert re.split(r"\s+", lines[held + 1].strip()) == ["N", "release", "clients", "failed", "visible", "hidden",
                                                          "bfilp", "p50", "us", "B/file"]
    assert lines[held + 2] == "native"
    row = next(line for line in lines[held:] if line.startswith("  1000000 drop_caches") and "+400010" not in line
               and "3072" in line)
    assert row.split()[2:] == ["4", "0", "+1000000", "+1000000", "+1000000", "52", "3072"]
    after = next(i for i, line in enumerate(lines) if line.startswith("After the close"))
    header = next(line for line in lines[after:] if line.startswith("  N "))
    assert header.split() == ["N", "release", "idle", "ids", "hidden", "bfilp", "B/file", "closed", "release", "s",
                              "back"]
    cache = lines.index("passthrough-cache/cache", after)
    assert lines[cache + 8].split() == ["1000000", "unmount", "65536", "+65536", "+0", "613", "934464", "1.50", "yes"]
    assert "B/file: kernel memory per open file (all tracked slabs)" in joined(text)


def test_one_release_method_is_named_once(tmp_path: Path) -> None:
    text = report.render(report.analyse_folder(fd_pressure_folder(tmp_path / "one", releases=("unmount",))), "text")
    assert "then closed and released by unmount" in joined(text)
    rows = [line for line in text.splitlines() if line.startswith("  1000000 ")]
    assert rows and not any("unmount" in row for row in rows)
    assert "released at N=1,000,000: unmount 1.50 s" in joined(text)


@pytest.mark.parametrize("width", [60, 72, 80, 120])
def test_text_fits_its_width(scaled: Path, width: int) -> None:
    text = report.render(report.analyse_folder(scaled), "text", width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert text.isascii()


def old_format(path: Path, scaled: Path) -> Path:
    """The synthetic folder as an older fusebench wrote it: fd_pressure.csv with its columns only."""
    path.mkdir()
    (path / "runs.csv").write_text((scaled / "runs.csv").read_text())
    (path / "scenario.yaml").write_text((scaled / "scenario.yaml").read_text().replace(
        "  release: [drop_caches, unmount]\n", ""))
    frame = pd.read_csv(scaled / "fd_pressure.csv", dtype=str, keep_default_na=False)
    frame = frame[frame["release"] == "drop_caches"]
    frame.loc[:, OLD_COLUMNS].to_csv(path / "fd_pressure.csv", index=False)
    return path


@pytest.mark.parametrize("fmt", ["text", "html", "json", "markdown", "csv"])
def test_a_folder_without_the_new_columns_still_reports(scaled: Path, tmp_path: Path, fmt: str) -> None:
    folder = old_format(tmp_path / "old", scaled)
    out = report.write_report(folder, tmp_path / f"old.{fmt}", fmt).read_text()
    if fmt == "text":
        prose = joined(out)
        assert ("- passthrough-keep/keep: 100,000 files held, opens fail from N=1,000,000 (EMFILE); bfilp slab "
                "bytes per passthrough open file: 256; open p50") in prose
        assert "of slab per open file" not in prose and "After the close" not in out and "listed: n/a" not in out
        assert "dmn fds" in out and "visible" not in out
        # no slab_bytes_per_file: no B/file column (kernel_bytes_per_file is the bfilp slab alone), but the
        # sentence quotes that as the older report did
        held = out.splitlines()[out.splitlines().index(
            "While held (counts are growth from the clients' start to all files held):") + 1]
        assert "p50 us" in held and "B/file" not in held and "B/file" not in prose
        assert ("- passthrough-close/close: 1,000,000 files held; bfilp slab bytes per passthrough open file: 256; "
                "open p50") in prose
        assert "- native: 1,000,000 files held; open p50" in prose     # none quoted outside passthrough
    if fmt == "json":
        document = json.loads(out)
        assert document["fd_releases"] == [] and document["fd_figures"]
        assert {row["quantity"] for row in document["fd_memory"]} == {"backing_file_objects"}
    if fmt == "html":
        assert "idle ids" not in out and "files held" in out


def svg_and_figure(monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame):
    """fd_views' SVG, and its figure before it was rendered."""
    figures = []
    real = charts.to_svg

    def keep(fig):
        figures.append(fig)
        return real(fig)

    monkeypatch.setattr(charts, "to_svg", keep)
    return charts.fd_views(frame), figures[0]


def test_the_chart_per_configuration_has_log_axes_whatever_the_values(scaled: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    frame = fd_steps(report.analyse_folder(scaled).results.fd_pressure)
    frame.loc[frame["open_files"] == 1000, "hidden_files"] = 0
    frame.loc[frame["open_files"] == 10_000, "visible_fds"] = -5     # growth below the baseline
    frame.loc[frame["config"] == "native", "idle_slab_bytes"] = -4096
    svg, figure = svg_and_figure(monkeypatch, frame)
    assert svg.startswith("<svg") and "<image" not in svg and "http://" not in svg.replace("http://www.w3.org", "")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert len(axes) == 10  # 5 configurations x (files, memory)
    assert {ax.get_xscale() for ax in axes} == {"log"} and {ax.get_yscale() for ax in axes} == {"log"}
    assert [ax.get_title() for ax in figure.axes[:5]] == ["native", "fuse", "passthrough-keep/keep",
                                                          "passthrough-close/close", "passthrough-cache/cache"]
    close = figure.axes[3]
    for line in close.lines:
        assert (line.get_ydata() > 0).all()
    hidden = next(line for line in close.lines if line.get_label() == "hidden files")
    assert list(hidden.get_xdata()) == [10_000, 100_000, 1_000_000]


def test_the_chart_of_an_older_folder_or_only_zeros(monkeypatch: pytest.MonkeyPatch, scaled: Path) -> None:
    basic = report.analyse_folder(BASIC)
    assert charts.fd_views(basic.fd_steps) is None         # no views to draw before format 7
    assert charts.fd_pressure(basic.fd_steps).startswith("<svg")
    frame = fd_steps(report.analyse_folder(scaled).results.fd_pressure)
    for column in ("visible_fds", "hidden_files", "backing_file_objects", "idle_ids"):
        frame[column] = 0
    svg, figure = svg_and_figure(monkeypatch, frame)
    assert "nothing above zero" in svg and figure.axes[0].get_yscale() == "linear"


def test_html_has_the_figures_table_and_chart(scaled: Path, tmp_path: Path) -> None:
    html = report.write_report(scaled, tmp_path / "fd.html", "html").read_text()
    page = Page(html)
    assert external_references(page) == [] and page.tags.get("script", 0) == 0
    assert "passthrough-close/close: 1,000,000 files held; 3 KiB of slab per open file" in html
    assert "this kernel has no fusectl backing_files" in html
    assert html.count("<svg") >= 2 and "idle ids after close" in html
    memory = [[text for _, text in row] for row in page.rows if len(row) == 7 and row[1][1] == "tracked slabs"]
    assert memory[3] == ["passthrough-close/close", "tracked slabs", "2.93 MiB", "[2.93 MiB, 2.93 MiB]", "0 B", "1.000",
                         "8"]
    headers = re.findall(r"<th>([^<]*)</th>", html)
    for column in ("release", "clients", "visible fds", "kernel listed", "slab bytes", "idle ids", "closed ids",
                   "release s"):
        assert column in headers or column == "kernel listed"   # empty everywhere: left out
    assert "kernel listed" not in headers


def test_json_carries_the_new_tables(scaled: Path) -> None:
    document = json.loads(report.render(report.analyse_folder(scaled), "json"))
    slab = next(row for row in document["fd_memory"] if (row["config"], row["quantity"])
                == ("passthrough-cache/cache", "slab_bytes"))
    assert slab["unit"] == "bytes" and slab["slope_per_1000"] == pytest.approx(3072 * 1000) and slab["n"] == 8
    figures = {row["config"]: row for row in document["fd_figures"]}
    assert figures["passthrough-keep/keep"]["max_held"] == 100_000
    assert {(row["config"], row["release"]) for row in document["fd_releases"]} >= {("native", "unmount")}


def test_the_older_chart_plots_the_bfilp_bytes_per_file() -> None:
    svg = charts.fd_pressure(report.analyse_folder(BASIC).fd_steps)
    assert "bfilp bytes per open file" in svg and "kernel bytes per open file" not in svg


def figures(**values) -> SimpleNamespace:
    """An fd_figures row: nothing known but `values`."""
    from bench.analysis.fdmemory import FD_FIGURE_COLUMNS
    return SimpleNamespace(**{**dict.fromkeys(FD_FIGURE_COLUMNS, float("nan")), **values})


def test_what_stays_after_the_close_leaves_out_the_counters_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fdrows, "SLAB_TOLERANCE", 16)
    nothing = "nothing stays open after close"
    assert fdrows._idle(figures(idle_ids=0, idle_hidden_files=100, idle_backing_file_objects=16), 100) == nothing
    assert fdrows._idle(figures(idle_ids=0, idle_hidden_files=-90, idle_backing_file_objects=-3), 100) == nothing
    # the step's own file-nr noise widens the tolerance
    assert fdrows._idle(figures(idle_ids=0, idle_hidden_files=250, file_nr_noise=150), 100) == nothing
    assert fdrows._idle(figures(idle_ids=0, idle_hidden_files=250, file_nr_noise=149), 100) == \
        "after close about 250 hidden files stay"
    # within 10x the tolerance: about; beyond it: the figure
    assert fdrows._idle(figures(idle_hidden_files=1000, idle_backing_file_objects=17), 100) == \
        "after close about 1,000 hidden files, about 17 bfilp objects stay"
    assert fdrows._idle(figures(idle_ids=3, idle_hidden_files=1001, idle_backing_file_objects=161), 100) == \
        "after close 3 backing ids, 1,001 hidden files, 161 bfilp objects stay"
    assert fdrows._idle(figures(), 100) == ""


def releases(*times) -> pd.DataFrame:
    return pd.DataFrame({"config": "c", "release": ["drop_caches", "unmount"][:len(times)],
                         "open_files": 1000, "release_s": pd.array(times, dtype="float64"),
                         "returned_to_baseline": pd.array([True] * len(times), dtype="boolean")})


def test_releases_without_a_time_are_left_out() -> None:
    assert fdrows._released(releases(None, None)) == ""
    assert fdrows._released(releases(None, 1.5)) == "released at N=1,000: unmount 1.50 s"
    assert fdrows._released(releases(0.25, 1.5)) == "released at N=1,000: drop_caches 0.25 s, unmount 1.50 s"
    assert fdrows._released(releases().iloc[:0]) == ""


def test_the_notes_leave_out_what_the_steps_do_not_know(scaled: Path) -> None:
    steps = fd_steps(report.analyse_folder(scaled).results.fd_pressure)
    notes = fdrows.fd_view_notes(steps.assign(file_max=float("nan")))
    hidden = next(note for note in notes if note.startswith("hidden files are allocated files"))
    assert hidden.endswith("held 1,000,000 hidden, file-nr 2,005,000") and "nan" not in hidden
    notes = fdrows.fd_view_notes(steps.assign(file_max=float("nan"), file_nr_held=float("nan")))
    assert next(note for note in notes if note.startswith("hidden files")).endswith("held 1,000,000 hidden")
    assert not any("nr_open" in note for note in fdrows.fd_view_notes(steps.assign(nr_open=None)))
    # the daemon's table where it is the largest: keep at its largest N held
    keep = steps[steps["config"] == "passthrough-keep/keep"].assign(hidden_files=5)
    note = next(note for note in fdrows.fd_view_notes(keep) if "nr_open" in note)
    assert note.endswith("passthrough-keep/keep at N=1,000 held 5 hidden while its largest fd table held about "
                         "1,008 (the daemon)")


def test_the_chart_per_configuration_says_when_it_leaves_some_out(scaled: Path, tmp_path: Path) -> None:
    html = report.write_report(scaled, tmp_path / "five.html", "html").read_text()
    assert "configurations shown" not in html
    folder = tmp_path / "eight"
    fd_pressure_folder(folder, releases=("unmount",))
    frame = pd.read_csv(folder / "fd_pressure.csv", dtype=str, keep_default_na=False)
    extra = frame[frame["target"].isin(["native", "fuse", "passthrough-close"])].assign(
        target=lambda f: f["target"] + "-2")
    pd.concat([frame, extra]).to_csv(folder / "fd_pressure.csv", index=False)
    html = report.write_report(folder, tmp_path / "eight.html", "html").read_text()
    assert f" First {charts.MAX_PANELS // 2} of 8 configurations shown." in html


def test_a_release_that_left_idle_ids_in_place_is_said_not_hidden() -> None:
    releases = pd.DataFrame({"config": ["c", "c"], "release": ["drop_caches", "unmount"],
                             "open_files": [1_000_000, 1_000_000], "release_s": [float("nan"), 1.5],
                             "idle_ids": [65536, 65536], "returned_to_baseline": [False, True]})
    assert fdrows._released(releases) == ("released at N=1,000,000: drop_caches did not release them (not back to "
                                          "baseline), unmount 1.50 s")
    nothing_idle = releases.assign(release_s=float("nan"), idle_ids=0)
    assert fdrows._released(nothing_idle) == ""
