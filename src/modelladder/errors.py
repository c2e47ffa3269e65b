"""The one error type for bad input: the CLI prints its problems and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(Exception):
    """Bad input from the user (config, data file, CLI argument, checkpoint).

    Carries every problem found, each a full sentence naming the field or file, the bad value and
    what is allowed, so that a user fixes them all in one go.
    """

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a choice is close to `name`, else ''."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(field: str, name: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    return f"{field} must be one of {choices}, got '{name}'{did_you_mean(name, choices)}"
