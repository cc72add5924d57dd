"""bench.progress: durations as people read them."""

from bench.progress import format_duration


def test_durations_read_well() -> None:

    assert [format_duration(s) for s in (0.4, 45, 185, 3720)] == ["0s", "45s", "3m05s", "1h02m"]
