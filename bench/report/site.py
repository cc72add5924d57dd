"""A site of many results folders: each folder's HTML report, and an index.html that links them
with their headline figures side by side: when, on which kernel, how many cells, and per target
its speed relative to the folder's baseline (the geometric mean over its cells) with the count of
each verdict."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bench.analysis import Analysis, environment
from bench.analysis.statistics import VERDICTS, verdict_tally
from bench.errors import InputError
from bench.report import STDOUT
from bench.report.html import TEMPLATES
from bench.report.rows import VERDICT_MARKS

INDEX = "index.html"


@dataclass(frozen=True)
class Headline:
    """A target's speed relative to its folder's baseline, over every cell that compares them."""

    ratio: float      # geometric mean over the cells of the ratio of geometric means
    cells: int
    verdicts: str     # "2+ 1= 1?": how many cells are decided faster, slower, equivalent, or undecided


def headlines(analysis: Analysis) -> dict[str, Headline]:
    """Per target compared with the baseline: its Headline (the baseline itself has none)."""
    compared = analysis.summary[analysis.summary["vs_baseline_ratio"] > 0]
    out = {}
    for target, rows in compared.groupby("target", sort=False):
        ratio, counts = verdict_tally(rows["vs_baseline_ratio"].to_numpy(), list(rows["vs_baseline_verdict"]))
        out[str(target)] = Headline(
            ratio=ratio,
            cells=len(rows),
            verdicts=" ".join(f"{counts[verdict]}{VERDICT_MARKS[verdict]}" for verdict in VERDICTS if counts[verdict]),
        )
    return out


@dataclass(frozen=True)
class FolderRow:
    """One results folder on the index."""

    name: str
    href: str          # its report, relative to the index
    path: str          # the folder as given
    started: str
    kernel: str
    status: str
    cells: int
    baseline: str
    headlines: dict[str, Headline]


def _row(analysis: Analysis, page: str) -> FolderRow:
    results = analysis.results
    env = environment(results)
    return FolderRow(name=results.path.resolve().name, href=quote(page), path=str(results.path),
                     started=env["started"], kernel=env["kernel"],
                     status=results.manifest.status if results.manifest else "",
                     cells=int(analysis.summary["cell"].nunique()), baseline=analysis.baseline or "",
                     headlines=headlines(analysis))


def write_site(pages: Iterable[tuple[Analysis, str]], out: Path) -> Path:
    """Write each analysed folder's HTML report (`pages`: the analysis and its HTML) into the
    folder `out`, then index.html linking them; returns the index's path."""
    if out == STDOUT or (out.exists() and not out.is_dir()):
        raise InputError(f"-o {out} is not a folder: several results folders make a site, which is one")
    out.mkdir(parents=True, exist_ok=True)
    rows: list[FolderRow] = []
    taken = {Path(INDEX).stem}
    for analysis, html in pages:
        page = _unique(analysis.results.path.resolve().name, taken) + ".html"
        (out / page).write_text(html)
        rows.append(_row(analysis, page))
    targets = list(dict.fromkeys(target for row in rows for target in (row.baseline, *row.headlines) if target))
    index = out / INDEX
    marks = ", ".join(f"{verdict} ({VERDICT_MARKS[verdict]})" for verdict in VERDICTS)
    index.write_text(TEMPLATES.get_template("index.html.j2").render(rows=rows, targets=targets, marks=marks))
    return index


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... when a folder of the same name is already on the site."""
    chosen = next(candidate for n in range(1, len(taken) + 2)
                  if (candidate := name if n == 1 else f"{name}-{n}") not in taken)
    taken.add(chosen)
    return chosen
