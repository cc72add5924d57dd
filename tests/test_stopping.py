"""bench.stopping: when `repeat: auto` adds another repetition (the rule on synthetic sequences)."""

from __future__ import annotations

from bench.records import AutoRule
from bench.stopping import stop_reason

AUTO = AutoRule(baseline="native", threshold=0.05, min_repeat=3, max_repeat=8, max_time_s=600.0)


def run_until_stopped(sequence: list[dict[str, str]], auto: AutoRule = AUTO, block_s: float = 60.0):
    """Apply the rule after each repetition of a synthetic sequence of verdicts; (repetitions, reason)."""
    for repetitions, verdicts in enumerate(sequence, 1):
        reason = stop_reason(verdicts, auto, repetitions, repetitions * block_s)
        if reason:
            return repetitions, reason
    return len(sequence), None


def test_it_never_stops_before_the_minimum_even_when_decided() -> None:
    decided = {"w / fuse": "slower", "w / passthrough": "equivalent"}
    assert [stop_reason(decided, AUTO, n, 0.0) for n in (1, 2, 3)] == [None, None, "decided"]


def test_it_stops_at_the_first_repetition_where_nothing_is_undecided() -> None:
    sequence = [{"w / fuse": "undecided", "w / pt": "undecided"}] * 3 + [
        {"w / fuse": "slower", "w / pt": "undecided"},
        {"w / fuse": "slower", "w / pt": "faster"},
        {"w / fuse": "slower", "w / pt": "faster"},
    ]
    assert run_until_stopped(sequence) == (5, "decided")


def test_a_comparison_that_flips_back_to_undecided_keeps_it_going() -> None:
    sequence = [{"a": "undecided"}] * 3 + [{"a": "equivalent", "b": "undecided"}, {"a": "undecided", "b": "faster"},
                                            {"a": "equivalent", "b": "faster"}]
    assert run_until_stopped(sequence) == (6, "decided")


def test_the_budget_in_repetitions_and_in_time_is_respected() -> None:
    forever = [{"w / fuse": "undecided"}] * 50
    assert run_until_stopped(forever) == (8, "max_repeat")
    assert run_until_stopped(forever, block_s=150.0) == (4, "max_time")  # 600 s reached after 4 x 150 s
    unlimited = AutoRule(baseline="native", threshold=0.05, min_repeat=3, max_repeat=8, max_time_s=None)
    assert run_until_stopped(forever, unlimited, block_s=1e6) == (8, "max_repeat")


def test_nothing_to_compare_is_decided() -> None:
    assert stop_reason({}, AUTO, 3, 0.0) == "decided"
