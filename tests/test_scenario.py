"""bench.scenario: validation with file:line errors, sweeps, units, shipped scenarios."""

import os
import re
import textwrap
import time
from pathlib import Path

import pytest

from bench.errors import InputError
from bench.programs import CATALOG
from bench.scenario import (
    ScenarioError,
    cell_key,
    load_scenario,
    needs_uring,
    parse_scenario,
)
from bench.vocabulary import FIO, OPENS

REPO = Path(__file__).resolve().parent.parent
HEAD = """\
name: t
targets:
  - {name: native, type: native}
  - {name: fuse, type: fuse}
"""


def workload(body: str) -> str:
    """HEAD plus one workload whose keys are `body` (one per line)."""
    return HEAD + "workloads:\n  - name: w\n" + textwrap.indent(textwrap.dedent(body), "    ")


# (id, YAML, words the message must contain). The line marked `# <-` is where the error must point.
BAD = [
    ("unknown-key", workload("rw: read\nblocksiz: 4k  # <-\n"), ["'blocksiz'", "did you mean 'bs'"]),
    ("unknown-top-key", HEAD + "workloads: []\nrepaet: 3  # <-\n", ["'repaet'", "did you mean 'repeat'"]),
    ("unknown-target-key", "name: t\ntargets:\n  - name: f\n    type: fuse\n    thread: 2  # <-\nworkloads: [{name: w, rw: read}]\n", ["'thread'", "did you mean 'threads'"]),
    ("wrong-type", workload("rw: read\niodepth: lots  # <-\n"), ["iodepth", "valid integer", "'lots'"]),
    ("wrong-type-bool", workload("rw: read\nend_fsync: maybe  # <-\n"), ["end_fsync", "boolean"]),
    ("out-of-range", workload("rw: read\nnumjobs: 0  # <-\n"), ["numjobs", "greater than or equal to 1"]),
    ("out-of-range-in-sweep", workload("rw: read\niodepth: [1, 9999]  # <-\nioengine: libaio\n"), ["iodepth.1", "less than or equal to 4096"]),
    ("bad-size", workload("rw: read\nsize: 12XB  # <-\n"), ["size", "'12XB' is not a size"]),
    ("size-too-small", workload("rw: read\nsize: 1k  # <-\n"), ["size", "4096"]),
    ("size-too-large", workload("rw: read\nsize: 2T  # <-\n"), ["size", "less than or equal to 1099511627776"]),
    ("bad-duration", workload("rw: read\nruntime: 3 fortnights  # <-\n"), ["runtime", "not a duration"]),
    ("zero-duration", workload("rw: read\nruntime: 0s  # <-\n"), ["runtime", "greater than 0"]),
    ("bad-log-interval", workload("rw: read\nlog_interval: often  # <-\n"), ["log_interval", "not a duration"]),
    ("log-interval-too-long", workload("rw: read\nlog_interval: 2m  # <-\n"), ["log_interval", "less than or equal to 60"]),
    ("bad-rw", workload("rw: readd  # <-\n"), ["rw", "'read'"]),
    ("missing-rw", workload("bs: 4k\n").replace("  - name: w", "  - name: w  # <-"), ["rw", "required"]),
    ("bad-target-type", "name: t\ntargets:\n  - name: n\n    type: nfs  # <-\nworkloads: [{name: w, rw: read}]\n", ["targets.0", "native, fuse, passthrough, external"]),
    ("duplicate-target-name", HEAD + "  - {name: fuse, type: passthrough}  # <-\nworkloads: [{name: w, rw: read}]\n", ["targets.2.name", "two targets are named 'fuse'"]),
    ("duplicate-workload-name", HEAD + "workloads:\n  - {name: w, rw: read}\n  - {name: w, rw: write}  # <-\n", ["workloads.1.name", "two workloads"]),
    ("external-without-mountpoint", "name: t\ntargets:\n  - name: hp\n    type: external\n    command: [hp, '{source}']  # <-\nworkloads: [{name: w, rw: read}]\n", ["command", "{mountpoint}"]),
    ("external-unknown-placeholder", "name: t\ntargets:\n  - name: hp\n    type: external\n    command: [hp, '{mountpoint}', '{home}']  # <-\nworkloads: [{name: w, rw: read}]\n", ["command", "{home}"]),
    ("passthrough-keep-cache", "name: t\ntargets:\n  - {name: p, type: passthrough, keep_cache: true}  # <-\nworkloads: [{name: w, rw: read}]\n", ["targets.0", "keep_cache"]),
    ("passthrough-direct-io", "name: t\ntargets:\n  - {name: p, type: passthrough, direct_io: true}  # <-\nworkloads: [{name: w, rw: read}]\n", ["targets.0", "direct_io"]),
    ("iodepth-with-psync", workload("rw: randread\niodepth: 8  # <-\n"), ["iodepth", "async ioengine", "psync"]),
    ("iodepth-sweep-with-sync", workload("rw: randread\nioengine: sync\niodepth: [1, 32]  # <-\n"), ["iodepth", "iodepth=32"]),
    ("size-not-multiple-of-bs", workload("rw: read\nbs: 1M\nsize: 1536k  # <-\n"), ["size", "not a multiple of bs 1m"]),
    ("rwmixread-on-read", workload("rw: read\nrwmixread: 70  # <-\n"), ["rwmixread", "randrw"]),
    ("openfiles-above-nrfiles", workload("rw: read\nnrfiles: 2\nopenfiles: 3  # <-\n"), ["openfiles", "nrfiles"]),
    ("fd-pressure-unknown-target", HEAD + "fd_pressure:\n  targets: [fuse, passthru]  # <-\n  open_files: [10]\n", ["fd_pressure.targets.1", "'passthru'"]),
    ("fd-pressure-target-twice", HEAD + "fd_pressure:\n  targets: [fuse, {name: fuse, release: [unmount, drop_caches]}]  # <-\n  open_files: [10]\n", ["fd_pressure.targets.1", "N=10 with release drop_caches a second time"]),
    ("fd-pressure-n-twice", HEAD + "fd_pressure:\n  targets: [fuse]\n  open_files: [10, 10]  # <-\n", ["fd_pressure.open_files", "10 is listed twice"]),
    ("fd-pressure-client-nofile", HEAD + "fd_pressure:\n  targets: [fuse]\n  open_files: [10]\n  client_nofile: 16  # <-\n", ["client_nofile", "greater than or equal to 64"]),
    ("nothing-to-do", HEAD.replace("name: t", "name: t  # <-"), ["workloads, opens, programs or fd_pressure"]),
    ("invalid-yaml", workload("rw: read\nbs: [4k, 8k  # <-\n"), ["not valid YAML"]),
    ("invalid-yaml-tab", HEAD + "workloads:\n\t- {name: w}  # <-\n", ["not valid YAML"]),
    ("empty-file", "# <-\n", ["a scenario is a mapping"]),
    ("not-a-mapping", "- just a list  # <-\n", ["a scenario is a mapping"]),
    ("duplicate-key", workload("rw: read\nbs: 4k\nbs: 8k  # <-\n"), ["'bs'", "twice"]),
    ("python-tag", workload("rw: !!python/name:os.system read  # <-\n"), ["not valid YAML"]),
    ("fio-option-exec_prerun", workload("rw: read\nexec_prerun: touch /tmp/pwned  # <-\n"), ["'exec_prerun'", "unknown key"]),
    ("fio-option-filename", workload("rw: read\nfilename: /dev/sda  # <-\n"), ["'filename'", "unknown key"]),
    ("fio-option-directory", workload("rw: read\ndirectory: /etc  # <-\n"), ["'directory'", "unknown key"]),
    ("fio-option-ioengine-external", workload("rw: read\nioengine: external:/tmp/x.so  # <-\n"), ["ioengine", "'libaio'"]),
    ("fio-option-ioengine-exec", workload("rw: read\nioengine: exec  # <-\n"), ["ioengine"]),
    ("fio-option-ioengine-sg", workload("rw: read\nioengine: sg  # <-\n"), ["ioengine"]),
    ("metadata-engine-with-rw", workload("ioengine: filestat\nnrfiles: 10\nrw: randread  # <-\n"), ["rw does not apply", "leave rw out"]),
    ("metadata-engine-direct", workload("ioengine: filestat\nnrfiles: 10\ndirect: true  # <-\n"), ["direct", "one operation per file"]),
    ("metadata-create-warm", workload("ioengine: filecreate\nnrfiles: 10\ncache: warm  # <-\n"), ["changes the tree", "cache: cold"]),
    ("metadata-jobs-split", workload("ioengine: filedelete\nnrfiles: 10\nnumjobs: 4  # <-\n"), ["not a multiple of numjobs 4"]),
    ("stat-type-elsewhere", workload("rw: read\nstat_type: lstat  # <-\n"), ["stat_type only applies to ioengine filestat"]),
    ("bad-stat-type", workload("ioengine: filestat\nstat_type: fstat  # <-\n"), ["stat_type", "'statx'"]),
    ("opens-unknown-key", HEAD + "opens:\n  - name: o\n    filez: 10  # <-\n", ["'filez'", "did you mean 'files'"]),
    ("opens-and-workload-same-name", HEAD + "workloads: [{name: w, rw: read}]\nopens:\n  - {name: w}  # <-\n", ["opens.0.name", "unique across workloads, opens and programs"]),
    ("program-unknown", HEAD + "programs:\n  - {name: p, program: tar}  # <-\n", ["programs.0", "catalog entry", "tar-extract"]),
    ("program-missing", HEAD + "programs:\n  - {name: p}  # <-\n", ["programs.0", "catalog entry"]),
    ("program-parameter-typo", HEAD + "programs:\n  - program: make\n    name: m\n    jobz: 4  # <-\n", ["'jobz'", "did you mean 'jobs'"]),
    ("program-parameter-range", HEAD + "programs:\n  - program: make\n    name: m\n    jobs: 0  # <-\n", ["programs.0.jobs", "greater than or equal to 1"]),
    ("program-tree-typo", HEAD + "programs:\n  - program: find-stat\n    name: f\n    tree: {files: 10, dirz: 2}  # <-\n", ["'dirz'", "did you mean 'dirs'"]),
    ("program-tree-median-above-max", HEAD + "programs:\n  - program: find-stat\n    name: f\n    tree: {median_size: 1M, max_size: 64k}  # <-\n", ["programs.0.tree.median_size", "larger than max_size"]),
    ("program-timeout-zero", HEAD + "programs:\n  - program: find-stat\n    name: f\n    timeout: 0s  # <-\n", ["programs.0.timeout", "greater than 0"]),
    ("metadata-openfiles-above-nrfiles", workload("ioengine: filestat\nnrfiles: 10\nopenfiles: 20  # <-\n"), ["openfiles cannot exceed nrfiles"]),
    ("program-warm-but-mutating", HEAD + "programs:\n  - program: rm-tree\n    name: r\n    cache: warm  # <-\n", ["changes files", "cache: cold"]),
    ("program-smuggles-a-command", HEAD + "programs:\n  - program: find-stat\n    name: f\n    argv: [sh, -c, 'rm -rf /']  # <-\n", ["unknown key 'argv'"]),
    ("program-smuggles-a-path-in-its-name", HEAD + "programs:\n  - program: cp-tree\n    name: ../../../etc  # <-\n", ["programs.0.name", "pattern"]),
    ("program-smuggles-a-path-as-its-tree", HEAD + "programs:\n  - program: read-all\n    name: r\n    tree: /etc  # <-\n", ["programs.0.tree"]),
    ("fio-name-injection", "name: t\ntargets: [{name: n, type: native}]\nworkloads:\n  - name: 'w:$HOME'  # <-\n    rw: read\n", ["workloads.0.name", "pattern"]),
]


@pytest.mark.parametrize(("text", "words"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_scenarios_name_file_line_and_key(text, words):
    expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    message = str(info.value)
    assert message.startswith(f"bad.yaml:{expected_line}: "), message
    for word in words:
        assert word in message, message
    assert isinstance(info.value, InputError) and info.value.exit_code == 2


def test_sweep_union_reports_only_the_branch_the_input_took():
    with pytest.raises(ScenarioError) as info:
        parse_scenario(workload("rw: read\nbs: 3x\n"), "s.yaml")
    message = str(info.value)
    assert message.count("\n") == 0, message  # one error, not one per union branch
    assert "list" not in message and "function-" not in message


def test_every_error_is_reported_with_its_own_line():
    text = workload("rw: read\nnumjobs: 0\nbs: 3x\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    lines = str(info.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == ["s.yaml:8", "s.yaml:9"]


def test_sweeps_expand_to_every_combination_in_file_order():
    scenario = parse_scenario(workload("rw: [randread, randwrite]\nbs: 4k\niodepth: [1, 32]\nioengine: libaio\n"))
    cells = scenario.cells()
    assert [(c.rw, c.iodepth) for c in cells] == [("randread", 1), ("randread", 32), ("randwrite", 1), ("randwrite", 32)]
    assert cells[1].sweep == {"rw": "randread", "iodepth": 32}
    assert [cell_key(c) for c in cells] == [
        "w_rw-randread_iodepth-1", "w_rw-randread_iodepth-32", "w_rw-randwrite_iodepth-1", "w_rw-randwrite_iodepth-32",
    ]
    assert all(c.bs == 4096 and c.ioengine == "libaio" for c in cells)


def test_cell_key_spells_sizes_like_fio():
    cells = parse_scenario(workload("rw: read\nbs: [4k, 1M]\nsize: 2M\n")).cells()
    assert [cell_key(c) for c in cells] == ["w_bs-4k", "w_bs-1m"]


def test_unswept_workload_is_one_cell_keyed_by_name():
    (cell,) = parse_scenario(workload("rw: read\n")).cells()
    assert cell_key(cell) == "w" and cell.sweep == {}


def test_units_and_defaults_reach_the_cell():
    (cell,) = parse_scenario(workload("rw: read\nbs: 1M\nsize: 1G\nruntime: 1.5m\nramp_time: 500ms\n")).cells()
    assert (cell.bs, cell.size, cell.runtime, cell.ramp_time) == (1 << 20, 1 << 30, 90.0, 0.5)
    assert (cell.ioengine, cell.iodepth, cell.numjobs, cell.nrfiles, cell.direct, cell.cache) == ("psync", 1, 1, 1, False, "cold")


@pytest.mark.parametrize(("value", "interval"), [("auto", 0.25), ("500ms", 0.5), ("2", 2.0), ("0", None)])
def test_log_interval_reaches_the_cell(value, interval):
    (cell,) = parse_scenario(workload(f"rw: read\nruntime: 5s\nlog_interval: {value}\n")).cells()
    assert cell.log_interval_s() == interval


def test_one_bad_sweep_cell_rejects_the_workload_even_if_others_are_fine():
    with pytest.raises(ScenarioError, match=r"psync does one I/O at a time \(in the sweep cell ioengine=psync\)"):
        parse_scenario(workload("rw: randread\nioengine: [libaio, psync]\niodepth: 32\n"))


def test_targets_and_external_argv():
    scenario = parse_scenario(
        "name: t\ntargets:\n  - {name: hp, type: external, command: [hp, '{source}', '{mountpoint}', -o, 'x={source}']}\n"
        "workloads: [{name: w, rw: read}]\n"
    )
    target = scenario.target("hp")
    assert target.argv(Path("/src"), Path("/mnt")) == ["hp", "/src", "/mnt", "-o", "x=/src"]


@pytest.mark.parametrize("name", ["quick.yaml", "perf.yaml", "metadata.yaml", "apps.yaml", "transport.yaml"])
def test_shipped_scenarios_load(name):
    scenario = load_scenario(REPO / "scenarios" / name)
    assert scenario.cells()
    assert {t.type for t in scenario.targets} >= {"native", "fuse", "passthrough"}


def test_transport_yaml_runs_each_builtin_mode_over_both_transports_and_its_external_example_validates():
    path = REPO / "scenarios" / "transport.yaml"
    scenario = load_scenario(path)
    assert [(t.type, getattr(t, "transport", None)) for t in scenario.targets] == [
        ("native", None), ("fuse", "dev"), ("fuse", "uring"), ("fuse", "uring"), ("passthrough", "dev"),
        ("passthrough", "uring")]
    assert scenario.target("fuse-uring-poll").ring_poll == 50e-6
    assert scenario.needs_uring()
    assert {"filecreate", "libaio", "psync"} <= {c.ioengine for c in scenario.cells() if c.family == FIO}
    assert [c.name for c in scenario.cells() if c.family == OPENS] == ["open-close-1k"]
    # The commented external example is valid once uncommented.
    text = re.sub(r"^  # (- \{name: hp-uring|   command:)", r"  \1", path.read_text(), flags=re.MULTILINE)
    hp = parse_scenario(text, str(path)).target("hp-uring")
    assert hp.needs_uring and hp.command[1:3] == ["-o", "io_uring"]


@pytest.mark.parametrize(("target", "needed"), [
    ("{name: n, type: native}", False),
    ("{name: f, type: fuse}", False),
    ("{name: f, type: fuse, transport: uring}", True),
    ("{name: p, type: passthrough, transport: uring}", True),
    ("{name: p, type: passthrough, transport: dev}", False),
    ("{name: hp, type: external, command: [hp, '{mountpoint}']}", False),
    ("{name: hp, type: external, needs_uring: true, command: [hp, '{mountpoint}']}", True),
])
def test_a_scenario_needs_uring_when_a_target_does(target: str, needed: bool):
    scenario = parse_scenario(f"name: t\ntargets:\n  - {{name: base, type: native}}\n  - {target}\n"
                              "workloads: [{name: w, rw: read}]\n")
    assert needs_uring(scenario.targets[1]) is needed
    assert scenario.needs_uring() is needed


@pytest.mark.parametrize(("target", "words"), [
    ("{name: hp, type: external, needs_uring: maybe, command: [hp, '{mountpoint}']}",
     ["targets.0.needs_uring", "valid boolean"]),
    ("{name: hp, type: external, needs_urin: true, command: [hp, '{mountpoint}']}", ["did you mean 'needs_uring'"]),
    ("{name: f, type: fuse, transport: ring}", ["targets.0.transport", "'dev' or 'uring'"]),
])
def test_a_bad_transport_key_names_its_line_and_the_fix(target: str, words: list[str]):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(f"name: t\ntargets:\n  - {target}\nworkloads: [{{name: w, rw: read}}]\n", "u.yaml")
    message = str(info.value)
    assert message.startswith("u.yaml:3: "), message
    for word in words:
        assert word in message, message


def test_quick_yaml_cells():
    scenario = load_scenario(REPO / "scenarios" / "quick.yaml")
    assert scenario.name == "quick"
    assert [cell_key(c) for c in scenario.cells()] == ["seqread-1m", "randread-4k", "seqwrite-1m", "randwrite-4k",
                                                       "stat-10k", "git-status"]
    assert [c.family for c in scenario.cells()][-2:] == ["fio", "program"]


def test_the_family_scenarios_cover_every_family_and_the_whole_catalog():
    metadata = load_scenario(REPO / "scenarios" / "metadata.yaml")
    engines = {c.ioengine for c in metadata.cells() if c.family == "fio"}
    assert {"filecreate", "filestat", "filedelete", "mmap"} <= engines and metadata.opens
    assert {t.fd_policy for t in metadata.targets if t.type == "passthrough"} == {"keep", "close", "cache"}
    apps = load_scenario(REPO / "scenarios" / "apps.yaml")
    assert sorted(p.program for p in apps.programs) == sorted(CATALOG)


def test_load_scenario_unreadable_file(tmp_path):
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_load_scenario_names_the_path(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(workload("rw: read\nbs: 0\n"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:8: workloads.0.bs")


# ---------------------------------------------------------------- hostile files, merge keys, defaults


def _laughs(levels: int) -> str:
    """A "billion laughs": each anchor lists the previous one ten times (10 ** levels values); the
    expansion passes 10,000 values at the fourth (marked)."""
    rows = ["lol0: &lol0 [" + ", ".join(["lol"] * 10) + "]"]
    rows += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]" + ("  # <-" if i == 3 else "")
             for i in range(1, levels)]
    return "\n".join(rows) + "\n"


SWEEP_100 = "[" + ", ".join(str(n) for n in range(1, 101)) + "]"
# (id, YAML, words). The line marked `# <-` is where the error must point; each is refused within a second.
HOSTILE = [
    ("billion-laughs", HEAD + "workloads: [{name: w, rw: read}]\ndescription:\n" + textwrap.indent(_laughs(9), "  "),
     ["more than 10,000 values", "alias"]),
    ("alias-loop", HEAD + "workloads: [{name: w, rw: read}]\ndescription: &a [x, *a]  # <-\n", ["a loop"]),
    ("merge-loop", HEAD + "workloads:\n  - &w {name: w, rw: read, <<: *w}  # <-\n", ["a loop"]),
    ("values-written-out", HEAD + "workloads: [{name: w, rw: read}]\ndescription: [" + "1, " * 20_000 + "1]  # <-\n",
     ["more than 10,000 values"]),
    ("deep-list", HEAD + "workloads: [{name: w, rw: read}]\ndescription: " + "[" * 5000 + "]" * 5000 + "  # <-\n",
     ["nested deeper than 32 levels"]),
    ("deep-map", HEAD + "workloads: [{name: w, rw: read}]\ndescription: " + "{a: " * 3000 + "1" + "}" * 3000 + " # <-\n",
     ["nested deeper than 32 levels"]),
    ("deep-through-aliases", HEAD + "workloads: [{name: w, rw: read}]\ndescription:\n  - &x " + "[" * 20 + "1"
     + "]" * 20 + "\n  - " + "[" * 20 + "*x" + "]" * 20 + "  # <-\n", ["nested deeper than 32 levels"]),
    ("huge-scalar", HEAD + "workloads: [{name: w, rw: read}]\nseed: " + "9" * 100_000 + "  # <-\n",
     ["100,000 characters", "at most 4,096"]),
    ("huge-hex-seed", HEAD + "workloads: [{name: w, rw: read}]\nseed: 0x10000000000000000  # <-\n",
     ["seed", "less than 18446744073709551616"]),
    ("negative-seed", HEAD + "workloads: [{name: w, rw: read}]\nseed: -1  # <-\n", ["seed", "greater than or equal to 0"]),
    ("raw-control-character", HEAD + "workloads: [{name: w, rw: read}]\ndescription: a\x1b[2Jb  # <-\n",
     ["U+001B", "remove it"]),
    ("escaped-control-character", HEAD + "workloads: [{name: w, rw: read}]\ndescription: \"a\\x00b\"  # <-\n",
     ["U+0000"]),
    ("bidi-override-in-a-command", "name: t\ntargets:\n  - name: hp\n    type: external\n"
     "    command: [hp, \"\\u202e{mountpoint}\"]  # <-\nworkloads: [{name: w, rw: read}]\n",
     ["U+202E", "RIGHT-TO-LEFT OVERRIDE"]),
    ("yaml-noncharacter", HEAD + "workloads: [{name: w, rw: read}]\ndescription: a\uffffb  # <-\n",
     ["U+FFFF", "not allowed in YAML"]),
    ("bad-timestamp", HEAD + "workloads: [{name: w, rw: read}]\ndescription: 2024-13-45  # <-\n",
     ["'2024-13-45' cannot be read", "quote it"]),
    ("collection-tag", HEAD + "workloads: !!omap [{w: 1}]  # <-\n", ["tag", "not supported"]),
    ("sweeps-multiply", HEAD + f"workloads:\n  - name: w  # <-\n    rw: read\n    iodepth: {SWEEP_100}\n"
     f"    numjobs: {SWEEP_100}\n    ioengine: libaio\n", ["more than 2,000 cells"]),
    ("runs-multiply", HEAD.replace("name: t", "name: t\nrepeat: 1000  # <-") + "workloads:\n  - name: w\n"
     f"    rw: read\n    iodepth: {SWEEP_100}\n    ioengine: libaio\n", ["200,000 runs", "more than 100,000"]),
    ("workdir-etc", HEAD + "workloads: [{name: w, rw: read}]\nworkdir: /etc  # <-\n",
     ["workdir", "/etc is a system directory"]),
    ("workdir-below-usr", HEAD + "workloads: [{name: w, rw: read}]\nworkdir: /usr/local/bench  # <-\n",
     ["inside the system directory /usr"]),
    ("workdir-root", HEAD + "workloads: [{name: w, rw: read}]\nworkdir: /  # <-\n", ["share"]),
]


@pytest.mark.parametrize(("text", "words"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_scenarios_are_refused_within_a_second_at_their_line(text, words):
    expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)
    began = time.monotonic()
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert time.monotonic() - began < 1.0
    message = str(info.value)
    assert message.startswith(f"bad.yaml:{expected_line}: "), message
    assert all(word in message for word in words), message


def test_an_anchored_string_used_through_many_aliases_is_read_once():
    text = (HEAD + "workloads: [{name: w, rw: read}]\ndescription: [&a \"" + "\u00e9" * 4000 + "\""
            + ", *a" * 9900 + "]\n")
    began = time.monotonic()
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert time.monotonic() - began < 1.0
    assert str(info.value).startswith("bad.yaml:6: description: Input should be a valid string (got [")
    assert len(str(info.value)) < 1000


def test_errors_are_at_most_20_per_file_and_quote_values_cut_short():
    long_name = "k" * 1000
    keys = "".join(f"    {long_name}{index}: 1\n" for index in range(100))
    with pytest.raises(ScenarioError) as info:
        parse_scenario(HEAD + "workloads:\n  - name: w\n    rw: read\n" + keys, "bad.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 21 and lines[-1] == "... and 80 more"
    assert lines[0].startswith("bad.yaml:8: unknown key 'kkk") and max(map(len, lines)) < 400


@pytest.mark.parametrize("text", [
    HEAD + "workloads: [{name: w, rw: read}]\ndescription: *" + "a" * 3000 + "\n",
    HEAD + "workloads: !" + "t" * 3000 + " [{name: w, rw: read}]\n",
    "name: t\ntargets:\n  - {name: hp, type: external, command: [hp, '{mountpoint}', '{" + "x" * 3000 + "}']}\n"
    "workloads: [{name: w, rw: read}]\n",
])
def test_long_names_and_values_are_cut_short_in_messages(text: str):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert "..." in str(info.value) and len(str(info.value)) < 300, str(info.value)


@pytest.mark.parametrize("key", [".nan", "~", "yes", "1", "2024-01-01"])
def test_a_key_that_is_not_a_word_is_refused_at_its_line(key: str):
    for text in (HEAD + "workloads: [{name: w, rw: read}]\n\n" + key + ": 2  # <-\n",
                 HEAD + "workloads:\n  - name: w\n    rw: read\n\n    " + key + ": 2  # <-\n"):
        expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)
        with pytest.raises(ScenarioError, match=rf"^bad.yaml:{expected_line}: key '{key}' is read as .*quote it"):
            parse_scenario(text, "bad.yaml")


@pytest.mark.parametrize(("content", "words"), [
    (b"name: t\n" + b"# padding\n" * 20_000, ["larger than 128 KiB"]),
    (b"name: t\ndescription: caf\xe9\n", [":2: byte 0xe9 is not UTF-8"]),
])
def test_files_too_large_or_not_utf8_are_refused_at_their_line(tmp_path: Path, content: bytes, words) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:") and all(word in str(info.value) for word in words), info.value


def test_a_directory_or_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer
    for path, kind in ((tmp_path, "a directory"), (fifo, "a FIFO")):
        began = time.monotonic()
        with pytest.raises(ScenarioError, match=f"^{path}:1: not a scenario file: it is {kind}"):
            load_scenario(path)
        assert time.monotonic() - began < 1.0


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + "workloads: [{name: w, rw: read}]\n").encode())
    assert load_scenario(path).name == "t"


MERGED = HEAD + """\
defaults: &common
  rw: randread
  bs: 4k
  size: 8M
workloads:
  - {name: a}
  - {name: b, bs: 64k}
  - <<: *common
    name: c
    ioengine: libaio
    iodepth: [1, 8]
"""


def test_merge_keys_and_defaults_fill_workloads_and_their_own_keys_win():
    cells = {cell_key(cell): cell for cell in parse_scenario(MERGED).cells()}
    assert list(cells) == ["a", "b", "c_iodepth-1", "c_iodepth-8"]
    assert (cells["a"].rw, cells["a"].bs, cells["a"].size) == ("randread", 4096, 8 << 20)
    assert cells["b"].bs == 64 << 10 and cells["c_iodepth-8"].iodepth == 8


def test_merge_keys_follow_yaml_precedence():
    text = HEAD + ("workloads:\n  - &x {name: x, rw: read, bs: 8k}\n  - &y {name: y, rw: write, bs: 16k, size: 16M}\n"
                   "  - {<<: [*x, *y], name: z}\n")
    z = parse_scenario(text).cells()[-1]
    assert (z.rw, z.bs, z.size) == ("read", 8 << 10, 16 << 20)  # the first listed mapping wins


@pytest.mark.parametrize(("change", "line", "words"), [
    ("  bs: 4k\n", "  bs: 3x\n", ["defaults.bs", "'3x' is not a size"]),
    ("  bs: 4k\n", "  bs: 4k\n  blocksiz: 8k\n", ["defaults.blocksiz", "did you mean 'bs'"]),
    ("  size: 8M\n", "  size: 6k\n", ["defaults.size: size 6k is not a multiple of bs 4k (for workload a)"]),
    ("  rw: randread\n", "  rw: randread\n  name: x\n", ["defaults.name", "unknown key"]),
])
def test_errors_in_defaults_point_at_the_defaults(change: str, line: str, words: list[str]):
    text = MERGED.replace(change, line[:-1] + "  # <-\n")  # the marker on the last line of `line`
    expected_line = next(i for i, row in enumerate(text.splitlines(), 1) if "# <-" in row)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    message = str(info.value)
    assert message.startswith(f"s.yaml:{expected_line}: "), message
    assert all(word in message for word in words), message


def test_an_error_inside_a_merged_anchor_points_where_it_is_written():
    text = HEAD + "workloads:\n  - &base {name: a, rw: read, bs: 3x}  # <-\n  - {<<: *base, name: b}\n"
    with pytest.raises(ScenarioError, match=r"^s\.yaml:6: workloads\.0\.bs"):
        parse_scenario(text, "s.yaml")
