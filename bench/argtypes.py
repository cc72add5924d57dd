"""argparse value types shared by the fusebench and built-in server command lines."""

import argparse

from bench.units import parse_duration


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def seconds(text: str) -> float:
    """A duration >= 0 in seconds, with an optional unit: 0.25, 500ms, 2m."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
