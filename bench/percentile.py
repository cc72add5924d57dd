"""The one percentile rule fusebench uses: nearest rank, as fio computes its own.

The p-th percentile of a histogram (value -> count) is the smallest value whose cumulative
count reaches p% of all counts. A list of raw values is the histogram with a count of one
per value, so fio's clat percentiles, the report's latency curves and the fd-pressure open
latencies all follow the same rule.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence


def percentiles(histogram: Mapping[float, int], wanted: Sequence[float]) -> list[float | None]:
    """The value at each percentile in `wanted` (0-100); None for all when the histogram is empty."""
    values = sorted(value for value, count in histogram.items() if count > 0)
    if not values:
        return [None] * len(wanted)
    cumulative = list(itertools.accumulate(histogram[value] for value in values))
    total = cumulative[-1]
    return [values[min(bisect.bisect_left(cumulative, p / 100 * total), len(values) - 1)] for p in wanted]
