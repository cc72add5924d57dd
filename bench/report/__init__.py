"""Reports from results folders: HTML, text, Markdown and CSV, one writer module per format.

    write_report(results_dir, out, fmt) -> Path      # fmt: html | text | markdown | csv
    render_text(results_dir) -> str                  # what `fusebench report --format text` prints
    write_comparison(a, b, out, fmt="html") -> Path  # B relative to A
"""

from __future__ import annotations

from pathlib import Path

from bench.analysis import Analysis, Settings, analyse, load
from bench.analysis.compare import compare_folders
from bench.errors import InputError
from bench.report import csvout, html, markdown, text

WRITERS = {"html": html, "text": text, "markdown": markdown, "csv": csvout}
EXTENSIONS = {"html": "html", "text": "txt", "markdown": "md", "csv": "csv"}
REPORTS_DIR = Path("reports")


def _writer(fmt: str):
    try:
        return WRITERS[fmt]
    except KeyError:
        raise InputError(f"unknown report format {fmt!r}; use one of: {', '.join(WRITERS)}") from None


def _write(out: Path, content: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(content)
    return out


def analyse_folder(results_dir: Path, settings: Settings = Settings()) -> Analysis:
    """Load and analyse a results folder (InputError when it is not one)."""
    return analyse(load(Path(results_dir)), settings)


def render_text(results_dir: Path) -> str:
    """The text report of a results folder, ready to print."""
    return text.render_report(analyse_folder(results_dir))


def write_report(results_dir: Path, out: Path | None = None, fmt: str = "html") -> Path:
    """Write the report of one results folder; default path reports/<results-name>.<ext>."""
    writer = _writer(fmt)
    analysis = analyse_folder(results_dir)
    out = Path(out) if out else REPORTS_DIR / f"{Path(results_dir).resolve().name}.{EXTENSIONS[fmt]}"
    return _write(out, writer.render_report(analysis))


def write_comparison(a: Path, b: Path, out: Path | None = None, fmt: str = "html") -> Path:
    """Write B relative to A; default path reports/<A>-vs-<B>.<ext>."""
    writer = _writer(fmt)
    first, second = analyse_folder(a), analyse_folder(b)
    changes, only = compare_folders(first, second)
    name = f"{Path(a).resolve().name}-vs-{Path(b).resolve().name}.{EXTENSIONS[fmt]}"
    out = Path(out) if out else REPORTS_DIR / name
    return _write(out, writer.render_comparison(first, second, changes, only))
