"""bench.fio_output: the one parser of fio's json+, against real fio 3.33 output."""

import json
from pathlib import Path

import pytest

from bench.fio_output import FioError, parse_fio_output, read_fio_output
from bench.percentile import percentiles

FIXTURES = Path(__file__).parent / "fixtures" / "fio"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_seq_read_numbers_match_the_json():
    result = parse_fio_output(fixture("seq-read.json"))
    assert (result.version, result.error, result.jobs) == ("fio-3.33", 0, 1)
    read = result.read
    assert (read.io_bytes, read.total_ios, read.runtime_ms) == (3036807168, 23169, 1001)
    assert read.bw_bytes == 3033773394 and read.bw_mib_s == pytest.approx(3033773394 / 2**20)
    assert read.iops == pytest.approx(23145.854146)
    assert read.clat_mean_us == pytest.approx(40.663215417)
    assert (read.clat_p50_us, read.clat_p99_us, read.clat_p999_us) == (4.256, 1728.512, 2342.912)
    assert read.lat_mean_us == pytest.approx(40.684259916)
    assert len(read.clat_bins) == 320 and sum(read.clat_bins.values()) == 23169
    assert (result.usr_cpu, result.sys_cpu, result.ctx, result.runtime_s) == (0.8, 22.4, 566, 1.001)
    assert result.write.total_ios == 0 and result.write.clat_p99_us is None and result.write.clat_mean_us is None


def test_randread_libaio_qd8():
    result = parse_fio_output(fixture("randread-libaio-qd8.json"))
    assert result.read.iops == pytest.approx(72902.097902)
    assert result.read.clat_p99_us == 130.56 and result.read.clat_p999_us == 3096.576
    assert result.read.lat_mean_us == pytest.approx(109.411024392)
    assert result.read.lat_mean_us > result.read.clat_mean_us  # lat = slat + clat
    assert result.write.io_bytes == 0


def test_seq_write():
    result = parse_fio_output(fixture("seq-write.json"))
    assert result.read.total_ios == 0
    assert (result.write.io_bytes, result.write.total_ios, result.write.runtime_ms) == (28756279296, 219393, 1003)
    assert result.write.clat_p50_us == 2.864
    assert (result.usr_cpu, result.sys_cpu, result.runtime_s) == (9.181637, 89.121756, 1.003)


def test_randrw_has_both_directions():
    result = parse_fio_output(fixture("randrw.json"))
    assert (result.read.total_ios, result.write.total_ios) == (21290, 9095)
    assert result.read.clat_p99_us == 59.648 and result.write.clat_p99_us == 5.984
    assert result.write.iops == pytest.approx(9085.914086)


def test_multi_job_records_are_summed_and_percentiles_recomputed_from_bins():
    result = parse_fio_output(fixture("multijob.json"))
    read = result.read
    assert result.jobs == 2
    assert (read.io_bytes, read.total_ios) == (122949632 + 123027456, 30017 + 30036)
    assert read.iops == pytest.approx(29987.012987 + 30005.994006)
    assert read.clat_mean_us == pytest.approx((32762.691941 * 30017 + 32706.510388 * 30036) / 60053 / 1000)
    assert sum(read.clat_bins.values()) == 60053
    # Between the two jobs' own p50s (33.536, 34.048 us), and not their average unless by chance.
    assert 33.536 <= read.clat_p50_us <= 34.048
    assert read.clat_p50_us == percentiles(read.clat_bins, [50])[0] / 1000
    assert result.ctx == 15871 + 15842 and result.runtime_s == 1.001
    assert result.usr_cpu == pytest.approx(0.75) and result.sys_cpu == pytest.approx(25.65)


@pytest.mark.parametrize("name", ["seq-read.json", "randread-libaio-qd8.json", "seq-write.json", "randrw.json"])
def test_percentiles_from_bins_follow_fios_rule_exactly(name):
    job = json.loads(fixture(name))["jobs"][0]
    for direction in ("read", "write"):
        clat = job[direction]["clat_ns"]
        if not clat["N"]:
            continue
        bins = {int(k): v for k, v in clat["bins"].items()}
        for key, value in clat["percentile"].items():
            assert percentiles(bins, [float(key)]) == [value], (direction, key)


def test_warning_before_the_json_is_skipped():
    text = fixture("warning-before-json.txt")
    assert text.startswith("note: both iodepth")
    result = parse_fio_output(text)
    assert result.read.total_ios == 639057 and result.read.clat_p999_us == 47.36


def test_job_error_raises_with_the_errno():
    with pytest.raises(FioError, match=r"job 'err' failed with error 2 \(No such file or directory\)"):
        parse_fio_output(fixture("error.json"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no JSON"),
        ("fio: engine libaio not loadable\n", "holds no JSON"),
        (fixture("seq-read.json")[:5000], "not valid JSON"),
        ('{"fio version": "fio-3.33", "jobs": []}', "jobs"),
        ('{"jobs": [{"jobname": "x"}]}', "lacks what fusebench needs"),
        (fixture("seq-read.json").replace('"io_bytes" : 3036807168', '"io_bytes" : "lots"'), "io_bytes"),
    ],
    ids=["empty", "stderr-only", "truncated", "no-jobs", "missing-keys", "wrong-type"],
)
def test_malformed_output_raises_fio_error(text, message):
    with pytest.raises(FioError, match=message):
        parse_fio_output(text)


def test_unknown_keys_are_ignored():
    data = json.loads(fixture("randrw.json"))
    data["jobs"][0]["from_the_future"] = {"x": 1}
    data["something_new"] = []
    assert parse_fio_output(json.dumps(data)).read.total_ios == 21290


def test_a_warning_line_with_a_brace_is_not_taken_for_the_json(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("fio: note {something} odd\n" + fixture("seq-read.json"))
    assert read_fio_output(path).read.total_ios == 23169


def test_a_missing_output_file_is_a_fio_error(tmp_path):
    with pytest.raises(FioError, match="cannot read fio output"):
        read_fio_output(tmp_path / "absent.json")
