"""A bundle to publish: a copy of a results folder with every report derived from it and a README
saying how to derive them again, as a folder or an archive (ARCHIVES). The bundle is itself a
results folder: `fusebench report` reads it as it reads the original."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench import __version__
from bench.errors import InputError
from bench.report import STDOUT

# Name endings that make the bundle an archive (tarfile's mode); any other name is a folder.
ARCHIVES = {".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz", ".tar": "w"}
README = "README.txt"

Reports = dict[str, tuple[str, str]]  # format -> (file name, content)


def archive_mode(out: Path) -> str | None:
    """The tarfile mode of an archive's name, or None when `out` names a folder."""
    return next((mode for suffix, mode in ARCHIVES.items() if out.name.endswith(suffix)), None)


def write_bundle(results_dir: Path, out: Path, make_reports: Callable[[], Reports]) -> Path:
    """Bundle `results_dir` into `out` with the reports `make_reports` returns; InputError
    before any work when `out` cannot take the bundle. Nothing is left half-written."""
    mode = archive_mode(out)
    _check(results_dir, out, mode)
    reports = make_reports()
    name = results_dir.resolve().name if mode else out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside `out` and moved into place whole.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
        stage = Path(work) / name
        shutil.copytree(results_dir, stage)
        for filename, content in reports.values():
            (stage / filename).write_text(content)
        (stage / README).write_text(readme(name, reports))
        if mode is None:
            if out.exists():
                out.rmdir()  # an empty folder (checked)
            stage.rename(out)
        else:
            partial = Path(work) / out.name
            with tarfile.open(partial, mode) as archive:
                archive.add(stage, arcname=name, filter=_anonymous)
            os.replace(partial, out)
    return out


def _check(results_dir: Path, out: Path, mode: str | None) -> None:
    if out == STDOUT:
        raise InputError("--bundle -: a bundle is an archive or a folder, not standard output")
    source, target = results_dir.resolve(), out.resolve()
    if target == source or source in target.parents:
        raise InputError(f"--bundle {out} is inside the results folder {results_dir}: write the bundle elsewhere")
    if mode is not None and target.is_dir():
        raise InputError(f"--bundle {out} is a folder: name an archive ({', '.join(ARCHIVES)}) or a new folder")
    if mode is not None and target.exists():
        raise InputError(f"--bundle {out} exists; a bundle never replaces files: name a new archive")
    if mode is None and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"--bundle {out} exists and is not an empty folder; a bundle never replaces files: "
                         f"name a new folder, or an archive ({', '.join(ARCHIVES)})")


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members without the publisher's user and group."""
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def readme(name: str, reports: Reports) -> str:
    """What the bundle holds and the commands that derive every report again."""
    width = max(len(filename) for filename, _ in reports.values())
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"fusebench bundle: {name}",
        "",
        f"This folder is the fusebench results folder {name} as `fusebench run` wrote it (manifest.json,",
        "scenario.yaml, runs.csv, samples.csv, fio/ with fio's raw JSON output of every run, ...) and the",
        f"reports derived from it by fusebench {__version__} on {made}:",
        "",
        *(f"  {filename:<{width}}  {fmt}" for fmt, (filename, _) in reports.items()),
        "",
        "Every number in them is derived from this folder alone. To derive them again, with fusebench",
        f"{__version__} installed (`make setup` in its source tree), run in the folder that holds this one:",
        "",
        *(f"  fusebench report {name} --format {fmt} -o {name}/{filename}" for fmt, (filename, _) in reports.items()),
        "",
    ]
    return "\n".join(lines)
