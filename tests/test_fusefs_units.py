"""bench.fusefs.units: fio-style sizes and durations."""

import pytest

from bench.fusefs.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("4k", 4096),
        ("4K", 4096),
        ("4KiB", 4096),
        ("4kb", 4096),
        ("1M", 1 << 20),
        (" 1 m ", 1 << 20),
        ("1.5k", 1536),
        ("2G", 2 << 30),
        ("1t", 1 << 40),
        ("1p", 1 << 50),
        (0, 0),
    ],
)
def test_parse_size_accepts_fio_spellings(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12XB", "is not a size"),
        ("", "is not a size"),
        ("-4k", "is not a size"),
        ("4 k b", "is not a size"),
        ("0.1k", "not a whole number of bytes"),
        (-1, "cannot be negative"),
        (True, "not a boolean"),
        ("inf", "is not a size"),
    ],
)
def test_parse_size_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        parse_size(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (3, 3.0),
        (2.5, 2.5),
        ("10", 10.0),
        ("10s", 10.0),
        ("10S", 10.0),
        ("500ms", 0.5),
        ("250us", 0.00025),
        ("2m", 120.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        (" 3 s ", 3.0),
    ],
)
def test_parse_duration_accepts_units(text, expected):
    assert parse_duration(text) == pytest.approx(expected)


def test_sub_second_durations_are_the_nearest_float() -> None:
    """What a description or an argv shows: 5e-05, not 4.9999999999999996e-05."""
    assert (parse_duration("50us"), parse_duration("300ms"), parse_duration("7us")) == (5e-05, 0.3, 7e-06)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 fortnights", "is not a duration"),
        ("10sec", "is not a duration"),
        ("", "is not a duration"),
        (-1, "cannot be negative"),
        (False, "not a boolean"),
        (float("nan"), "is not a duration"),
        (float("inf"), "is not a duration"),
    ],
)
def test_parse_duration_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0"), (512, "512"), (1536, "1536"), (4096, "4k"), (1 << 20, "1m"), (3 << 30, "3g"), (1 << 40, "1t"), (1 << 50, "1p")],
)
def test_format_size_is_shortest_exact(size, text):
    assert format_size(size) == text
    assert parse_size(text) == size
