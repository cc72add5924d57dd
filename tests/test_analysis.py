"""bench.analysis against fixture results folders whose answers were worked out by hand
(tests/fixtures/results/make_fixtures.py explains the figures)."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench import analysis
from bench.analysis import Settings
from bench.analysis.compare import PRIMARY, compare_folders
from bench.analysis.findings import missing_runs
from bench.analysis.load import transports
from bench.errors import InputError
from bench.fio_output import read_fio_output
from bench.percentile import percentiles

FIXTURES = Path(__file__).parent / "fixtures" / "results"
BASIC = FIXTURES / "basic"
BASIC_B = FIXTURES / "basic-b"


@pytest.fixture(scope="module")
def basic() -> analysis.Analysis:
    return analysis.analyse(analysis.load(BASIC))


def row(result: analysis.Analysis, cell: str, target: str):
    frame = result.summary
    return frame[(frame["cell"] == cell) & (frame["target"] == target)].iloc[0]


def test_not_a_results_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a results folder"):
        analysis.load(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        analysis.load(tmp_path / "nowhere")


def test_unreadable_manifest_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest"):
        analysis.load(tmp_path)


@pytest.mark.parametrize(("section", "rw", "bs", "metric"), [
    ("block I/O", "read", "4k", "bw_mib_s"), ("block I/O", "randread", "4k", "iops"),
    ("block I/O", "randread", "1M", "bw_mib_s"), ("mmap", "randwrite", "64k", "bw_mib_s"),
    ("small files", "randrw", "16k", "iops"), ("block I/O", "write", None, "bw_mib_s"),
    ("metadata", "read", "4k", "ops_s"), ("open/close", None, None, "opens_s"), ("programs", None, None, "seconds"),
])
def test_primary_metric(section: str, rw: str | None, bs: str | None, metric: str) -> None:
    assert analysis.primary_metric(section, rw, bs) == metric


@pytest.mark.parametrize(("family", "ioengine", "nrfiles", "section"), [
    (None, "psync", 1, "block I/O"), ("fio", "libaio", 99, "block I/O"), ("fio", "psync", 100, "small files"),
    ("fio", "mmap", 1000, "mmap"), ("fio", "filestat", 5000, "metadata"), ("opens", None, None, "open/close"),
    ("program", None, None, "programs"),
])
def test_every_run_has_one_section(family, ioengine, nrfiles, section) -> None:
    from bench.analysis.load import section_of

    assert section_of(family, ioengine, nrfiles) == section


def test_known_speedup_and_interval(basic: analysis.Analysis) -> None:
    passthrough = row(basic, "seqread-1m", "passthrough")
    assert passthrough["n"] == 3
    assert passthrough["median"] == 2000
    # 3 runs: the median's interval is [min, max], which covers 75%, and says so
    assert (passthrough["ci_low"], passthrough["ci_high"], passthrough["ci_level"]) == (1980, 2020, 0.75)
    # against plain: ratio of geometric means with Welch's t-interval on logs (scipy as the reference)
    new, base = np.log([1980, 2000, 2020]), np.log([490, 500, 510])
    reference = stats.ttest_ind(new, base, equal_var=False).confidence_interval(0.95)
    assert passthrough["vs_plain_ratio"] == pytest.approx(np.exp(new.mean() - base.mean()))
    assert passthrough["vs_plain_ratio_low"] == pytest.approx(np.exp(reference.low))
    assert passthrough["vs_plain_ratio_high"] == pytest.approx(np.exp(reference.high))
    assert passthrough["vs_plain_verdict"] == "faster" and passthrough["vs_plain_significant"]
    assert passthrough["vs_baseline_ratio"] == pytest.approx(1.0, abs=0.01)
    assert passthrough["vs_baseline_verdict"] == "equivalent"
    assert row(basic, "seqread-1m", "fuse")["vs_baseline_ratio"] == pytest.approx(0.25, abs=0.001)
    assert row(basic, "seqread-1m", "fuse")["vs_baseline_verdict"] == "slower"


def test_descriptive_statistics(basic: analysis.Analysis) -> None:
    fuse = row(basic, "randread-4k", "fuse")
    assert (fuse["mean"], fuse["stdev"], fuse["min"], fuse["max"]) == (9000, 1000, 8000, 10000)
    assert fuse["cov"] == pytest.approx(1 / 9)


def test_not_engaged_and_failed_runs_are_left_out(basic: analysis.Analysis) -> None:
    randread = row(basic, "randread-4k", "passthrough")
    assert (randread["n"], randread["excluded"], randread["median"]) == (2, 1, 15475)
    seqwrite = row(basic, "seqwrite-1m", "passthrough")
    assert (seqwrite["n"], seqwrite["failed"]) == (2, 1)
    missing = row(basic, "randwrite-4k", "passthrough")
    assert (missing["n"], missing["missing"]) == (0, 3)
    assert np.isnan(missing["median"])


def test_missing_runs_of_an_interrupted_run(basic: analysis.Analysis) -> None:
    missing = missing_runs(basic.results)
    got = sorted(zip(missing["cell"], missing["target"], missing["repetition"]))
    assert got == [("randwrite-4k", "fuse", 2), ("randwrite-4k", "fuse", 3),
                   ("randwrite-4k", "passthrough", 1), ("randwrite-4k", "passthrough", 2),
                   ("randwrite-4k", "passthrough", 3)]


def test_findings(basic: analysis.Analysis) -> None:
    where = {(f.kind, f.cell, f.target) for f in basic.findings}
    assert ("noisy", "randread-4k", "fuse") in where
    assert ("not_engaged", "randread-4k", "passthrough") in where
    assert ("failed", "seqwrite-1m", "passthrough") in where
    assert ("missing", "randwrite-4k", "passthrough") in where
    assert ("faster_than_native", "seqwrite-1m", "fuse") in where
    assert ("note", "", "") in where  # the interrupted status
    assert ("few_repetitions", "", "") in where  # n = 3: [min, max] covers 75%
    # nothing else is noisy or faster than native
    assert [f.target for f in basic.findings if f.kind == "noisy"] == ["fuse"]
    assert [f.cell for f in basic.findings if f.kind == "faster_than_native"] == ["seqwrite-1m"]


def test_threshold_is_configurable() -> None:
    strict = analysis.analyse(analysis.load(BASIC), Settings(threshold=0.8))
    # 1.72x passes Welch's test but not an 80% practical threshold; 4.0x passes both
    assert not row(strict, "randread-4k", "passthrough")["vs_plain_significant"]
    assert row(strict, "seqread-1m", "passthrough")["vs_plain_significant"]


def test_bootstrap_is_reproducible(basic: analysis.Analysis) -> None:
    again = analysis.analyse(analysis.load(BASIC))
    assert again.summary.equals(basic.summary)


def test_cpu_per_gib_and_per_kio(basic: analysis.Analysis) -> None:
    cpu = basic.cpu.set_index(["cell", "target"]).loc[("seqread-1m", "fuse")]
    gib = (500 + 510 + 490) * 3 / 1024  # MiB/s x 3 s each, in GiB
    assert cpu["gib"] == pytest.approx(gib)
    assert cpu["daemon_sys_s_per_gib"] == pytest.approx(3 * 1.0 / gib)
    assert cpu["fio_user_s_per_gib"] == pytest.approx(3 * 0.3 / gib)
    # 1M blocks: IOPS = MiB/s, so (500 + 510 + 490) x 3 s = 4,500 I/Os
    assert cpu["total_s_per_kio"] == pytest.approx(3 * (0.3 + 0.9 + 0.5 + 1.0) / 4.5)
    native = basic.cpu.set_index(["cell", "target"]).loc[("seqread-1m", "native")]
    assert native["daemon_user_s_per_gib"] == 0


def test_latency_bins_are_summed_over_repetitions(basic: analysis.Analysis) -> None:
    runs = [json.loads((BASIC / "fio" / f"seqread-1m--native--r{rep}.json").read_text()) for rep in (1, 2, 3)]
    total = sum(job["read"]["clat_ns"]["N"] for fio in runs for job in fio["jobs"])
    frame = basic.latency
    native = frame[(frame["cell"] == "seqread-1m") & (frame["target"] == "native") & (frame["direction"] == "read")]
    assert set(native["ios"]) == {total}
    merged: collections.Counter[int] = collections.Counter()
    for rep in (1, 2, 3):
        merged.update(read_fio_output(BASIC / "fio" / f"seqread-1m--native--r{rep}.json").read.clat_bins)
    p50 = native.set_index("percentile").loc[50.0, "latency_us"]
    assert p50 == percentiles(merged, [50])[0] / 1000
    # a summed percentile lies between the runs' own ones, never outside
    own = [fio["jobs"][0]["read"]["clat_ns"]["percentile"]["50.000000"] / 1000 for fio in runs]
    assert min(own) * 0.9 <= p50 <= max(own) * 1.1
    assert set(frame[frame["cell"] == "seqwrite-1m"]["direction"]) == {"write"}


def test_an_unreadable_fio_output_is_a_finding_not_a_silent_gap(tmp_path: Path) -> None:
    folder = tmp_path / "basic"
    shutil.copytree(BASIC, folder)
    (folder / "fio" / "seqread-1m--native--r1.json").write_text("fio: killed {before writing}\n")
    result = analysis.analyse(analysis.load(folder))
    notes = [f.message for f in result.findings if "latency percentiles" in f.message]
    assert len(notes) == 1 and notes[0].startswith("seqread-1m--native--r1: fio output holds no JSON")
    native = result.latency[(result.latency["cell"] == "seqread-1m") & (result.latency["target"] == "native")]
    assert not native.empty  # the other two repetitions still count


def test_fd_limits(basic: analysis.Analysis) -> None:
    limits = basic.fd_limits.set_index("config")
    assert limits.loc["fuse", "first_failed_n"] == 10000
    assert limits.loc["fuse", "errno"] == "EMFILE"
    assert limits.loc["passthrough/keep", "max_ok"] == 1000
    # the N = 100000 step failed as a whole (no figures): it neither passes nor fails a limit
    assert np.isnan(limits.loc["passthrough/close", "first_failed_n"])
    assert limits.loc["passthrough/close", "max_ok"] == 10000
    assert 100000 not in set(basic.fd_steps["open_files"])


def test_fd_pressure_findings(basic: analysis.Analysis) -> None:
    fd = [(f.kind, f.target, f.message) for f in basic.findings if f.cell == "fd_pressure"]
    assert fd == [
        ("not_back_to_baseline", "passthrough/keep",
         "fd pressure passthrough/keep N=10000: fds did not return to baseline after close (3 backing files still open)"),
        ("failed", "passthrough/close", "fd pressure passthrough/close N=100000: failed: the client exited with status 1"),
    ]


def test_request_counts(basic: analysis.Analysis) -> None:
    requests = basic.requests.set_index(["cell", "target"])
    assert requests.loc[("seqread-1m", "passthrough"), "fuse_read_requests"] == 0
    assert requests.loc[("seqread-1m", "fuse"), "fuse_read_requests"] == 1500
    assert ("seqread-1m", "native") not in requests.index


def test_partial_folder_without_runs(tmp_path: Path) -> None:
    folder = tmp_path / "started"
    folder.mkdir()
    for name in ("manifest.json", "scenario.yaml"):
        shutil.copy(BASIC / name, folder / name)
    result = analysis.analyse(analysis.load(folder))
    assert result.summary.empty
    assert len(missing_runs(result.results)) == 4 * 3 * 3


def test_unavailable_target_is_counted_apart_and_reported_once(tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "partial"
    shutil.copytree(BASIC, folder)
    runs = pd.read_csv(folder / "runs.csv")
    fuse = runs["target"] == "fuse"
    runs.loc[fuse, "status"] = "unavailable"
    runs.loc[fuse, "error"] = "built-in server not installed"
    runs.to_csv(folder / "runs.csv", index=False)
    result = analysis.analyse(analysis.load(folder))
    fuse_row = row(result, "seqread-1m", "fuse")
    assert (fuse_row["unavailable"], fuse_row["failed"], fuse_row["n"]) == (3, 0, 0)
    unavailable = [f for f in result.findings if f.kind == "unavailable"]
    assert len(unavailable) == 1 and "built-in server not installed" in unavailable[0].message
    assert f"({int(fuse.sum())} runs)" in unavailable[0].message


def test_a_target_faster_than_native_is_explained_only_by_what_was_measured(basic: analysis.Analysis) -> None:
    (flagged,) = [f for f in basic.findings if f.kind == "faster_than_native"]
    assert "nothing measured explains it" in flagged.message  # no device counters in this folder: no guess
    assert "huge pages" not in flagged.message and "cache artifact" not in flagged.message


def test_direct_io_the_block_device_never_saw_was_served_from_a_cache(tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "direct"
    shutil.copytree(BASIC, folder)
    runs = pd.read_csv(folder / "runs.csv")
    seqwrite = runs["cell"] == "seqwrite-1m"
    runs.loc[seqwrite, "direct"] = True
    moved = runs["write_io_bytes"].fillna(0) + runs["read_io_bytes"].fillna(0)
    # fuse wrote a tenth of fio's bytes to the device (O_DIRECT dropped below it); native all of them
    runs["dev_read_bytes"], runs["dev_write_bytes"] = 0, (moved * np.where(runs["target"] == "fuse", 0.1, 1.0)).astype(int)
    runs.to_csv(folder / "runs.csv", index=False)
    findings = analysis.analyse(analysis.load(folder)).findings
    served = [f for f in findings if f.kind == "served_from_cache"]
    assert [(f.cell, f.target) for f in served] == [("seqwrite-1m", "fuse")] and "10%" in served[0].message
    (faster,) = [f for f in findings if f.kind == "faster_than_native"]
    assert "served from a cache" in faster.message


def test_runs_far_from_their_cell_are_marked_not_dropped(tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "outlier"
    shutil.copytree(BASIC, folder)
    runs = pd.read_csv(folder / "runs.csv")
    for rep, value in ((1, 1000.0), (2, 1010.0), (3, 5000.0)):
        runs.loc[(runs["cell"] == "seqread-1m") & (runs["target"] == "native") & (runs["repetition"] == rep),
                 "read_bw_mib_s"] = value
    runs.to_csv(folder / "runs.csv", index=False)
    result = analysis.analyse(analysis.load(folder))
    native = row(result, "seqread-1m", "native")
    assert (native["n"], native["outliers"], native["max"]) == (3, 1, 5000.0)  # marked, still counted
    assert [f.message.split(":")[0] for f in result.findings if f.kind == "outlier"] == ["seqread-1m--native--r3"]


def test_a_run_that_measured_a_short_window_is_a_finding(tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "short"
    shutil.copytree(BASIC, folder)
    runs = pd.read_csv(folder / "runs.csv")
    runs.loc[runs["cell"] == "randread-4k", "fio_runtime_s"] = 0.5
    runs.to_csv(folder / "runs.csv", index=False)
    short = [f for f in analysis.analyse(analysis.load(folder)).findings if f.kind == "short_window"]
    assert {f.cell for f in short} == {"randread-4k"} and "0.5 s of the" in short[0].message


# ---------------------------------------------------------------- families


def _families_folder(path: Path) -> Path:
    """A folder with a program (seconds), an open/close loop (opens/s) and a metadata engine
    (ops/s), 3 runs on native, fuse and passthrough each, with their requests."""
    from bench.records import (
        FioFigures,
        RequestRecord,
        RequestTotals,
        RunInfo,
        RunRecord,
        WorkFigures,
        WorkloadAsRun,
        WorkloadKind,
    )
    from bench.results import ResultsWriter

    writer = ResultsWriter.create(path)
    seconds = {"native": [1.0, 1.1, 0.9], "fuse": [2.0, 2.1, 1.9], "passthrough": [1.6, 1.7, 1.5]}
    opens = {"native": [300e3, 310e3, 290e3], "fuse": [12e3, 12.5e3, 11.5e3], "passthrough": [10e3, 10.2e3, 9.8e3]}
    stats = {"native": [40e3, 41e3, 39e3], "fuse": [20e3, 20.5e3, 19.5e3], "passthrough": [20.1e3, 19.6e3, 20.4e3]}
    types = {"native": "native", "fuse": "fuse", "passthrough": "passthrough"}
    for target, kind in types.items():
        counted = RequestTotals(fuse_requests_source="server") if kind != "native" else RequestTotals()
        for rep in range(3):
            common = dict(target=target, target_type=kind, repetition=rep + 1, status="ok")
            run_id = f"untar--{target}--r{rep + 1}"
            writer.append_run(RunRecord(
                info=RunInfo(run_id=run_id, workload="untar", cell="untar", duration_s=seconds[target][rep], **common),
                kind=WorkloadKind(family="program", program="tar-extract", start_tree="aaaa"),
                work=WorkFigures(ops=1, files=100, mib=2.0, backing_opens=100 if kind == "passthrough" else None),
                requests=counted),
                requests=[RequestRecord(run_id=run_id, source="server", opcode=op, requests=n)
                          for op, n in (("CREATE", 100), ("LOOKUP", 300), ("WRITE", 50), ("FSYNC", 9))
                          if op != "FSYNC" or rep == 0] if kind != "native" else [])
            run_id = f"loop--{target}--r{rep + 1}"
            writer.append_run(RunRecord(
                info=RunInfo(run_id=run_id, workload="loop", cell="loop", duration_s=2.0, **common),
                kind=WorkloadKind(family="opens", start_tree="bbbb" if target != "fuse" else "cccc"),
                work=WorkFigures(ops=int(opens[target][rep] * 2), files=1000, mib=0.0, ops_per_s=opens[target][rep],
                                 op_p50_us=3.0), requests=counted),
                requests=[RequestRecord(run_id=run_id, source="server", opcode="OPEN",
                                        requests=int(opens[target][rep] * 2))] if kind != "native" else [])
            writer.append_run(RunRecord(
                info=RunInfo(run_id=f"stat--{target}--r{rep + 1}", workload="stat", cell="stat", duration_s=1.0,
                             **common),
                workload=WorkloadAsRun(rw="read", bs="1", ioengine="filestat", nrfiles=10000, cache="cold"),
                fio=FioFigures(read_iops=stats[target][rep], read_bw_mib_s=0.01),
                kind=WorkloadKind(family="fio", start_tree="dddd"), work=WorkFigures(ops=10000, files=10000)))
    return path


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> analysis.Analysis:
    return analysis.analyse(analysis.load(_families_folder(tmp_path_factory.mktemp("f") / "families")))


def test_each_family_has_its_section_and_metric(families: analysis.Analysis) -> None:
    got = {(r.cell, r.section, r.metric, r.unit) for r in families.summary.itertuples()}
    assert got == {("untar", "programs", "seconds", "s"), ("loop", "open/close", "opens_s", "opens/s"),
                   ("stat", "metadata", "ops_s", "ops/s")}


def gmean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def test_times_compare_as_speeds(families: analysis.Analysis) -> None:
    fuse, passthrough = row(families, "untar", "fuse"), row(families, "untar", "passthrough")
    native_s, fuse_s, passthrough_s = [1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [1.6, 1.7, 1.5]
    assert fuse["median"] == 2.0
    assert fuse["vs_baseline_ratio"] == pytest.approx(gmean(native_s) / gmean(fuse_s))  # about half native's speed
    assert fuse["vs_baseline_verdict"] == "slower"
    assert passthrough["vs_plain_ratio"] == pytest.approx(gmean(fuse_s) / gmean(passthrough_s))
    assert passthrough["vs_plain_verdict"] == "faster"
    assert passthrough["vs_plain_ratio_low"] <= passthrough["vs_plain_ratio"] <= passthrough["vs_plain_ratio_high"]


def test_the_verdicts_say_where_passthrough_is_faster_equivalent_slower_or_undecided(
        families: analysis.Analysis) -> None:
    verdicts = families.verdicts.set_index("section")
    assert verdicts.loc["programs", "faster"] == 1 and verdicts.loc["programs", "faster_cells"][0][0] == "untar"
    assert verdicts.loc["open/close", "slower"] == 1
    assert verdicts.loc["metadata", "undecided"] == 1  # 20.0k against 20.0k +- 2.5%: within noise of 5%
    from bench.report.rows import verdict_lines

    assert verdict_lines(families) == ["metadata: undecided in 1", "open/close: slower in 1 (loop 0.83x)",
                                       "programs: faster in 1 (untar 1.25x)"]  # in the report's section order


def test_requests_per_operation_file_and_mib(families: analysis.Analysis) -> None:
    per_op = families.per_op.set_index(["cell", "target", "opcode"])
    assert per_op.loc[("untar", "fuse", "CREATE"), "per_op"] == 100
    assert per_op.loc[("untar", "fuse", "LOOKUP"), "per_file"] == 3
    assert per_op.loc[("untar", "fuse", "WRITE"), "per_mib"] == 25
    assert per_op.loc[("loop", "passthrough", "OPEN"), "per_op"] == 1
    assert per_op.loc[("loop", "passthrough", "OPEN"), "per_run"] == 20000
    # an opcode counted in one run of three: the other two had none of it
    assert per_op.loc[("untar", "fuse", "FSYNC"), "per_run"] == 0 and per_op.loc[("untar", "fuse", "FSYNC"), "runs"] == 3
    assert "native" not in set(families.per_op["target"])
    work = families.work.set_index(["cell", "target"])
    assert work.loc[("untar", "passthrough"), "backing_opens_per_op"] == 100
    assert np.isnan(work.loc[("untar", "fuse"), "backing_opens_per_op"])


def test_targets_that_did_not_start_alike_are_a_finding(families: analysis.Analysis) -> None:
    notes = [f.message for f in families.findings if f.cell == "loop"]
    assert len(notes) == 1 and "did not start from the same files" in notes[0] and "fuse cccc" in notes[0]
    assert not [f for f in families.findings if f.cell in ("untar", "stat") and f.kind == "note"]


def test_comparing_two_folders_turns_times_into_speeds(tmp_path: Path, families: analysis.Analysis) -> None:
    slower = _families_folder(tmp_path / "b")
    runs = (slower / "runs.csv").read_text().replace("untar--native--r1,untar,untar,,native,native,1,,,1.0,",
                                                     "untar--native--r1,untar,untar,,native,native,1,,,2.0,")
    (slower / "runs.csv").write_text(runs)
    changes = compare_folders(families, [analysis.analyse(analysis.load(slower))]).changes
    changes = changes[changes["metric"] == PRIMARY]
    native = changes[(changes["cell"] == "untar") & (changes["target"] == "native")].iloc[0]
    assert native["median"] == pytest.approx(1.1)
    assert native["ratio"] == pytest.approx(gmean([1.0, 1.1, 0.9]) / gmean([2.0, 1.1, 0.9]))  # B is slower: below 1
    # against its baseline (native), fuse got faster in B: native slowed down, fuse did not
    fuse = changes[(changes["cell"] == "untar") & (changes["target"] == "fuse")].iloc[0]
    assert fuse["ratio"] == pytest.approx(1.0) and fuse["rel_ratio"] == pytest.approx(
        gmean([2.0, 1.1, 0.9]) / gmean([1.0, 1.1, 0.9]))
    assert np.isnan(native["rel_ratio"])  # the baseline itself has no ratio to itself


def test_a_clean_cell_at_three_runs_has_no_outlier(tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "clean"
    shutil.copytree(BASIC, folder)
    runs = pd.read_csv(folder / "runs.csv")
    # 100, 105, 96: the MAD alone would call 105 an outlier (4.7 robust deviations); 5% is not far
    for rep, value in ((1, 100.0), (2, 105.0), (3, 96.0)):
        runs.loc[(runs["cell"] == "seqread-1m") & (runs["target"] == "native") & (runs["repetition"] == rep),
                 "read_bw_mib_s"] = value
    runs.to_csv(folder / "runs.csv", index=False)
    assert row(analysis.analyse(analysis.load(folder)), "seqread-1m", "native")["outliers"] == 0


def test_a_results_folder_whose_scenario_is_not_text_still_reports(tmp_path: Path) -> None:
    folder = tmp_path / "tampered"
    shutil.copytree(BASIC, folder)
    (folder / "scenario.yaml").write_bytes(b"name: \xff\xfe\n")
    result = analysis.analyse(analysis.load(folder))
    assert len(result.summary) and set(result.summary["cell"]) >= {"seqread-1m", "randread-4k"}


def test_the_transport_of_each_fuse_target_is_one_value_or_says_its_runs_disagree() -> None:
    runs = pd.DataFrame({
        "target": ["native", "ring", "ring", "hp", "hp", "hp", "dev"],
        "status": ["ok", "ok", "ok", "ok", "ok", "failed", "ok"],
        "transport": [pd.NA, "uring", "uring", "uring", "unknown", "dev", "dev"],
    })
    assert transports(runs) == {
        "ring": ("uring", "FUSE over io_uring"),
        "hp": ("mixed", "runs disagree: FUSE over io_uring in 1, unknown in 1"),  # the failed run does not count
        "dev": ("dev", "/dev/fuse"),
    }
    assert transports(runs.drop(columns="transport")) == {}  # a folder from before the transport columns
