"""bench.percentile: the one percentile rule (nearest rank, as fio computes its own)."""

from collections import Counter

from bench.percentile import percentiles


def test_percentile_from_empty_bins_is_none():
    assert percentiles({}, [50.0, 99.0]) == [None, None]


def test_raw_values_follow_the_same_nearest_rank_rule():
    assert percentiles(Counter([5, 1, 3, 2, 4]), [50, 99]) == [3, 5]
    assert percentiles(Counter(range(1, 101)), [99.9]) == [100]
