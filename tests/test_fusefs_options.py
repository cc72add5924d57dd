"""bench.fusefs.options: what fusebench writes on the server's command line reads back as the
same values (a scenario's `ring_poll: 50us` reaches the server as 5e-05)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fusefs.cli import parse_options
from bench.fusefs.options import OPTIONS, for_transport, server_argv


def _sample(option) -> object:
    """A valid value other than the default."""
    if option.choices:
        return next(c for c in option.choices if c != option.default)
    if option.type is bool:
        return True
    if option.seconds:
        return 5e-05 if (option.maximum or 1) < 1 else 0.125
    return 3 if option.type is int else 0.5


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.name not in ("mode", "stats_file")], ids=lambda o: o.name)
def test_every_option_survives_the_round_trip_through_argv(tmp_path: Path, option) -> None:
    value = _sample(option)
    given = {"mode": option.only or "plain", option.name: value}
    if option.transport:
        given["transport"] = option.transport
    parsed = parse_options([str(tmp_path), str(tmp_path), *server_argv(given)])
    assert getattr(parsed, option.name) == value


def test_options_of_the_other_transport_are_left_out() -> None:
    assert for_transport({"transport": "dev", "threads": 2, "ring_depth": 8}) == {"transport": "dev", "threads": 2}
    assert for_transport({"transport": "uring", "threads": 2, "ring_poll": 1e-5}) == {"transport": "uring",
                                                                                      "ring_poll": 1e-5}
    assert for_transport({"threads": 2, "ring_depth": 8}) == {"threads": 2}  # dev by default
