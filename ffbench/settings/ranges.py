"""The grammar of ranges ("2..47", "2..47:5", "2,4,8" or mixtures) and of name lists."""

from __future__ import annotations

import re

from ffbench.errors import BadInput
from ffbench.settings.checks import INT64_MAX, one_of

DEFAULT_MAX_VALUES = 10_000  # values one range may expand to unless the caller allows more
_NUMBER = r"([0-9]{1,19})"  # at most 19 digits: anything longer is beyond int64 anyway


def parse_int_range(
    text: str, *, flag: str, max_values: int = DEFAULT_MAX_VALUES, limit_hint: str = "",
    high: int = INT64_MAX,
) -> list[int]:
    """Expand "2..47", "2..47:5", "2,4,8" or mixtures like "2,4..8:2" into sorted unique ints
    in [1, high].

    The ranges are counted and bounded before anything is expanded: a value above `high` or
    more than `max_values` values is refused (BadInput), so "1..1000000000000" costs
    nothing."""
    ranges: list[range] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(rf"{_NUMBER}\.\.{_NUMBER}(?::{_NUMBER})?", part)
        single = re.fullmatch(_NUMBER, part)
        if match:
            start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
            if stop < start:
                raise BadInput(f"--{flag}: range {part!r} runs backwards (write {stop}..{start})")
            if step < 1:
                raise BadInput(f"--{flag}: step in {part!r} must be at least 1")
            ranges.append(range(start, stop + 1, step))
        elif single:
            ranges.append(range(int(part), int(part) + 1))
        else:
            raise BadInput(f"--{flag}: cannot read {part!r} (use 2..47, 2..47:5 or 2,4,8)")
    if not ranges or min(r.start for r in ranges) < 1:
        raise BadInput(f"--{flag}: every value must be at least 1, got {text!r}")
    if max(r[-1] for r in ranges) > high:
        raise BadInput(f"--{flag}: every value must be at most {high}, got {text!r}")
    count = sum(len(r) for r in ranges)  # an upper bound of the unique values
    if count > max_values:
        raise BadInput(f"--{flag} {text}: {count} values, more than the limit of "
                       f"{max_values}{limit_hint}")
    return sorted({value for r in ranges for value in r})


NAME_PATTERN = re.compile(r"[\w.+-]+")  # what a registered name may hold


def parse_names(text: str, *, flag: str, known: tuple[str, ...] | None) -> list[str]:
    """Split "bp,ff,rff" into names, each once (in the order first given), and check every
    name is known (`known` None: only that it is a name)."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise BadInput(f"--{flag}: no names given")
    for name in names:
        if known is not None:
            one_of(flag.rstrip("s"), name, known)
        elif not NAME_PATTERN.fullmatch(name):
            raise BadInput(f"--{flag}: {name!r:.40} is not a name")
    return names
