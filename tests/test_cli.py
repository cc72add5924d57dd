"""The command line: exit statuses, file:line errors, no tracebacks (run as real processes)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main, seed

REPO = Path(__file__).resolve().parent.parent


def fusebench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


GOOD = """\
name: tiny
repeat: 2
targets:
  - {name: native, type: native}
workloads:
  - {name: seqread, rw: read, bs: 1M, size: 8M, runtime: 1s, iodepth: [1, 4], ioengine: libaio}
"""


def test_validate_ok(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    done = fusebench("validate", "s.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("s.yaml: ok: scenario tiny, 2 cells x 1 targets x 2 repetitions = 4 runs")


def test_validate_says_a_uring_target_turns_enable_uring_on_for_the_run(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD.replace("  - {name: native, type: native}\n", "  - {name: native, type: native}\n"
                                                  "  - {name: ring, type: fuse, transport: uring}\n"))
    done = fusebench("validate", "s.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FUSE over io_uring: /sys/module/fuse/parameters/enable_uring set to Y for the run" in done.stdout
    (tmp_path / "plain.yaml").write_text(GOOD)
    assert "enable_uring" not in fusebench("validate", "plain.yaml", cwd=tmp_path).stdout


def test_validate_reports_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD.replace("runtime: 1s", "runtim: 1s"))
    done = fusebench("validate", "s.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "fusebench: error: s.yaml:6: " in done.stderr
    assert "runtim" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("entry", "words"), [
    ("{name: r, program: read-all, argv: [sh, -c, 'touch /tmp/pwned']}", ["s.yaml:7: ", "unknown key 'argv'"]),
    ("{name: r, program: 'read-all; touch /tmp/pwned'}", ["s.yaml:7: ", "catalog entry"]),
    ("{name: ../../../../tmp/pwned, program: cp-tree}", ["s.yaml:7: ", "programs.0.name"]),
    ("{name: r, program: make, jobs: '2 && touch /tmp/pwned'}", ["s.yaml:7: ", "programs.0.jobs"]),
    ("{name: r, program: find-stat, tree: {files: 10, dirs: /etc}}", ["s.yaml:7: ", "programs.0.tree.dirs"]),
])
def test_a_program_entry_smuggling_a_command_or_a_path_is_refused_with_exit_2(tmp_path: Path, entry: str,
                                                                               words: list[str]) -> None:
    (tmp_path / "s.yaml").write_text(GOOD.replace("workloads:\n  - {name: seqread, rw: read, bs: 1M, size: 8M, "
                                                  "runtime: 1s, iodepth: [1, 4], ioengine: libaio}",
                                                  f"workloads: []\nprograms:\n  - {entry}"))
    done = fusebench("run", "s.yaml", "--out", "out", "--workdir", "work", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert all(word in done.stderr for word in words), done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_missing_scenario_is_bad_input_not_a_traceback(tmp_path: Path) -> None:
    for command in ("validate", "run"):
        done = fusebench(command, "nope.yaml", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("fusebench: error: nope.yaml: cannot read the scenario")
        assert "Traceback" not in done.stderr


def _laughs() -> str:
    rows = ["lol0: &lol0 [" + ", ".join(["lol"] * 10) + "]"]
    rows += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return GOOD + "description:\n" + "".join(f"  {row}\n" for row in rows)


# Each writes a hostile scenario at the path it is given (nothing of this size is committed).
HOSTILE_FILES = {
    "billion-laughs": lambda path: path.write_text(_laughs()),
    "not-utf8": lambda path: path.write_bytes(GOOD.encode() + b"description: caf\xe9\n"),
    "deep-list": lambda path: path.write_text(GOOD + "description: " + "[" * 20_000 + "]" * 20_000 + "\n"),
    "huge-scalar": lambda path: path.write_text(GOOD + "seed: " + "9" * 100_000 + "\n"),
    "huge-file": lambda path: path.write_text(GOOD + "# padding\n" * 1_000_000),
    "control-character": lambda path: path.write_text(GOOD + "description: \"\\e]0;pwned\\a\"\n"),
    "directory": lambda path: path.mkdir(),
    "fifo": lambda path: os.mkfifo(path),
}


@pytest.mark.parametrize("kind", HOSTILE_FILES)
def test_hostile_scenarios_are_refused_at_once_by_validate_and_run(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    for args, path in (
        (["validate"], tmp_path / "s.yaml"),
        (["run", "--out", "out", "--workdir", "work"], tmp_path / "s.yaml"),
        (["run", "--dry-run"], tmp_path / "s.yaml"),
        (["run", "--resume", "--out", "results"], folder / "scenario.yaml"),  # a results folder tampered with
    ):
        if not path.exists() and not path.is_fifo():
            HOSTILE_FILES[kind](path)
        began = time.monotonic()
        done = fusebench(*args, str(path), cwd=tmp_path)
        took = time.monotonic() - began
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert re.match(rf"fusebench: error: {re.escape(str(path))}:\d+: ", done.stderr), (args, done.stderr)
        assert "Traceback" not in done.stderr and took < 2.0, (args, took)
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_validate_takes_several_files_and_fails_if_one_does(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("runtime: 1s", "runtim: 1s"))
    (tmp_path / "c.yaml").write_text(GOOD.replace("name: tiny", "name: other"))
    done = fusebench("validate", "a.yaml", "b.yaml", "c.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert [line for line in done.stdout.splitlines() if ": ok: " in line] == [
        "a.yaml: ok: scenario tiny, 2 cells x 1 targets x 2 repetitions = 4 runs",
        "c.yaml: ok: scenario other, 2 cells x 1 targets x 2 repetitions = 4 runs"]
    assert done.stderr.startswith("fusebench: error: b.yaml:6: unknown key 'runtim'"), done.stderr
    assert fusebench("validate", "a.yaml", "c.yaml", cwd=tmp_path).returncode == 0


EXTERNAL = GOOD.replace("  - {name: native, type: native}\n", "  - {name: native, type: native}\n"
                        "  - {name: hp, type: external, command: [/opt/hp, -o, allow_other, '{source}', "
                        "'{mountpoint}']}\n")


def test_validate_and_dry_run_list_the_commands_started_as_root(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(EXTERNAL)
    work = tmp_path / "work"
    expected = f"target hp: /opt/hp -o allow_other {work}/source {work}/mnt-hp"
    done = fusebench("validate", "s.yaml", cwd=tmp_path)
    assert done.returncode == 0 and "target hp: /opt/hp -o allow_other /var/tmp/fusebench/tiny/source " \
        "/var/tmp/fusebench/tiny/mnt-hp" in done.stdout, done.stdout
    assert "    target hp: /opt/hp --version\n" in done.stdout, done.stdout
    done = fusebench("run", "s.yaml", "--dry-run", "--workdir", str(work), cwd=tmp_path)
    assert done.returncode == 0 and expected in done.stdout, done.stdout
    assert done.stdout.index(expected) < done.stdout.index("repetition 1:")  # before the list of runs
    assert not work.exists()


@pytest.mark.parametrize("workdir", ["/etc", "/", "/usr/local/bench", "/var/tmp"])
def test_a_system_workdir_is_refused(tmp_path: Path, workdir: str) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    for args in (["--dry-run"], ["--out", "out"]):
        done = fusebench("run", "s.yaml", "--workdir", workdir, *args, cwd=tmp_path)
        assert done.returncode == 2 and "give a directory of its own" in done.stderr, done.stderr
    (tmp_path / "w.yaml").write_text(GOOD + f"workdir: {workdir}\n")
    done = fusebench("validate", "w.yaml", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("fusebench: error: w.yaml:7: workdir: "), done.stderr
    assert not (tmp_path / "out").exists()


def test_a_repeat_that_plans_too_many_runs_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    began = time.monotonic()
    done = fusebench("run", "s.yaml", "--dry-run", "--repeat", "99999999", cwd=tmp_path)
    assert done.returncode == 2 and "more than 100,000" in done.stderr and time.monotonic() - began < 2.0


def test_a_workdir_fusebench_did_not_make_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    done = fusebench("run", "s.yaml", "--workdir", "home", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and "not made by fusebench" in done.stderr and "thesis.tex" in done.stderr
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["thesis.tex"]
    assert not (tmp_path / "out").exists()


def test_run_dry_run_prints_the_plan(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    done = fusebench("run", "s.yaml", "--dry-run", "--repeat", "3", "--seed", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "scenario tiny: 2 cells x 1 targets x 3 repetitions = 6 runs, seed 4"
    assert lines[1].startswith("estimated duration: ")
    assert "seqread_iodepth-4--native--r3" in done.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("text", ["-1", str(2**64), "0x10", "9" * 5000])
def test_a_seed_outside_0_to_2_64_is_refused(text: str) -> None:
    assert seed("0") == 0 and seed(str(2**64 - 1)) == 2**64 - 1
    with pytest.raises(argparse.ArgumentTypeError, match="is not a seed: give a whole number from 0 to 2"):
        seed(text)


def test_repeat_auto_from_the_command_line_shows_its_budget(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    done = fusebench("run", "s.yaml", "--repeat", "auto", "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 to 20 repetitions (repeat: auto)" in done.stdout
    assert fusebench("run", "s.yaml", "--repeat", "many", "--dry-run", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("manifest", ["[" * 100_000, '{"a": 1' + "0" * 5000, b"\xff", "fifo"])
def test_resume_of_a_tampered_manifest_is_refused(tmp_path: Path, manifest: str | bytes) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    path = tmp_path / "results" / "manifest.json"
    path.parent.mkdir()
    if manifest == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(manifest if isinstance(manifest, bytes) else manifest.encode())
    done = fusebench("run", "s.yaml", "--out", "results", "--resume", cwd=tmp_path)
    assert done.returncode == 2 and re.match(r"fusebench: error: \S*results/manifest.json", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_resume_needs_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    done = fusebench("run", "s.yaml", "--out", "results/none", "--resume", cwd=tmp_path)
    assert done.returncode == 2
    assert "manifest.json is missing" in done.stderr


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    done = fusebench("run", "s.yaml", "--repeat", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "not a positive number" in done.stderr
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_run_bench_py_is_the_same_program(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GOOD)
    done = subprocess.run(
        [sys.executable, str(REPO / "run_bench.py"), "validate", "s.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "ok" in done.stdout


def test_report_of_a_non_results_folder_is_bad_input(tmp_path: Path) -> None:
    done = fusebench("report", str(tmp_path), "--format", "text", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("fusebench: error: ") and "Traceback" not in done.stderr


RESULTS = REPO / "tests" / "fixtures" / "results"


def test_report_writes_a_bundle_and_a_site(tmp_path: Path) -> None:
    done = fusebench("report", str(RESULTS / "basic"), "--bundle", "basic.tar.gz", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "wrote basic.tar.gz\n"), done.stderr
    done = fusebench("report", str(RESULTS / "basic"), str(RESULTS / "basic-b"), "-o", "site", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "wrote site/index.html\n"), done.stderr
    assert sorted(path.name for path in (tmp_path / "site").iterdir()) == ["basic-b.html", "basic.html", "index.html"]


@pytest.mark.parametrize("args, message", [
    (["basic", "basic-b"], "give its folder with -o DIR"),
    (["basic", "basic-b", "-o", "site", "--format", "text"], "several results folders make a site of HTML"),
    (["basic", "basic-b", "-o", "taken"], "is not a folder"),
    (["basic", "basic-b", "-o", "-"], "is not a folder"),
    (["basic", "--bundle", "-"], "not standard output"),
    (["basic", "basic-b", "--bundle", "b.tar.gz"], "--bundle takes one results folder"),
    (["basic", "--bundle", "b.tar.gz", "-o", "r.html"], "--bundle takes one results folder"),
    (["basic", "--bundle", "taken"], "exists and is not an empty folder"),
    (["basic", "--format", "html", "--width", "72"], "--width applies to the text, markdown formats, not to html"),
    (["basic", "--format", "text", "--width", "30"], "--width 30 is too narrow"),
    (["basic", "--bundle", "b.tar.gz", "--width", "72"], "--bundle takes one results folder"),
])
def test_report_options_that_do_not_go_together_are_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "taken").write_text("mine")
    folders = [str(RESULTS / arg) if arg.startswith("basic") else arg for arg in args]
    done = fusebench("report", *folders, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("fusebench: error: ") and message in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("command", [["report", "basic"], ["compare", "basic", "basic-b", "basic-c"]])
@pytest.mark.parametrize("fmt", ["text", "markdown", "json", "csv", "html"])
def test_dash_writes_every_format_to_stdout_and_nothing_else(tmp_path: Path, command: list[str], fmt: str) -> None:
    args = [str(RESULTS / arg) if arg.startswith("basic") else arg for arg in command]
    done = fusebench(*args, "--format", fmt, "-o", "-", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert len(done.stdout) > 500 and "wrote" not in done.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["report", "basic"], ["compare", "basic", "basic-b", "basic-c"]])
def test_width_72_for_a_mail(tmp_path: Path, command: list[str]) -> None:
    args = [str(RESULTS / arg) if arg.startswith("basic") else arg for arg in command]
    done = fusebench(*args, "--format", "text", "--width", "72", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) > 40 and max(map(len, lines)) <= 72 and done.stdout.isascii()
    assert list(tmp_path.iterdir()) == []  # text without -o: standard output


def test_mount_delegates_to_the_builtin_server(tmp_path: Path) -> None:
    done = fusebench("mount", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--mode" in done.stdout


@pytest.mark.parametrize("command", ["doctor", "validate", "run", "report", "compare", "mount"])
def test_every_command_helps_with_a_description_examples_and_exit_statuses(tmp_path: Path, command: str) -> None:
    done = fusebench(command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith(f"usage: fusebench {command} ")
    assert "examples:" in text and f"fusebench {command} " in text.split("examples:")[1]
    assert "exit status:" in text and "\n  0 " in text and "\n  2 " in text
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 8, description  # a sentence, not the usage again


def test_notices_go_to_stderr_and_data_to_stdout_when_piped(tmp_path: Path) -> None:
    """`run --dry-run` prints its plan on stdout even into a pipe (a real run's progress goes to
    stderr then: tests/test_runner.py)."""
    (tmp_path / "s.yaml").write_text(GOOD)
    done = fusebench("run", str(tmp_path / "s.yaml"), "--dry-run", "--workdir", str(tmp_path / "w"), cwd=tmp_path)
    assert done.returncode == 0 and "runs" in done.stdout and done.stderr == "", done.stderr
