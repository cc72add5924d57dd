"""The field types every part of a scenario is made of: names, fio-style sizes and durations,
the strict model base (unknown keys are errors), and `key()`, which gives a field its default
and its meaning (the README's tables are generated from them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bench.fusefs.units import parse_duration, parse_size

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
SEED_LIMIT = 2**64  # seeds are 0 to 2**64 - 1, as numpy's and random's own
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]


class LocatedError(ValueError):
    """A validation error about a place below the model being validated (for the file:line)."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


class Strict(BaseModel):
    """A part of a scenario: frozen, unknown keys refused, defaults validated too."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def key(default: Any, meaning: str, *, shown: str | None = None, **limits: Any) -> Any:
    """A scenario key: its default (in the spelling a user writes, e.g. "4k" or "5s"), what it
    means, and how the default reads where it is not a value (`shown`, e.g. "CPU count")."""
    extra = {"shown": shown} if shown is not None else None
    return Field(default=default, description=meaning, json_schema_extra=extra, **limits)


def passes(cache: str) -> int:
    """How many times a run's workload runs: twice with `cache: warm` (an unmeasured pass first)."""
    return 2 if cache == "warm" else 1
