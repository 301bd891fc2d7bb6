"""sarlib.utils.environment: versions, the lock's hash and the machine, as a result row records them."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import platform
import sys
from pathlib import Path

import torch

from sarlib.utils import environment as env

REPO = Path(__file__).resolve().parents[1]


def test_versions_name_the_installed_distributions():
    found = env.versions()
    assert found["python"] == platform.python_version()
    assert found["torch"] == importlib.metadata.version("torch")
    assert found["pillow"] == importlib.metadata.version("Pillow")
    for name in ("torchvision", "timm", "numpy", "scipy"):
        assert found[name] == importlib.metadata.version(name), name


def test_versions_without_cuda_leave_the_gpu_fields_empty():
    found = env.versions()
    keys = ("cuda", "cudnn", "gpu_name", "gpu_driver")
    if torch.cuda.is_available():
        assert found["cuda"] == torch.version.cuda and found["gpu_name"] == torch.cuda.get_device_name(0)
    else:
        assert [found[k] for k in keys] == [None] * 4


def test_a_missing_distribution_reads_as_none():
    assert env._distribution_version("no-such-distribution-sarlib") is None


def test_lock_hash_is_the_short_sha256_of_the_committed_lock():
    lock = REPO / "requirements" / "lock.txt"
    assert env.LOCK_FILE == lock
    assert env.lock_hash() == hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


def test_lock_hash_is_none_without_a_lock(tmp_path):
    # what a wheel install sees: no repository around the package
    assert env.lock_hash(tmp_path / "lock.txt") is None


def test_machine_reads_the_cpu_model_and_torch_state():
    found = env.machine()
    assert found["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert found["torch_threads"] == torch.get_num_threads()
    assert isinstance(found["cpu_model"], str) and found["cpu_model"]


def test_machine_follows_a_thread_count_change():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert env.machine()["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_cpu_model_comes_from_cpuinfo_with_a_fallback(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n")
    assert env._cpu_model(info) == "AMD EPYC 7B13 64-Core Processor"
    info.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert env._cpu_model(info) == (platform.processor() or platform.machine())
    assert env._cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine())


def test_constant_answers_are_cached():
    assert env.versions() is env.versions()
    assert env._fixed_machine() is env._fixed_machine()


def test_imports_only_the_standard_library_and_torch():
    """The lowest layer may not pull in numpy, timm or the rest: it must stay importable first."""
    tree = ast.parse(Path(env.__file__).read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert roots - {"torch", "__future__"} <= set(sys.stdlib_module_names), roots
