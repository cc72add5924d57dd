"""The program catalog on a small tree, natively (root = source): each entry's command really
runs and does what it says, `reset` restores a mutating entry's starting state, `prepare`
reuses what it built, and scenarios cannot put free strings into a command."""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path

import pydantic
import pytest

from bench.fields import Duration, Name, Size
from bench.processes import Started, minimal_env
from bench.programs import CATALOG, Command, Program, ProgramEntry
from bench.stop import Interrupted, StopToken
from bench.tree import TreeSpec

SMALL = TreeSpec(files=60, dirs=8, median_size="2k", max_size="64k")
ADAPTER = pydantic.TypeAdapter(ProgramEntry)
PARAMETERS = {"git-status": {"modified": 10, "untracked": 3}, "git-diff": {"modified": 10, "untracked": 3},
              "make": {"sources": 4, "jobs": 2}}
ALLOWED_FIELD_TYPES = [int, float, bool, TreeSpec, Name, Size, Duration]


def entry_of(program: str) -> Program:
    """A catalog entry on the small tree, named after its program."""
    return ADAPTER.validate_python({"program": program, "name": program, "tree": SMALL,
                                    **PARAMETERS.get(program, {})})


def run(command: Command, keep_stdout: bool = False) -> str:
    """Run a command as the runner does (minimal environment plus its own); its stdout if kept."""
    status, stdout, stderr = Started(command.argv, env=minimal_env(command.env), keep_stdout=keep_stdout).wait(60)
    assert status == 0, stderr
    return stdout


def listing(root: Path) -> list[tuple[str, int | None]]:
    """Every path under `root`, relative, with its size (None for a directory)."""
    found = []
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            found.append((os.path.relpath(os.path.join(directory, name), root), None))
        for name in files:
            path = os.path.join(directory, name)
            found.append((os.path.relpath(path, root), os.lstat(path).st_size))
    return sorted(found)


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every path under `root` with its size and mtime (to see that nothing was written)."""
    return sorted((str(path.relative_to(root)), path.lstat().st_size, path.lstat().st_mtime_ns)
                  for path in root.rglob("*"))


def rchar() -> int:
    """Bytes this process and its reaped children have read (the kernel adds a child's at its reaping)."""
    return int(re.search(r"^rchar: (\d+)", Path("/proc/self/io").read_text(), re.M).group(1))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return tmp_path / "source"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


def prepared(program: str, source: Path, scratch: Path) -> Program:
    """An entry prepared and reset, ready for its first run."""
    entry = entry_of(program)
    entry.prepare(source, scratch, StopToken())
    entry.reset(source)
    return entry


def test_catalog_lists_the_entries_in_order():
    assert list(CATALOG) == ["find-stat", "tar-extract", "tar-create", "read-all", "cp-tree", "rm-tree",
                             "git-status", "git-diff", "make"]
    assert [name for name, entry in CATALOG.items() if entry.mutates] == ["tar-extract", "cp-tree", "rm-tree", "make"]


@pytest.mark.parametrize("program", list(CATALOG))
def test_every_entry_parses_from_a_scenario_dict(program):
    entry = ADAPTER.validate_python({"program": program, "name": "w1", **PARAMETERS.get(program, {})})
    assert type(entry) is CATALOG[program] and entry.program == program and entry.name == "w1"


@pytest.mark.parametrize("document", [
    {"program": "tar-extrakt", "name": "w"},
    {"program": "tar-create", "name": "w", "args": ["--to-command=sh"]},
    {"program": "read-all", "name": "w", "path": "/etc"},
    {"program": "make", "name": "w", "jobs": "many"},
    {"program": "make", "name": "w", "jobs": 0},
    {"program": "git-status", "name": "w", "modified": 101},
    {"program": "cp-tree", "name": "../escape"},
    {"name": "w"},
])
def test_bad_entries_are_refused(document):
    with pytest.raises(pydantic.ValidationError):
        ADAPTER.validate_python(document)


@pytest.mark.parametrize("program", list(CATALOG))
def test_no_entry_takes_a_free_string(program):
    entry = CATALOG[program]
    hints = typing.get_type_hints(entry, include_extras=True)
    for field in entry.model_fields:
        hint = hints[field]
        assert hint in ALLOWED_FIELD_TYPES or typing.get_origin(hint) is typing.Literal, (field, hint)


@pytest.mark.parametrize("program", list(CATALOG))
def test_commands_touch_source_only_through_root(program, tmp_path, source, scratch):
    root = tmp_path / "view"
    command = entry_of(program).command(root, scratch)
    ours = [Path(arg) for arg in command.argv[1:] + list(command.env.values()) if arg.startswith(str(tmp_path))]
    assert ours and all(path.is_relative_to(root) or path.is_relative_to(scratch) for path in ours)
    assert Path(command.argv[0]).is_absolute()


@pytest.mark.parametrize("program", list(CATALOG))
def test_missing_commands_are_named(program):
    entry = entry_of(program)
    reason = entry.unavailable_reason(which=lambda name: None)
    assert entry.requires and reason is not None
    assert all(command in reason for command in entry.requires)
    assert entry.unavailable_reason(which=lambda name: f"/usr/bin/{name}") is None


def test_tar_extract_extracts_the_tree_and_reset_empties_it(source, scratch):
    entry = prepared("tar-extract", source, scratch)
    out = entry.cell_dir(source) / "out"
    before = listing(entry.cell_dir(source))
    assert before == [("out", None)]
    run(entry.command(source, scratch))
    assert listing(out) == listing(SMALL.path_in(source))
    entry.reset(source)
    assert listing(entry.cell_dir(source)) == before


def test_prepare_reuses_what_it_built(source, scratch):
    entry = prepared("tar-extract", source, scratch)
    archive = entry.archive(scratch)
    assert archive.is_file() and not archive.is_relative_to(source)
    built = archive.stat().st_mtime_ns
    entry.prepare(source, scratch, StopToken())
    assert archive.stat().st_mtime_ns == built
    make = prepared("make", source, scratch)
    main = make.project(source) / "src" / "main.c"
    written = main.stat().st_mtime_ns
    make.prepare(source, scratch, StopToken())
    assert main.stat().st_mtime_ns == written


def test_an_interrupted_prepare_is_not_reused(source, scratch):
    entry = entry_of("git-status")
    SMALL.generate(source)
    abandoned = StopToken()
    abandoned.signal()
    abandoned.signal()
    with pytest.raises(Interrupted):
        entry.prepare(source, scratch, abandoned)
    assert not (entry.cell_dir(source) / "repo.json").exists()
    entry.prepare(source, scratch, StopToken())
    assert (entry.repository(source) / ".git" / "HEAD").is_file()


@pytest.mark.parametrize("program", ["tar-create", "read-all"])
def test_readers_read_every_byte_of_the_tree(program, source, scratch):
    entry = prepared(program, source, scratch)
    command = entry.command(source, scratch)
    assert "/dev/null" not in command.argv
    before = rchar()
    run(command)
    assert rchar() - before >= SMALL.totals()[1]


def test_cp_tree_copies_the_tree_and_reset_removes_the_copy(source, scratch):
    entry = prepared("cp-tree", source, scratch)
    before = listing(entry.cell_dir(source))
    assert before == []
    run(entry.command(source, scratch))
    assert listing(entry.cell_dir(source) / "copy") == listing(SMALL.path_in(source))
    entry.reset(source)
    assert listing(entry.cell_dir(source)) == before


def test_rm_tree_removes_the_victim_and_reset_brings_it_back(source, scratch):
    entry = prepared("rm-tree", source, scratch)
    victim = entry.cell_dir(source) / "victim"
    before = listing(entry.cell_dir(source))
    assert listing(victim) == listing(SMALL.path_in(source))
    run(entry.command(source, scratch))
    assert not victim.exists()
    entry.reset(source)
    assert listing(entry.cell_dir(source)) == before


def changes(entry: Program, source: Path) -> tuple[list[str], list[str]]:
    """The repository's files that differ in size from the tree's, and those not in the tree."""
    repo = entry.repository(source)
    tree = dict(listing(SMALL.path_in(source)))
    files = {path: size for path, size in listing(repo) if size is not None and not path.startswith(".git/")}
    return sorted(path for path in files if path in tree and files[path] != tree[path]), \
        sorted(path for path in files if path not in tree)


def test_git_status_reports_the_changes_and_writes_nothing(source, scratch):
    entry = prepared("git-status", source, scratch)
    modified, untracked = changes(entry, source)
    assert len(modified) == 6 and len(untracked) == 3
    git_dir = entry.repository(source) / ".git"
    before = snapshot(git_dir)
    lines = run(entry.command(source, scratch), keep_stdout=True).splitlines()
    assert sorted(line[3:] for line in lines if line.startswith(" M ")) == modified
    listed = [line[3:] for line in lines if line.startswith("?? ")]
    assert all(any(path == shown or shown.endswith("/") and path.startswith(shown) for shown in listed)
               for path in untracked)
    assert len(lines) == len(modified) + len(listed)
    assert snapshot(git_dir) == before


def test_git_diff_diffs_the_modified_files_and_writes_nothing(source, scratch):
    entry = prepared("git-diff", source, scratch)
    modified, _ = changes(entry, source)
    git_dir = entry.repository(source) / ".git"
    before = snapshot(git_dir)
    patch = run(entry.command(source, scratch), keep_stdout=True)
    assert re.findall(r"^diff --git a/(\S+) ", patch, re.M) == modified
    assert "Binary files" not in patch and patch.count("+changed by fusebench") == len(modified)
    assert snapshot(git_dir) == before


def test_git_repositories_are_reproducible(source, scratch):
    heads = []
    for program in ("git-status", "git-diff"):
        entry = prepared(program, source, scratch)
        heads.append((entry.repository(source) / ".git" / "refs" / "heads" / "main").read_text())
    assert heads[0] == heads[1]


def test_make_builds_and_rebuilds_everything_after_reset(source, scratch):
    entry = prepared("make", source, scratch)
    project = entry.project(source)
    assert not SMALL.path_in(source).exists()  # the tree is not used
    before = listing(project)
    assert entry.touched() == (len([size for _, size in before if size is not None]),
                               sum(size for _, size in before if size is not None))
    run(entry.command(source, scratch))
    assert (project / "program").is_file()
    assert len(list((project / "obj").glob("*.o"))) == entry.sources
    entry.reset(source)
    assert listing(project) == before
    output = run(entry.command(source, scratch), keep_stdout=True)
    assert len(re.findall(r"^gcc .* -c -o obj/", output, re.M)) == entry.sources
    assert (project / "program").is_file()
