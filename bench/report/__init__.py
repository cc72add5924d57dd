"""Reports from results folders: HTML, text, Markdown, CSV and JSON, one writer module per format.

    write_report(results_dir, out, fmt, width) -> Path|None   # fmt: one of FORMATS; None: to stdout
    render(analysis, fmt, width) -> str                       # one format of an analysed folder
    write_comparison(base, others, out, fmt, width) -> Path|None  # every other folder against base
    write_bundle(results_dir, out) -> Path           # every report with the folder and a README (bundle.py)
    write_site(results_dirs, out) -> Path            # each folder's HTML report and an index (site.py)
    report_command(results, out, fmt, width, bundle)  # what `fusebench report` does with its options

Importing this package is cheap (the command line takes FORMATS from it); the analysis and
the writers are imported when a report is made.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import NamedTuple

from bench.errors import InputError


class Format(NamedTuple):
    """A report format: its file extension, the module that writes it, whether it goes to standard
    output when no -o is given (text formats, to read or pipe) or to a file, and whether its
    writer takes a line width (--width)."""

    extension: str
    writer: str
    to_stdout: bool = False
    width: bool = False


FORMATS = {
    "html": Format("html", "bench.report.html"),
    "text": Format("txt", "bench.report.text", to_stdout=True, width=True),
    "markdown": Format("md", "bench.report.markdown", to_stdout=True, width=True),
    "csv": Format("csv", "bench.report.csvout"),
    "json": Format("json", "bench.report.jsonout", to_stdout=True),
}
REPORTS_DIR = Path("reports")
MIN_WIDTH = 40  # --width: the narrowest line a table still reads in
STDOUT = Path("-")  # `-o -`: standard output, for every command that writes a file


def _format(fmt: str) -> Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise InputError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}") from None


def _write(out: Path, content: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(content)
    return out


def _emit(content: str, out: Path | None, chosen: Format, default: Path) -> Path | None:
    """Write `content` to `out`, or to standard output for `-o -` (and for a text format without
    -o); the path written, None for standard output."""
    if (out is None and chosen.to_stdout) or (out is not None and Path(out) == STDOUT):
        sys.stdout.write(content)
        sys.stdout.flush()
        return None
    return _write(Path(out) if out is not None else default, content)


def analyse_folder(results_dir: Path):
    """Load and analyse a results folder (InputError when it is not one)."""
    from bench.analysis import analyse, load

    return analyse(load(Path(results_dir)))


def _options(fmt: str, width: int | None) -> dict[str, int]:
    """The writer's keyword arguments: the line width, for the formats that take one."""
    if width is None:
        return {}
    if not _format(fmt).width:
        takes = ", ".join(name for name, chosen in FORMATS.items() if chosen.width)
        raise InputError(f"--width applies to the {takes} formats, not to {fmt}")
    if width < MIN_WIDTH:
        raise InputError(f"--width {width} is too narrow for a table; use {MIN_WIDTH} or more (72 for mail)")
    return {"width": width}


def render(analysis, fmt: str, width: int | None = None) -> str:
    """The report of an analysed folder in one format (text formats at most `width` columns)."""
    return importlib.import_module(_format(fmt).writer).render_report(analysis, **_options(fmt, width))


def write_report(results_dir: Path, out: Path | None = None, fmt: str = "html",
                 width: int | None = None) -> Path | None:
    """Write the report of one results folder to `out` (`-`: standard output); without `out`, text
    formats go to standard output and the others to reports/<results-name>.<ext>. The path
    written, None for standard output."""
    chosen = _format(fmt)
    options = _options(fmt, width)
    content = render(analyse_folder(results_dir), fmt, **options)
    return _emit(content, out, chosen, REPORTS_DIR / f"{Path(results_dir).resolve().name}.{chosen.extension}")


def write_comparison(base: Path, others: list[Path], out: Path | None = None, fmt: str = "html",
                     width: int | None = None) -> Path | None:
    """Write every folder of `others` relative to `base` (as write_report: `-` or a text format
    without `out` to standard output; else reports/<base>-vs-<others>.<ext>)."""
    from bench.analysis.compare import compare_folders, folder_names

    chosen = _format(fmt)
    options = _options(fmt, width)
    names = folder_names([Path(base), *map(Path, others)])
    comparison = compare_folders(analyse_folder(base), [analyse_folder(other) for other in others], names)
    content = importlib.import_module(chosen.writer).render_comparison(comparison, **options)
    default = REPORTS_DIR / f"{'-vs-'.join(Path(name).name for name in names)}.{chosen.extension}"
    return _emit(content, out, chosen, default)


def write_bundle(results_dir: Path, out: Path) -> Path:
    """A bundle to publish: the results folder with every report of it and a README saying how
    to re-derive them; a folder, or an archive when `out`'s name ends in one of bundle.ARCHIVES."""
    from bench.report import bundle

    def reports() -> dict[str, tuple[str, str]]:
        analysis = analyse_folder(results_dir)
        return {fmt: (f"report.{chosen.extension}", render(analysis, fmt)) for fmt, chosen in FORMATS.items()}

    return bundle.write_bundle(Path(results_dir), Path(out), reports)


def write_site(results_dirs: list[Path], out: Path) -> Path:
    """Each folder's HTML report in the folder `out`, and an index.html with their headline
    figures side by side; returns the index's path."""
    from bench.report import site

    analyses = (analyse_folder(results_dir) for results_dir in results_dirs)
    return site.write_site(((analysis, render(analysis, "html")) for analysis in analyses), Path(out))


def report_command(results: list[Path], out: Path | None, fmt: str | None, width: int | None,
                   bundle: Path | None) -> Path | None:
    """`fusebench report`: one folder's report, its bundle, or a site of several; refuses options
    that do not go together. The path written, None for standard output."""
    first, several = results[0], len(results) > 1
    if bundle is not None:
        if several or out or fmt or width:
            raise InputError("--bundle takes one results folder and holds every format: give it neither more "
                             "folders, -o, --format nor --width (bundle several folders one at a time)")
        return write_bundle(first, bundle)
    if several:
        if out is None or fmt not in (None, "html") or width:
            raise InputError("several results folders make a site of HTML reports: give its folder with -o DIR "
                             "(and no --format), or report the folders one at a time")
        return write_site(results, out)
    return write_report(first, out, fmt or "html", width)
