"""Reports from results folders: HTML, text, Markdown and CSV, one writer module per format.

    write_report(results_dir, out, fmt) -> Path      # fmt: one of FORMATS
    render_text(results_dir) -> str                  # what `fusebench report --format text` prints
    write_comparison(a, b, out, fmt="html") -> Path  # B relative to A

Importing this package is cheap (the command line takes FORMATS from it); the analysis and
the writers are imported when a report is made.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import NamedTuple

from bench.errors import InputError


class Format(NamedTuple):
    """A report format: its file extension and the module that writes it."""

    extension: str
    writer: str


FORMATS = {
    "html": Format("html", "bench.report.html"),
    "text": Format("txt", "bench.report.text"),
    "markdown": Format("md", "bench.report.markdown"),
    "csv": Format("csv", "bench.report.csvout"),
}
REPORTS_DIR = Path("reports")


def _format(fmt: str) -> Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise InputError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}") from None


def _write(out: Path, content: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(content)
    return out


def analyse_folder(results_dir: Path):
    """Load and analyse a results folder (InputError when it is not one)."""
    from bench.analysis import analyse, load

    return analyse(load(Path(results_dir)))


def render_text(results_dir: Path) -> str:
    """The text report of a results folder, ready to print."""
    return importlib.import_module(FORMATS["text"].writer).render_report(analyse_folder(results_dir))


def write_report(results_dir: Path, out: Path | None = None, fmt: str = "html") -> Path:
    """Write the report of one results folder; default path reports/<results-name>.<ext>."""
    chosen = _format(fmt)
    analysis = analyse_folder(results_dir)
    out = Path(out) if out else REPORTS_DIR / f"{Path(results_dir).resolve().name}.{chosen.extension}"
    return _write(out, importlib.import_module(chosen.writer).render_report(analysis))


def write_comparison(a: Path, b: Path, out: Path | None = None, fmt: str = "html") -> Path:
    """Write B relative to A; default path reports/<A>-vs-<B>.<ext>."""
    from bench.analysis.compare import compare_folders

    chosen = _format(fmt)
    first, second = analyse_folder(a), analyse_folder(b)
    changes, only = compare_folders(first, second)
    name = f"{Path(a).resolve().name}-vs-{Path(b).resolve().name}.{chosen.extension}"
    out = Path(out) if out else REPORTS_DIR / name
    return _write(out, importlib.import_module(chosen.writer).render_comparison(first, second, changes, only))
