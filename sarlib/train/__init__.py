"""One training run: the config, the loop (train_one_epoch, evaluate), checkpoints, run directories, DDP.

    from sarlib.train import load_profile, train
    metrics = train(load_profile("smoke", output_dir="runs/smoke"))

The command line is `python -m sarlib.train` (sarlib.train.cli).
"""

from ..models.checkpoint import CheckpointError
from .config import PROFILES, TrainConfig, dataset_config, load_profile, resolve_config
from .engine import NonFiniteLossError, evaluate, train_one_epoch, train_step
from .loaders import build_loaders, build_segmentation_loader
from .loop import train
from .rundir import (METRICS_JSON, RunDirectoryError, RunLockedError, load_trained_model, lock_run_dir, read_metrics,
                     wait_for_run)
from .setup import build_model

__all__ = ["METRICS_JSON", "PROFILES", "CheckpointError", "NonFiniteLossError", "RunDirectoryError", "RunLockedError", "TrainConfig",
           "build_loaders", "dataset_config", "build_model", "build_segmentation_loader", "evaluate", "load_profile",
           "load_trained_model", "lock_run_dir", "read_metrics", "resolve_config", "train", "train_one_epoch", "train_step",
           "wait_for_run"]
