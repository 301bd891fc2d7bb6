"""Errors as one line: what every command prints, and what messages that wrap another error quote."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(err: BaseException, *, limit: int | None = None) -> str:
    """The error's message on one line. An error raised in a DataLoader worker arrives with the worker's
    traceback in its message; its last line ("pkg.module.Error: message") holds the message. With
    `limit`, only the first sentence, cut to `limit` characters (for quoting inside another message)."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    if len(lines) == 1:
        text = lines[0]
    else:
        name, sep, message = lines[-1].partition(": ")
        text = message if sep and name.replace(".", "").replace("_", "").isalnum() else lines[-1]
    if limit is None:
        return text
    text = " ".join(text.split()).split(". ")[0]
    return text if len(text) <= limit else text[:limit] + "..."
