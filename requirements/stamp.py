"""The fingerprint that ties requirements/lock.txt to pyproject.toml.

`make lock` writes `# pyproject-sha256: <hex>` as the lock's first line: the SHA-256 of the tables the
lock is compiled from (build-system.requires, project.requires-python, project.dependencies and
project.optional-dependencies), serialized as sorted JSON, so an edit to anything else in
pyproject.toml (a comment, the pytest options) does not call for a new lock. tests/test_lock.py
recomputes it and fails when the two disagree.

    python requirements/stamp.py            print the header line for the current pyproject.toml
    python requirements/stamp.py --check    exit 1 with one line unless this interpreter is the lock's
                                            target (CPython 3.11 on linux x86_64)
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "# pyproject-sha256: "
# pip-compile resolves for the interpreter that runs it; the lock is only valid where it was made
TARGET = ("3.11", "Linux", "x86_64")


def dependency_tables(pyproject: Path) -> dict:
    data = tomllib.loads(pyproject.read_text())
    project = data.get("project", {})
    return {
        "build-system.requires": data.get("build-system", {}).get("requires", []),
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
    }


def fingerprint(pyproject: Path = REPO / "pyproject.toml") -> str:
    text = json.dumps(dependency_tables(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def here() -> tuple[str, str, str]:
    return (".".join(platform.python_version_tuple()[:2]), platform.system(), platform.machine())


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if here() != TARGET:
            print(f"the lock is compiled for Python {TARGET[0]} on {TARGET[1]} {TARGET[2]}; this is "
                  f"Python {here()[0]} on {here()[1]} {here()[2]}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print("usage: python requirements/stamp.py [--check]", file=sys.stderr)
        return 2
    print(PREFIX + fingerprint())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
