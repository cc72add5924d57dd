"""The statistics of a cell, with intervals whose coverage is what they say at the small n a
benchmark has: the median with a distribution-free order-statistic interval (its exact
coverage stated, 75% at n = 3), and the comparison of two sets of runs as a ratio of geometric
means with a Welch t-interval on log values, judged against a practical threshold: faster,
slower, equivalent or undecided. Deterministic: no resampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special, stats


@dataclass(frozen=True)
class Settings:
    """Knobs of the statistics; the defaults are what reports use."""

    threshold: float = 0.05   # the smallest change that matters: decided beyond it, equivalent within it
    noisy_cov: float = 0.05   # CoV above this flags a cell x target as noisy
    confidence: float = 0.95
    looks: int = 1            # times the comparisons were checked (`repeat: auto`): their intervals widen to match

    @property
    def compare_confidence(self) -> float:
        """The level of each comparison's interval (95% overall however many looks)."""
        return sequential_confidence(self.confidence, self.looks)


def describe(values: np.ndarray, settings: Settings) -> dict[str, float]:
    """n, median, mean, stdev, CoV, min, max, and the order-statistic interval of the median
    with its exact coverage (`ci_level`)."""
    n = len(values)
    out = {"n": n, "median": np.nan, "mean": np.nan, "stdev": np.nan, "cov": np.nan,
           "ci_low": np.nan, "ci_high": np.nan, "ci_level": np.nan, "min": np.nan, "max": np.nan}
    if n == 0:
        return out
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if n > 1 else np.nan
    interval = median_interval(values, settings.confidence)
    out.update(median=float(np.median(values)), mean=mean, stdev=stdev,
               cov=stdev / mean if n > 1 and mean else np.nan,
               min=float(values.min()), max=float(values.max()),
               ci_low=interval.low, ci_high=interval.high, ci_level=interval.coverage)
    return out


def compare(new: np.ndarray, base: np.ndarray, settings: Settings) -> dict[str, Any]:
    """new/base as a ratio of geometric means with its t-interval on logs, Welch's p, and the
    verdict against the threshold (`significant`: decided faster or slower)."""
    if len(new) == 0 or len(base) == 0:
        return dict(EMPTY_COMPARISON)
    ratio = ratio_interval(new, base, settings.compare_confidence)
    verdict = decide(ratio, settings.threshold)
    return {"ratio": ratio.ratio, "ratio_low": ratio.low, "ratio_high": ratio.high, "p": ratio.p,
            "verdict": verdict, "significant": verdict in (FASTER, SLOWER)}


EMPTY_COMPARISON: dict[str, Any] = {"ratio": np.nan, "ratio_low": np.nan, "ratio_high": np.nan, "p": np.nan,
                                    "verdict": "", "significant": False}


# Small-n methods whose coverage is what they state (issue 11): order-statistic intervals for a
# median, Welch t-intervals on log values for a ratio, and the verdict of a comparison.

@dataclass(frozen=True)
class Interval:
    """An interval and the probability it covers what it estimates."""

    low: float
    high: float
    coverage: float   # the exact (or nominal) coverage; nan when there is no interval


_NO_INTERVAL = Interval(np.nan, np.nan, np.nan)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")


@lru_cache(maxsize=256)
def _order_rank(n: int, confidence: float) -> tuple[int, float]:
    """The rank k of the narrowest (x_(k), x_(n+1-k)) covering the median at `confidence`, and its coverage."""
    ranks = np.arange(1, n // 2 + 1)
    coverage = 1.0 - 2.0 * stats.binom.cdf(ranks - 1, n, 0.5)   # falls as k grows
    # A hair of slack so a coverage equal to the confidence (0.75 at n = 3) is not lost to rounding.
    enough = np.flatnonzero(coverage >= confidence - 1e-12)
    k = int(ranks[enough[-1]]) if len(enough) else 1
    return k, float(coverage[k - 1])


def median_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    """Distribution-free interval for the median from order statistics: the narrowest symmetric
    pair (x_(k), x_(n+1-k)) of the sorted values whose exact coverage
    1 - 2 * BinomCDF(k - 1; n, 1/2) is at least `confidence`. When even [min, max] covers less
    (at 95%: n <= 5; [min, max] covers 75% at n = 3, 87.5% at n = 4, 93.75% at n = 5), return
    [min, max] with its real coverage. n < 2 (or any nan): Interval(nan, nan, nan).

    The coverage is exact for continuous data and a lower bound when values tie."""
    _check_confidence(confidence)
    ordered = np.sort(np.asarray(values, dtype=float).ravel())
    n = len(ordered)
    if n < 2 or np.isnan(ordered).any():
        return _NO_INTERVAL
    k, coverage = _order_rank(n, float(confidence))
    return Interval(float(ordered[k - 1]), float(ordered[n - k]), coverage)


@dataclass(frozen=True)
class Ratio:
    """new/base with its interval and Welch's p, all on log values."""

    ratio: float      # exp(mean(log new) - mean(log base)): the ratio of geometric means
    low: float        # Welch t-interval on the log values, at `confidence`, exponentiated
    high: float
    p: float          # Welch's two-sided p for "the log means differ" (nan when undefined)


def ratio_interval(new: np.ndarray, base: np.ndarray, confidence: float = 0.95) -> Ratio:
    """new/base as a ratio of geometric means with a Welch t-interval on log values (correct
    coverage for log-normal spread even at n = 2 or 3 per side). Non-positive, non-finite or
    missing values make it undefined (all nan). One side with n < 2: ratio only, low/high/p nan.
    Both sides with zero spread: low = high = ratio, p = 1.0 if equal else 0.0."""
    return contrast_interval([new], [base], confidence)


def contrast_interval(over: list[np.ndarray], under: list[np.ndarray], confidence: float = 0.95) -> Ratio:
    """prod(geometric means of `over`) / prod(geometric means of `under`) with a Welch-Satterthwaite
    t-interval on the log contrast: a ratio of two groups, or a ratio of ratios (a target's
    speed against its baseline in folder B, over the same in folder A). Undefined cases as
    ratio_interval."""
    _check_confidence(confidence)
    groups = [np.asarray(values, dtype=float).ravel() for values in (*over, *under)]
    signs = [1.0] * len(over) + [-1.0] * len(under)
    if any(len(g) == 0 or not np.isfinite(g).all() or (g <= 0).any() for g in groups):
        return Ratio(np.nan, np.nan, np.nan, np.nan)
    if all(np.ptp(g) == 0 for g in groups):
        # Constants: their logs' means can be an ulp off, and 0/0 has no t, so answer exactly.
        ratio = float(np.prod([g[0] for g in groups[:len(over)]]) / np.prod([g[0] for g in groups[len(over):]]))
        if any(len(g) < 2 for g in groups):
            return Ratio(ratio, np.nan, np.nan, np.nan)
        return Ratio(ratio, ratio, ratio, 1.0 if ratio == 1.0 else 0.0)
    logs = [np.log(g) for g in groups]
    diff = float(sum(sign * g.mean() for sign, g in zip(signs, logs)))
    if any(len(g) < 2 for g in groups):
        return Ratio(float(np.exp(diff)), np.nan, np.nan, np.nan)
    shares = np.array([g.var(ddof=1) / len(g) for g in logs])
    se2 = float(shares.sum())   # > 0: at least one group has spread
    # Welch-Satterthwaite df from the shares of the variance, so nothing underflows to 0/0.
    df = 1.0 / sum((share / se2) ** 2 / (len(g) - 1) for share, g in zip(shares, logs))
    se = float(np.sqrt(se2))
    half = float(special.stdtrit(df, 0.5 + confidence / 2)) * se
    p = float(2.0 * special.stdtr(df, -abs(diff) / se))
    return Ratio(float(np.exp(diff)), float(np.exp(diff - half)), float(np.exp(diff + half)), min(p, 1.0))


VERDICTS = FASTER, SLOWER, EQUIVALENT, UNDECIDED = ("faster", "slower", "equivalent", "undecided")


def sequential_confidence(confidence: float, looks: int) -> float:
    """The level each of `looks` successive checks must use so that deciding at any of them
    keeps `confidence` overall (Bonferroni: conservative, and right for any stopping rule)."""
    return 1.0 - (1.0 - confidence) / max(1, looks)


def runs_for_median_interval(confidence: float) -> int:
    """The fewest runs whose [min, max] covers the median at `confidence` (6 at 95%)."""
    return next(n for n in range(2, 64) if 1.0 - 2.0 * 0.5 ** n >= confidence - 1e-12)


def decide(ratio: Ratio, threshold: float) -> str:
    """The verdict of a comparison whose ratio is a speed (above 1: new is faster):
    'faster' when the whole interval is at or above 1 + threshold, 'slower' when it is at or
    below 1 - threshold, 'equivalent' when it lies within [1 - threshold, 1 + threshold]
    (two one-sided tests at the interval's level), else 'undecided' (also when the interval is nan).
    The checks run in that order, so a zero-width interval on a boundary is faster or slower."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, not {threshold!r}")
    low, high = ratio.low, ratio.high
    if np.isnan(low) or np.isnan(high):
        return "undecided"
    if low >= 1.0 + threshold:
        return "faster"
    if high <= 1.0 - threshold:
        return "slower"
    if low >= 1.0 - threshold and high <= 1.0 + threshold:
        return "equivalent"
    return "undecided"


def verdict_tally(ratios: np.ndarray, verdicts: list[str]) -> tuple[float, dict[str, int]]:
    """The geometric mean of comparisons' ratios (nan for none) and how many reached each verdict."""
    ratios = np.asarray(ratios, dtype=float)
    mean = float(np.exp(np.log(ratios).mean())) if len(ratios) else np.nan
    return mean, {verdict: sum(1 for v in verdicts if v == verdict) for verdict in VERDICTS}


@dataclass(frozen=True)
class LinearFit:
    """y = intercept + slope * x by ordinary least squares, with r2 and the slope's interval."""

    slope: float
    intercept: float
    r2: float         # 1 - residual / total sum of squares (nan when y does not vary)
    n: int            # points fitted
    slope_low: float  # the slope's t-interval with n - 2 degrees of freedom (nan below 3 points)
    slope_high: float


def linear_fit(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> LinearFit | None:
    """The least-squares line through the points whose x and y are both finite; None when fewer
    than 2 such points or x does not vary. The slope's interval (from 3 points): slope +-
    t(n - 2) x its standard error; a perfect fit has a zero-width interval."""
    _check_confidence(confidence)
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return None
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx
    intercept = float(y.mean() - slope * x.mean())
    residual = y - (intercept + slope * x)
    sse, sst = float(residual @ residual), float((y - y.mean()) @ (y - y.mean()))
    r2 = 1.0 - sse / sst if sst > 0 else np.nan
    low = high = np.nan
    if n >= 3:
        half = float(special.stdtrit(n - 2, 0.5 + confidence / 2)) * float(np.sqrt(sse / (n - 2) / sxx))
        low, high = slope - half, slope + half
    return LinearFit(slope, intercept, r2, n, low, high)
