"""The Makefile's variables, checked before any recipe uses them: run as a file, with the standard library
only (`python3 sarlib/utils/make_inputs.py FILE`), so the check works before `make setup` and imports
nothing.

The values arrive in FILE, one `NAME=value` per line, written by make's `$(file ...)` (no shell parses
them on the way); the file is removed once read. Each variable has the class of the place its value goes
to in a recipe:

- paths (RESULTS, DATA_ROOT, BENCH_RESULTS, SPREAD_OUT, SHOTS) go into shell words, some unquoted: letters, digits and
  `._-/+,:@%=~` only, no spaces;
- notebook parameters (OVERRIDES, SEEDS, ...) go inside single quotes: anything but a single quote or a
  line break;
- words (PROFILE, NPROC, LAB_PORT) go bare: letters, digits, `_` and `-` only.

Prints one line naming the variable, the character and the fix (make stops with it), or nothing.
"""

from __future__ import annotations

import os
import sys

PATHS = ("RESULTS", "DATA_ROOT", "BENCH_RESULTS", "SPREAD_OUT", "SHOTS")
QUOTED = ("OVERRIDES", "LAUNCHER", "SLURM_PARTITION", "GPUS_PER_NODE", "NODES", "TIMEOUT_MIN", "JOBS", "FROM_ROWS", "DATASETS",
          "SEEDS", "EPOCHS")
WORDS = ("PROFILE", "NPROC", "LAB_PORT")
_PATH_CHARS = set("._-/+,:@%=~")
_WORD_CHARS = set("_-")


def problem(name: str, value: str) -> str | None:
    """What is wrong with `value` for the Makefile variable `name`, or None."""
    if name in PATHS:
        bad = next((c for c in value if not (c.isalnum() or c in _PATH_CHARS)), None)
        fix = "pass a path of letters, digits and ._-/+,:@%=~ (e.g. a symlink to the folder)"
    elif name in QUOTED:
        bad = next((c for c in value if c in "'\n\r"), None)
        fix = "write it without single quotes or line breaks (JSON strings take double quotes)"
    else:
        bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in _WORD_CHARS))), None)
        fix = "use letters, digits, _ and - only"
    return None if bad is None else f"{name} holds {bad!r}, which the shell would act on; {fix}"


def read(path: str) -> dict[str, str]:
    """NAME -> value from make's file (make separates its lines with a space; a value's own line break
    leaves a line without a known name, reported as such)."""
    values: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        text = handle.read()
    last = None
    for line in text.split("\n"):
        name, sep, value = line.lstrip(" ").partition("=")
        if sep and name in (*PATHS, *QUOTED, *WORDS):
            values[name], last = value, name
        elif line.strip() and last is not None:
            values[last] += "\n" + line  # a line break inside the value
    return values


def main(argv: list[str]) -> int:
    path = argv[0]
    try:
        values = read(path)
    finally:
        os.unlink(path)
    for name in (*PATHS, *QUOTED, *WORDS):
        found = problem(name, values.get(name, ""))
        if found:
            print(f"error: {found}; nothing was run")
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
