"""The statistics of a cell: descriptive figures with a bootstrap CI of the median, and the
comparison of two sets of runs (ratio of medians, its CI, Welch's test, practical significance).

Seeded per comparison, so reports are reproducible and adding a cell never moves another's CI.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Settings:
    """Knobs of the statistics; the defaults are what reports use."""

    threshold: float = 0.05   # practical significance: |ratio - 1| must reach this
    alpha: float = 0.05       # Welch's t-test level
    noisy_cov: float = 0.05   # CoV above this flags a cell x target as noisy
    confidence: float = 0.95
    resamples: int = 4000
    seed: int = 1


def _rng(settings: Settings, *keys: str) -> np.random.Generator:
    # One stream per comparison, so adding a cell never changes another cell's CI.
    return np.random.default_rng([settings.seed, zlib.crc32("\0".join(keys).encode())])


def _boot_medians(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    return np.median(values[picks], axis=1)


def _bounds(settings: Settings) -> tuple[float, float]:
    tail = (1.0 - settings.confidence) / 2 * 100
    return tail, 100 - tail


def describe(values: np.ndarray, settings: Settings, *keys: str) -> dict[str, float]:
    """n, median, mean, stdev, CoV, min, max and the bootstrap CI of the median."""
    n = len(values)
    out = {"n": n, "median": np.nan, "mean": np.nan, "stdev": np.nan, "cov": np.nan,
           "ci_low": np.nan, "ci_high": np.nan, "min": np.nan, "max": np.nan}
    if n == 0:
        return out
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if n > 1 else np.nan
    out.update(median=float(np.median(values)), mean=mean, stdev=stdev,
               cov=stdev / mean if n > 1 and mean else np.nan,
               min=float(values.min()), max=float(values.max()))
    if n > 1:
        low, high = np.percentile(_boot_medians(values, _rng(settings, *keys), settings.resamples), _bounds(settings))
        out.update(ci_low=float(low), ci_high=float(high))
    return out


def compare(new: np.ndarray, base: np.ndarray, settings: Settings, *keys: str) -> dict[str, Any]:
    """Ratio of medians new/base with its bootstrap CI, Welch's p and the significance verdict."""
    out: dict[str, Any] = {"ratio": np.nan, "ratio_low": np.nan, "ratio_high": np.nan, "p": np.nan, "significant": False}
    if len(new) == 0 or len(base) == 0 or np.median(base) == 0:
        return out
    ratio = float(np.median(new) / np.median(base))
    out["ratio"] = ratio
    if len(new) < 2 or len(base) < 2:
        return out
    rng = _rng(settings, *keys)
    boot = _boot_medians(new, rng, settings.resamples) / _boot_medians(base, rng, settings.resamples)
    low, high = np.percentile(boot[np.isfinite(boot)], _bounds(settings))
    p = _welch_p(new, base)
    out.update(ratio_low=float(low), ratio_high=float(high), p=p,
               significant=bool(p < settings.alpha and abs(ratio - 1.0) >= settings.threshold))
    return out


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 and b.std() == 0:
        # No spread at all: scipy returns NaN; identical constants are "no difference".
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():
        # Nearly identical values (a few requests apart) make scipy warn about precision; the p is still right.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
