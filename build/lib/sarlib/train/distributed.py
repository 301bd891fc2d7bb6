"""Process-group setup: a plain process needs nothing; torchrun's environment turns on DDP.

NCCL on GPUs, gloo on CPU. Multi-node works through torchrun's usual rendezvous variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _pick_device(request: str, local_rank: int) -> torch.device:
    if request == "cuda" or (request == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            # a bad input, not a crash: ValueError gives the CLI's one-line error
            raise ValueError("device=cuda was requested but no CUDA device is visible; use --device cpu (or auto)")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if request not in ("auto", "cpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {request!r}")
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
