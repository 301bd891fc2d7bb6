"""requirements/lock.txt matches pyproject.toml: CI fails when the dependencies changed and the lock was
not re-compiled (`make lock`), before anything slow runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
_spec = importlib.util.spec_from_file_location("stamp", REPO / "requirements" / "stamp.py")
stamp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stamp)

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _pins(text: str) -> dict[str, str]:
    return {canonicalize_name(m.group(1)): m.group(2) for m in map(PIN.match, text.splitlines()) if m}


def test_the_lock_was_compiled_from_this_pyproject():
    first = LOCK.read_text().splitlines()[0]
    if first != stamp.PREFIX + stamp.fingerprint():
        pytest.fail("requirements/lock.txt is stale: pyproject.toml's dependencies changed since it was "
                    "compiled; run `make lock` and commit the lock", pytrace=False)


def test_the_fingerprint_sees_dependency_edits_and_only_them(tmp_path):
    original = (REPO / "pyproject.toml").read_text()
    edited = tmp_path / "pyproject.toml"
    edited.write_text(original.replace('"scipy>=1.11"', '"scipy>=1.12"'))
    assert stamp.fingerprint(edited) != stamp.fingerprint()
    edited.write_text(original.replace('addopts = "-ra"', 'addopts = "-ra -v"'))
    assert stamp.fingerprint(edited) == stamp.fingerprint()


def test_every_declared_requirement_is_pinned_within_its_range():
    pins = _pins(LOCK.read_text())
    tables = stamp.dependency_tables(REPO / "pyproject.toml")
    declared = [*tables["dependencies"], *tables["build-system.requires"],
                *(r for extra in tables["optional-dependencies"].values() for r in extra)]
    outside = []
    for line in declared:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "sarlib":
            continue  # an extra naming the package itself
        if name not in pins or not req.specifier.contains(pins[name], prereleases=True):
            outside.append(f"{line} (locked: {pins.get(name)})")
    assert outside == [], "run `make lock`"


def test_every_pin_carries_a_hash():
    # pip's --require-hashes refuses the whole file otherwise; pip-compile writes the hashes on the
    # continuation lines after each pin
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    unhashed = [b.split()[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
    assert _pins(LOCK.read_text()) and unhashed == []


def test_the_stamp_refuses_another_platform(monkeypatch, capsys):
    monkeypatch.setattr(stamp, "here", lambda: ("3.12", "Darwin", "arm64"))
    assert stamp.main(["--check"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Python 3.11 on Linux x86_64" in err
