"""fio-style sizes (4k, 1M, 1G) and durations (500ms, 10s, 2m, 1h).

The server's time options take these durations and fusebench's scenarios take both, so they
live here, in the stand-alone package, and both read them the same way.
"""

import math
import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$", re.IGNORECASE)
GIB = 1 << 30
_SIZE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": GIB, "t": 1 << 40, "p": 1 << 50}

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*(us|ms|s|m|h)?\s*$", re.IGNORECASE)
# Seconds per unit as (multiplier, divisor): 50us is 50 / 1e6 (5e-05), not 50 * 1e-6 (4.9999999999999996e-05).
_DURATION_FACTORS = {"us": (1, 1e6), "ms": (1, 1e3), "s": (1, 1), "m": (60, 1), "h": (3600, 1), None: (1, 1)}


def parse_size(value: int | str) -> int:
    """Bytes from an int or a fio-style size; suffixes are powers of 1024 as in fio."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 4k, 1M or 1G, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size; use bytes or a suffix: 4k, 1M, 1G")
    number, suffix, _ = match.groups()
    size = float(number) * _SIZE_FACTORS[suffix.lower()]
    if size != int(size):
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(size)


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number or a duration with a unit: 500ms, 10s, 2m, 1h."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 10s or 2m, not a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; use a number and a unit: 500ms, 10s, 2m, 1h")
    number, unit = match.groups()
    multiplier, divisor = _DURATION_FACTORS[unit.lower() if unit else None]
    return float(number) * multiplier / divisor


def format_size(size: int) -> str:
    """The shortest exact fio-style spelling of a size (4096 -> '4k')."""
    for suffix in ("p", "t", "g", "m", "k"):
        factor = _SIZE_FACTORS[suffix]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)
