"""bench.report.site: an index of many folders linking each one's HTML report, headline figures side by side."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from test_report import BASIC, BASIC_B, FIXTURES, Page, external_references

from bench import report
from bench.errors import InputError
from bench.report import site

FOLDERS = [BASIC, BASIC_B, FIXTURES / "v1-format"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    return report.write_site(FOLDERS, tmp_path_factory.mktemp("site") / "site")


def test_the_index_links_the_report_of_every_folder(index: Path) -> None:
    assert index.name == "index.html"
    page = Page(index.read_text())
    assert page.links == ["basic.html", "basic-b.html", "v1-format.html"]
    for link, folder in zip(page.links, FOLDERS):
        html = (index.parent / link).read_text()
        assert html.startswith("<!DOCTYPE html>") and f"fusebench report: {folder.name}</h1>" in html
    assert [link for link in external_references(page) if link not in page.links] == []


def test_the_index_puts_the_headline_figures_side_by_side(index: Path) -> None:
    rows = [[text for _, text in row] for row in Page(index.read_text()).rows if row]
    assert [row[0] for row in rows] == [f"{folder.name}{folder}" for folder in FOLDERS]  # name, then path
    basic = rows[0]
    assert basic[2].startswith("6.18.0-fixture") and basic[4] == "4"
    assert basic[5] == "baseline"
    ratios = report.analyse_folder(BASIC).summary.query("target == 'passthrough'")["vs_baseline_ratio"]
    assert basic[7].startswith(f"{math.exp(ratios.map(math.log).mean()):.2f}x")


def test_headlines_are_geometric_means_of_the_ratios_to_the_baseline() -> None:
    analysis = report.analyse_folder(BASIC)
    headlines = site.headlines(analysis)
    assert list(headlines) == ["fuse", "passthrough"]  # the baseline has none
    summary = analysis.summary[analysis.summary["target"] == "fuse"]
    assert headlines["fuse"].ratio == pytest.approx(math.prod(summary["vs_baseline_ratio"].dropna()) ** (1 / 4))
    assert headlines["fuse"].cells == 4
    verdicts = summary["vs_baseline_verdict"].value_counts()
    assert headlines["fuse"].verdicts.split() == [f"{verdicts[v]}{mark}" for v, mark in
                                                  (("faster", "+"), ("slower", "-"), ("equivalent", "="),
                                                   ("undecided", "?")) if v in verdicts]


def test_folders_of_the_same_name_get_a_page_each(tmp_path: Path) -> None:
    for machine in ("a", "b"):
        shutil.copytree(BASIC, tmp_path / machine / "basic")
    index = report.write_site([tmp_path / "a" / "basic", tmp_path / "b" / "basic"], tmp_path / "site")
    assert Page(index.read_text()).links == ["basic.html", "basic-2.html"]
    assert (tmp_path / "site" / "basic-2.html").is_file()


def test_a_site_is_never_written_over_a_file(tmp_path: Path) -> None:
    (tmp_path / "site").write_text("mine")
    with pytest.raises(InputError, match="is not a folder"):
        report.write_site(FOLDERS, tmp_path / "site")
    assert (tmp_path / "site").read_text() == "mine"
