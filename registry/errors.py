"""Errors a person can act on: which file, which line, which field, what was expected, and a likely fix."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

SHOWN_CHARACTERS = 80  # of a user-given string quoted back in a message


def shown(value, limit: int = SHOWN_CHARACTERS) -> str:
    """repr() of a user-given string for a message, at most `limit` of its characters: a 100,000-character --task
    is named, not echoed whole."""
    text = str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def did_you_mean(word: str, candidates, cutoff: float = 0.6) -> str | None:
    """The closest candidate to a misspelled key or id, or None (none for a word far longer than any id)."""
    if len(str(word)) > 4 * SHOWN_CHARACTERS:
        return None
    matches = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=cutoff)
    return matches[0] if matches else None


@dataclass
class CardProblem:
    """One problem with one card."""

    file: Path | None
    message: str
    pointer: str = ""  # JSON pointer of the field, "" for the whole card
    line: int | None = None
    expected: str | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<card>"
        if self.line:
            where += f":{self.line}"
        # a problem of the registry as a whole (no file, no field) is its message alone
        text = self.message if self.file is None and not self.pointer else f"{where}: {self.pointer or '/'}: {self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        if self.suggestion:
            text += f" — did you mean {self.suggestion!r}?"
        return text


class RegistryError(Exception):
    """Base of every error the project raises for a person to act on: `str()` is the human message, `exit_code` the
    status the CLI exits with (2 bad input, 1 a failure). `runner.cli.app` prints it in one line, never a traceback."""

    exit_code: int = 1

    def __init__(self, *args, exit_code: int | None = None):
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class CardError(RegistryError):
    """One or more card problems. `str()` gives one line per problem."""

    exit_code = 2

    def __init__(self, problems: list[CardProblem] | CardProblem):
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("\n".join(str(p) for p in self.problems))

    # Shortcuts for the first (often only) problem, for callers and tests.
    @property
    def file(self) -> Path | None:
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def pointer(self) -> str:
        return self.problems[0].pointer
