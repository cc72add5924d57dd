"""bench.opens: the open/close loop, its histograms and its result file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench import opens
from bench.smallfiles import file_name


@pytest.mark.parametrize(("ns", "bucket"), [(0, 0), (999, 999), (1234, 1230), (98765, 98800), (1_000_501, 1_000_000)])
def test_latencies_are_kept_to_three_significant_digits(ns: int, bucket: int) -> None:
    assert opens._bucket(ns) == bucket


def test_percentiles_come_from_the_histogram() -> None:
    result = opens.OpensResult(opens=100, wall_s=0.5, open_ns={1000: 98, 50_000: 1, 900_000: 1}, close_ns={500: 100})
    assert result.opens_per_s == 200
    assert result.open_us() == [1.0, 50.0, 900.0]


def test_the_loop_opens_every_file_in_turn_and_writes_its_result(tmp_path: Path) -> None:
    directory = opens.prepare(tmp_path, 20)
    assert directory == opens.files_dir(20) and (tmp_path / directory / file_name(19)).is_file()
    output = tmp_path / "out.json"
    completed = subprocess.run(opens.client_argv(tmp_path / directory, 20, 0.2, output),
                               env=opens.client_env(), capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    result = opens.read_result(output)
    assert result.opens >= 20 and 0.2 <= result.wall_s < 5
    assert sum(result.open_ns.values()) == sum(result.close_ns.values()) == result.opens
    assert json.loads(output.read_text())["opens"] == result.opens


def test_a_result_that_lacks_its_figures_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"opens": 3}')
    with pytest.raises(KeyError):
        opens.read_result(tmp_path / "bad.json")
