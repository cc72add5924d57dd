"""bench.watchdog: the rule on synthetic readings, the watchdog on a fake host, and real runs of a
stopped built-in server (failed within 15 s, the next run fine) and a slow one (not aborted)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import watchdog
from bench.fusefs import mounts
from bench.fusefs.dispatch import TEST_DELAY_ENV
from bench.host import Host
from bench.processes import threads_busy
from bench.watchdog import HUNG_AFTER_S, Reading, ServerStopped, StallRule, Watchdog

# ---------------------------------------------------------------- the rule


def feed(rule: StallRule, readings: list[tuple[float, int, int]]) -> list[float]:
    """The times at which the rule said the server stopped."""
    return [at for at, waiting, counted in readings if rule.feed(Reading(at, waiting, counted))]


def test_requests_waiting_with_none_answered_for_the_window_is_a_stop() -> None:
    readings = [(t / 2, 1, 40) for t in range(30)]  # one request waits from 0 s on, nothing moves
    assert feed(StallRule(10.0), readings)[0] == 10.0


def test_a_slow_server_answering_every_3_s_is_never_a_stop() -> None:
    # One request at a time, each answered after 3 s: `waiting` reads 1 throughout (the gap
    # between answer and next request is shorter than a poll), `counted` moves once per answer.
    readings = [(t / 2, 1, 100 + int(t / 2 // 3)) for t in range(240)]
    assert feed(StallRule(10.0), readings) == []


def test_clients_that_block_on_a_stopped_server_are_not_progress() -> None:
    # Each new blocked client adds one sent request and one waiting request (the tracepoint's view).
    readings = [(t / 2, 1 + t // 4, 50 + t // 4) for t in range(30)]
    assert feed(StallRule(10.0), readings)[0] == 10.0


def test_an_answer_starts_the_window_again_and_an_idle_server_is_never_stopped() -> None:
    rule = StallRule(10.0)
    stalled = [(t / 2, 2, 7) for t in range(18)]  # 0-8.5 s
    answered = [(9.0, 1, 7)]  # one of the two answered: waiting fell, counted did not move
    after = [(9.5 + t / 2, 1, 7) for t in range(21)]  # 9.5-19.5 s
    assert feed(rule, stalled + answered + after) == [19.0, 19.5]
    assert feed(StallRule(10.0), [(t / 2, 0, 3) for t in range(100)]) == []  # nothing waits: idle


def test_nothing_waiting_ends_a_stall() -> None:
    readings = [(t / 2, 1, 5) for t in range(16)] + [(8.0, 0, 5)] + [(8.5 + t / 2, 1, 6) for t in range(16)]
    assert feed(StallRule(10.0), readings) == []


def test_one_request_waiting_12_s_while_a_daemon_thread_is_in_io_wait_is_not_a_stop() -> None:
    # A long FSYNC: nothing answered for 12 s, but the daemon is at work (a thread in D).
    readings = [Reading(t / 2, 1, 40, busy=True) for t in range(25)]
    rule = StallRule(10.0)
    assert [r.at for r in readings if rule.feed(r)] == []


def test_a_daemon_whose_threads_all_stopped_is_a_stop_and_the_window_counts_from_its_last_work() -> None:
    rule = StallRule(10.0)
    busy = [Reading(t / 2, 1, 40, busy=True) for t in range(10)]  # 0-4.5 s: at work
    stopped = [Reading(5 + t / 2, 1, 40) for t in range(30)]  # all threads T from 5 s on
    assert [r.at for r in busy + stopped if rule.feed(r)][0] == 14.5


def test_the_threads_of_a_stopped_process_are_not_busy_and_of_a_spinning_one_are(tmp_path: Path) -> None:
    spinning = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert _until(lambda: threads_busy(spinning.pid), 5, "running thread")
        os.kill(spinning.pid, signal.SIGSTOP)
        _until(lambda: psutil.Process(spinning.pid).status() == psutil.STATUS_STOPPED, 5, "stopped process")
        assert not threads_busy(spinning.pid)
    finally:
        os.kill(spinning.pid, signal.SIGCONT)
        spinning.kill()
        spinning.wait()
    assert not threads_busy(spinning.pid)  # gone


# ---------------------------------------------------------------- the watchdog on a fake host


class Connection(Host):
    """A FUSE connection whose waiting requests a test sets; aborts are recorded."""

    def __init__(self, waiting: int, busy: bool = False) -> None:
        self.waiting = waiting
        self.busy = busy
        self.aborted: list[int] = []

    def threads_busy(self, pid: int) -> bool:
        return self.busy

    def waiting_requests(self, connection: int) -> int | None:
        return self.waiting

    def abort_connection(self, connection: int) -> bool:
        self.aborted.append(connection)
        return True


def test_the_watchdog_aborts_a_stopped_server_and_says_why(monkeypatch) -> None:
    monkeypatch.setattr(watchdog, "POLL_S", 0.01)
    host = Connection(waiting=2)
    with Watchdog(host, 77, lambda: 12, window_s=0.2) as dog:
        deadline = time.monotonic() + 5
        while not host.aborted and time.monotonic() < deadline:
            time.sleep(0.01)
    assert host.aborted == [77]
    with pytest.raises(ServerStopped, match=r"^the FUSE server stopped answering: 2 requests waiting for 0\.2 s "
                                            r"with no answer; its connection 77 was aborted$"):
        dog.check()


def test_the_watchdog_leaves_a_live_server_and_an_uncounted_one_alone(monkeypatch) -> None:
    monkeypatch.setattr(watchdog, "POLL_S", 0.01)
    answers = iter(range(10**6))
    host = Connection(waiting=1)
    with Watchdog(host, 5, lambda: next(answers), window_s=0.1) as live, Watchdog(host, 6, None, window_s=0.1) as blind:
        time.sleep(0.5)
    assert host.aborted == [] and live.reason is None and blind.reason is None
    live.check()


def test_the_watchdog_leaves_a_daemon_at_work_alone(monkeypatch) -> None:
    monkeypatch.setattr(watchdog, "POLL_S", 0.01)
    host = Connection(waiting=1, busy=True)
    with Watchdog(host, 5, lambda: 9, daemon_pid=1234, window_s=0.1) as dog:
        time.sleep(0.5)
    assert host.aborted == [] and dog.reason is None


# ---------------------------------------------------------------- real runs (integration)


def _scenario(tmp_path: Path, repeat: int, runtime: str, target: str = "{name: fuse, type: fuse}") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: hang\nrepeat: {repeat}\ntargets: [{target}]\n"
                    f"workloads: [{{name: rr, rw: randread, bs: 4k, size: 8M, runtime: {runtime}, direct: true}}]\n")
    return path


def _rows(out: Path) -> list[dict[str, str]]:
    try:
        with open(out / "runs.csv", newline="") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(0.05)
    return found


def _reading_daemon(stats_file: Path) -> psutil.Process | None:
    """The built-in server once fio is reading through it."""
    try:
        stats = json.loads(stats_file.read_text())
    except (OSError, ValueError):
        return None
    return psutil.Process(stats["pid"]) if stats.get("requests", {}).get("READ", 0) > 0 else None


@contextlib.contextmanager
def _fusebench_run(tmp_path: Path, scenario: Path, env: dict[str, str] | None = None):
    """`fusebench run` in the background; on the way out it is waited for (killed if it hangs)
    and nothing it mounted stays."""
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(scenario), "--out", str(tmp_path / "out"),
                             "--workdir", str(work), "--seed", "1"], cwd=tmp_path, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for entry in mounts.mounts():
            if entry.is_fuse and entry.mountpoint.startswith(str(work.resolve())):
                mounts.unmount(entry.mountpoint, connection=entry.connection)


@pytest.mark.integration
def test_a_stopped_server_fails_its_run_within_15_s_and_the_next_run_is_fine(
        tmp_path: Path, require_root: None, require_fio: None) -> None:
    out, daemon = tmp_path / "out", None
    with _fusebench_run(tmp_path, _scenario(tmp_path, repeat=2, runtime="4s")) as proc:
        try:
            daemon = _until(lambda: _reading_daemon(tmp_path / "work" / "fuse.stats.json"), 60, "READ through fuse")
            daemon.suspend()
            stopped = time.monotonic()
            first = _until(lambda: _rows(out), 30, "row of the stopped run")
            failed_after = time.monotonic() - stopped
            _until(lambda: len(_rows(out)) == 2, 60, "row of the next run")
            next_after = time.monotonic() - stopped
            assert proc.wait(60) == 1  # a run failed
        finally:
            if daemon is not None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    daemon.resume()
        output = proc.stdout.read()
    print(f"SIGSTOP -> failed row {failed_after:.1f} s, -> next good row {next_after:.1f} s")
    assert first[0]["status"] == "failed", output
    assert first[0]["error"].startswith("the FUSE server stopped answering: ")
    assert f"waiting for {HUNG_AFTER_S:g} s with no answer" in first[0]["error"]
    assert failed_after < 15
    assert _rows(out)[1]["status"] == "ok" and float(_rows(out)[1]["read_iops"]) > 0
    assert not daemon.is_running() or daemon.status() == psutil.STATUS_ZOMBIE


@pytest.mark.integration
def test_a_slow_server_answering_after_3_s_is_not_aborted(tmp_path: Path, require_root: None,
                                                           require_fio: None) -> None:
    # Long cache timeouts: with 1 s ones every name fio looks up expires while it waits for the next.
    slow = "{name: fuse, type: fuse, attr_timeout: 60s, entry_timeout: 60s}"
    started = time.monotonic()
    with _fusebench_run(tmp_path, _scenario(tmp_path, repeat=1, runtime="1s", target=slow),
                        {TEST_DELAY_ENV: "3"}) as proc:
        status = proc.wait(120)
        output = proc.stdout.read()
    took = time.monotonic() - started
    print(f"the slow run took {took:.1f} s")
    [row] = _rows(tmp_path / "out")
    assert status == 0 and row["status"] == "ok", output
    assert took > HUNG_AFTER_S + 3  # requests kept waiting for longer than the watchdog's window
