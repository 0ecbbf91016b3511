"""The package's own errors: one base class, so that a caller (and the ``tm23`` command, which prints them as
one line) can tell a mistake in the input or the environment from a bug.

Every error raised on purpose derives from :class:`TM23Error` and also from the builtin class a caller would
catch without knowing this package (``ValueError`` for bad values, ``KeyError`` for unknown names,
``RuntimeError`` for a step that cannot go on). Its message names the file, line, member, element or setting
and says what to do.
"""

from __future__ import annotations


class TM23Error(Exception):
    """Base of every error tm23data raises on purpose; the message says what was wrong and what to do."""


class UsageError(TM23Error, ValueError):
    """An argument, option, setting or name is not valid; the message lists the valid ones."""


class DataError(TM23Error, ValueError):
    """Input data (an archive, a member, a file, a cache) is malformed; the message names where."""


class ChecksumError(DataError):
    """Bytes do not have the digest they must have (an archive's md5, a cache dataset's xxh3): never used."""

    def __init__(self, what: str, expected: str, actual: str, advice: str = "", *, kind: str = "checksum"):
        self.what, self.expected, self.actual = what, expected, actual
        super().__init__(f"{what}: {kind} mismatch, expected {expected}, got {actual}." + (f" {advice}" if advice else ""))


class StepError(TM23Error, RuntimeError):
    """A step (download, build, training run, job submission) cannot go on; the message says why and what to do."""


def did_you_mean(name: object, choices, *, n: int = 1, cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``) for the closest of ``choices`` to ``name``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=cutoff)
    return (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
