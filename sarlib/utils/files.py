"""Safe files for run directories and results.

- `atomic_write`: a crash or kill leaves either the old file or the new one, never a torn one; a full
  disk raises `DiskFullError` (one line: the directory, the space free and needed) and keeps the old
  file; temporary files left by killed writers are removed by the next write into the same folder.
- `read_json`: a malformed JSON file raises `CorruptFileError` naming the file and the fix.
- `hold_lock`: an exclusive per-process lock on a file (flock, through `filelock`), released by the OS
  when its holder dies, so a killed process never blocks the next one.
- `claim_results_dir`: a folder a target writes its CSVs, figures and notebooks into is new, empty or
  marked as sarlib's; any other folder is refused in one line before anything is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from filelock import FileLock, Timeout

__all__ = [
    "sarlib_cache",
    "atomic_write", "atomic_write_text", "atomic_torch_save", "append_text", "read_json", "read_text_bounded", "hold_lock",
    "lock_in_use",
    "human_bytes", "shown_path", "claim_results_dir", "RESULTS_MARK", "temp_folder",
    "DiskFullError", "CorruptFileError", "LockHeldError", "ResultsFolderError",
]

# mkstemp creates files readable by their owner only; results should get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)

# Temporary names embed the writer's host and PID: `.<name>.<host>-<pid>.<random>.tmp`. A later writer
# removes a temp only when that process is gone, so concurrent writers never delete each other's live
# temp file, and on a filesystem shared by several hosts only the writer's own host judges it.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMP = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[a-z0-9_]+\.tmp$")
# Below this much free space, a failed write is taken to be a full disk even when the writer (torch's
# zip writer) reports it as something else, e.g. "unexpected pos 453696 vs 453584".
_LOW_SPACE = 4 << 20
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(OSError):
    """A write failed for lack of space; the message names the directory, space free and needed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC

    def __str__(self) -> str:
        return str(self.args[0])


class CorruptFileError(ValueError):
    """A file of a run or of results cannot be parsed; the message names the file and the fix."""


class ResultsFolderError(ValueError):
    """A results folder holds files sarlib did not write; the message names the folder and the fix."""


class LockHeldError(RuntimeError):
    """Another live process holds the lock; `holder` says which ("PID 123 on host x")."""

    def __init__(self, path: str | os.PathLike, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path = Path(path)
        self.holder = holder


# the folder the user ran the command from, when a tool runs elsewhere on their behalf (the Makefile runs
# the notebooks in notebooks/ and sets this to where `make` was called)
USER_CWD = "SARLIB_USER_CWD"


def shown_path(path: str | os.PathLike) -> str:
    """A path as the user can use it where they ran the command: relative to that folder (USER_CWD, else
    the working directory) when inside it, absolute otherwise (never relative to some other folder)."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path(os.environ.get(USER_CWD) or os.getcwd()).resolve()))
    except ValueError:
        return str(absolute)


# A target replaces its own CSVs, figures and executed notebook in its results folder; this marker says
# that a folder is one sarlib made, so those files are its own to replace (the committed results/ has it).
RESULTS_MARK = ".sarlib-results"


def claim_results_dir(path: str | os.PathLike) -> Path:
    """Make `path` a results folder of sarlib's (creating it and its marker) when it is new, empty or
    already marked; refuse any other folder, whose table2.csv or figures/ may be a user's own."""
    folder = Path(path)
    shown = shown_path(folder)
    if folder.exists() and not folder.is_dir():
        raise ResultsFolderError(f"the results folder {shown} is a file; choose a folder")
    if (folder / RESULTS_MARK).is_file():
        return folder
    if folder.is_dir() and any(folder.iterdir()):
        raise ResultsFolderError(
            f"the results folder {shown} holds files sarlib did not write (it has no {RESULTS_MARK} marker), which "
            f"a target would replace; choose a new or empty folder, or, if sarlib made it, mark it: "
            f"touch {os.path.join(shown, RESULTS_MARK)}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / RESULTS_MARK, "sarlib results: the targets that write here replace their own files\n")
    except OSError as err:  # read-only, full, or a path through a file
        raise ResultsFolderError(f"the results folder {shown} cannot be written ({err.strerror or err}); choose a "
                                 "folder you can write to") from None
    return folder


def sarlib_cache() -> Path:
    """The package-wide cache root, `$SARLIB_CACHE` or `~/.cache/sarlib`; each kind of data keeps its own
    subfolder (fetched Fashion-MNIST, generated synthetic sets, corrupted test sets)."""
    base = os.environ.get("SARLIB_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "sarlib"


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _remove_orphan_temps(folder: Path) -> None:
    """Delete temporary files and folders of writers on this host that died before renaming them."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and match["host"] == _HOST and not _pid_alive(int(match["pid"])):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)


@contextmanager
def temp_folder(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A temporary folder in `parent` (so its contents can be renamed into place), removed on exit. Its
    name carries this host and PID like atomic_write's temp files, so one that a killed process left is
    removed by the next call into the same folder, and a live one is never touched."""
    parent = Path(parent)
    _remove_orphan_temps(parent)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.{_HOST}-{os.getpid()}.", suffix=".tmp"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _disk_full(path: Path, tmp: Path, err: BaseException) -> DiskFullError | None:
    """A DiskFullError for `err` if it was caused by a full disk, else None."""
    free = _free_bytes(path.parent)
    reported = isinstance(err, OSError) and err.errno in _NO_SPACE
    if not reported and not (isinstance(err, Exception) and free is not None and free < _LOW_SPACE):
        return None
    written = tmp.stat().st_size if tmp.exists() else 0
    previous = path.stat().st_size if path.exists() else 0
    # The new file is at least what was written before the disk filled; a previous version of the same
    # file (checkpoints, tables) is the best estimate of its full size.
    needed = max(written, previous)
    kept = f"the previous {path.name} is kept" if path.exists() else f"{path.name} was not written"
    return DiskFullError(
        f"no space left in {path.parent} while writing {path.name}: "
        f"{human_bytes(free) if free is not None else 'unknown'} free, "
        f"{f'about {human_bytes(needed)}' if needed else 'more'} needed; "
        f"free some space (or point the output elsewhere) and run the same command again; {kept}"
    )


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphan_temps(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as err:
        full = _disk_full(path, Path(tmp), err)
        Path(tmp).unlink(missing_ok=True)
        if full is not None:
            raise full from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append to a file (a log); a full disk raises DiskFullError naming the file."""
    path = Path(path)
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as err:
        if err.errno not in _NO_SPACE:
            raise
        free = _free_bytes(path.parent)
        raise DiskFullError(
            f"no space left in {path.parent} while appending to {path.name}: "
            f"{human_bytes(free) if free is not None else 'unknown'} free, {human_bytes(len(text.encode()))} "
            "needed; free some space and run the same command again"
        ) from err


# the largest text file sarlib reads back (a run's log.jsonl of thousands of epochs is a few MB)
MAX_TEXT_BYTES = 64 * 1024 * 1024


def read_text_bounded(path: str | os.PathLike, *, fix: str, limit: int = MAX_TEXT_BYTES) -> str:
    """A regular file's text, read only when it is one and no larger than `limit`: a FIFO, device or folder
    under a name sarlib reads (which would block or never end) and an oversized file raise CorruptFileError
    naming the file and `fix`, before anything is read."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise CorruptFileError(f"{path} cannot be read ({err.strerror or err}); {fix}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CorruptFileError(f"{path} is not a regular file (a pipe, device or folder); {fix}")
    if info.st_size > limit:
        raise CorruptFileError(f"{path} holds {info.st_size:,} bytes, more than the {limit:,} sarlib reads; {fix}")
    try:
        with path.open("rb") as handle:
            return handle.read(limit + 1).decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path} is not a text file; {fix}") from None


def read_json(path: str | os.PathLike, *, fix: str) -> Any:
    """The parsed JSON file; a malformed, nested-without-end, special or oversized one raises
    CorruptFileError naming the file and `fix`."""
    path = Path(path)
    text = read_text_bounded(path, fix=fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
    except RecursionError:
        problem = "nests its values deeper than any file sarlib writes"
    raise CorruptFileError(f"{path} {problem}; {fix}")


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


def lock_in_use(path: str | os.PathLike) -> bool:
    """Whether a hold_lock holder is alive, read from the lock file's text ("PID 123 on host x") without
    taking the lock (taking it, even for an instant, could refuse a process that is starting). A holder on
    another host cannot be checked and counts as alive."""
    match = re.fullmatch(r"PID (\d+) on host (.+)", _holder(Path(path)))
    if match is None:
        return False
    return _pid_alive(int(match[1])) if match[2] == socket.gethostname() else True


@contextmanager
def hold_lock(path: str | os.PathLike, *, wait: bool = False,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the body; without `wait`, raise LockHeldError if it is taken.

    The lock is an flock on the file (the OS drops it when its holder exits or is killed, so a stale
    file never blocks); the file's text records the holder ("PID 123 on host x") for error messages.
    `on_wait(holder)` is called once before blocking.
    """
    path = Path(path)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise LockHeldError(path, _holder(path)) from None
        if on_wait is not None:
            on_wait(_holder(path))
        lock.acquire()
    try:
        # flock is advisory: writing through another descriptor does not disturb it.
        path.write_text(f"PID {os.getpid()} on host {socket.gethostname()}\n")
        yield
    finally:
        with suppress(OSError):  # the directory may be gone; the flock goes with the descriptor anyway
            path.write_text("")
        lock.release()
