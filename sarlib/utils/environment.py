"""What a result was computed with: package versions, the dependency lock, and the machine.

`versions()` names the software, `lock_hash()` the exact environment it was installed from (the SHA-256
of `requirements/lock.txt`, when sarlib runs from a checkout that has it), `machine()` the hardware and
the kernels torch picked on it. All three are cached: none of it changes while a process runs, and
results writers call them once per row (the thread count in `machine()` is
read each time, since a run may set it).

Only the standard library and torch are imported here (this module sits in the lowest layer); the
other packages are read through their installed metadata, so asking for timm's version never imports
timm.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
from pathlib import Path

import torch

# distribution names as installed (Pillow's import name is PIL, so metadata is the one reliable source)
PACKAGES = ("torch", "torchvision", "timm", "numpy", "Pillow", "scipy")
# the lock sits at the repository root, two folders above this file's package (sarlib/utils/)
LOCK_FILE = Path(__file__).resolve().parents[2] / "requirements" / "lock.txt"
SHORT_HASH = 12
CPUINFO = Path("/proc/cpuinfo")


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpu() -> dict[str, str | None]:
    """Name and driver of the first visible GPU, or Nones without CUDA."""
    if not torch.cuda.is_available():
        return {"gpu_name": None, "gpu_driver": None}
    return {"gpu_name": torch.cuda.get_device_name(0), "gpu_driver": _nvidia_driver()}


def _nvidia_driver() -> str | None:
    # The driver's version is what the kernel module reports; torch exposes only the CUDA runtime's.
    path = Path("/proc/driver/nvidia/version")
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    for word in first.split():
        if word[:1].isdigit() and "." in word:
            return word
    return None


@functools.cache
def versions() -> dict[str, str | None]:
    """Python and the numeric stack's versions; CUDA, cuDNN, GPU name and driver (None without CUDA)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        found[name.lower()] = _distribution_version(name)
    cuda = torch.cuda.is_available()
    found["cuda"] = torch.version.cuda if cuda else None
    cudnn = torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None
    found["cudnn"] = str(cudnn) if cudnn is not None else None
    found.update(_gpu())
    return found


@functools.cache
def lock_hash(path: Path | None = None) -> str | None:
    """The first 12 hex digits of the lock file's SHA-256, or None when it is absent (a wheel install)."""
    lock = LOCK_FILE if path is None else Path(path)
    try:
        data = lock.read_bytes()
    except FileNotFoundError:
        return None
    return hashlib.sha256(data).hexdigest()[:SHORT_HASH]


def _cpu_model(cpuinfo: Path = CPUINFO) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    # no /proc (macOS, Windows) or no "model name" line (some ARM kernels)
    return platform.processor() or platform.machine()


@functools.cache
def _fixed_machine() -> dict[str, str | None]:
    return {"cpu_model": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), **_gpu()}


def machine() -> dict[str, str | int | None]:
    """The CPU model, the ISA level torch's CPU kernels use, torch's thread count, and the GPU."""
    # the thread count is read on every call: torch.set_num_threads() may change it between rows
    return {**_fixed_machine(), "torch_threads": torch.get_num_threads()}
