"""
Every GPU measurement the documentation waits for, in one command (`make gpu-check`):

  1. loss_speed.py --device cuda      the loss alone, ours vs the per-map reference (CUDA grid)
  2. step_overhead.py --device cuda   the paper profile's DeiT-S training step, none / ours / reference
  3. a short `paper` training run per arm (DeiT-S, 224 px, fp16 AMP, batch 128 on one GPU, the full
     augmentation and data loading) on synthetic images exported as JPEG files in ImageNet's layout, so
     the loader decodes real files as it would on ImageNet: R, the training images/s of one GPU that
     docs/profiles.md divides the GPU-hours by (metrics.json `images_per_s` / world size).

$ python benchmarks/gpu_check.py                        # rows into results/benchmarks.csv
$ python benchmarks/gpu_check.py --results-dir /tmp/b   # elsewhere

The run trains `--epochs` epochs of `--steps / --epochs` steps (default 4 x 50 = 200 steps) and R is
the median epoch's throughput, so the first epoch (CUDA context, cuDNN autotuning, loader start-up)
does not count. Arms: `sar` (the profile as the study runs it: SAR + the no-skip block) and `none`.
Training rows go into the same CSV as the other two scripts' rows (benchmark = train-throughput,
impl = the arm, B = the per-GPU batch), replacing the rows of the same machine and configuration.

Without CUDA it prints one line and exits 0 without writing anything: the point of this command is
the GPU figures, and CPU figures of the same scripts come from `make bench`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from loss_speed import CSV_NAME, DEFAULT_RESULTS, claim_or_exit, common_fields, replace_rows  # noqa: E402

from sarlib.utils.environment import lock_hash, versions  # noqa: E402

ARMS = {"sar": [], "none": ["--regularizer", "none", "--no-no-skip"]}
VAL_IMAGES = 512
CLASSES = 10


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default=str(DEFAULT_RESULTS), help=f"rows go to DIR/{CSV_NAME}")
    p.add_argument("--steps", type=int, default=200, help="training steps per arm (default 200)")
    p.add_argument("--epochs", type=int, default=4, help="epochs the steps are split into (default 4)")
    p.add_argument("--batch", type=int, default=128, help="per-GPU batch (default 128, the paper's)")
    p.add_argument("--work-dir", default=None,
                   help="where the images and runs go (default: a temporary folder, removed afterwards)")
    args = p.parse_args(argv)
    if args.epochs < 2 or args.steps < args.epochs or args.batch < 1:
        p.error("--epochs must be >= 2 (the first one is warm-up), --steps >= --epochs, --batch >= 1")
    return args


def run(cmd: list[str]) -> None:
    """A step of the check, in its own process, from the repository root; a failure stops the check."""
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def train_row(arm: str, run_dir: Path, args: argparse.Namespace, steps_per_epoch: int) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    r = metrics["images_per_s"] / metrics["world_size"]
    return {
        "benchmark": "train-throughput",
        **common_fields("cuda"),
        "B": args.batch,
        "impl": arm,
        "model": config["model"],
        "img_size": config["img_size"],
        "amp": config["amp_dtype"] if config.get("amp") else "none",
        "images_per_s": round(r, 1),
        "steps": steps_per_epoch * args.epochs,
        "epochs": args.epochs,
        "train_seconds": round(metrics["train_seconds"], 2),
        "scale": "full",
        "meaningful": True,
        "cuda": versions()["cuda"],
        "gpu_driver": versions()["gpu_driver"],
        "lock_hash": lock_hash(),
    }


def train_throughput(args: argparse.Namespace, work: Path) -> list[dict]:
    steps_per_epoch = args.steps // args.epochs
    root = work / "data"
    # exactly one epoch's worth of images: every epoch reads (and decodes) each file once
    run([sys.executable, "-m", "sarlib.data.synthetic", "export", "--layout", "imagefolder", "--root", str(root),
         "--size", "224", "--num-train", str(steps_per_epoch * args.batch), "--num-val", str(VAL_IMAGES),
         "--num-classes", str(CLASSES)])
    rows = []
    for arm, flags in ARMS.items():
        run_dir = work / f"run-{arm}"
        run([sys.executable, "-m", "sarlib.train", "--profile", "paper", "--dataset", "imagenet",
             "--data-root", str(root), "--device", "cuda", "--amp", "--batch-size", str(args.batch),
             "--epochs", str(args.epochs), "--warmup-epochs", "1", "--max-steps-per-epoch", str(steps_per_epoch),
             "--output-dir", str(run_dir), *flags])
        rows.append(train_row(arm, run_dir, args, steps_per_epoch))
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False); "
              "nothing measured, nothing written")
        return 0
    claim_or_exit(args.results_dir)  # before the measurements, not after them
    wall = time.perf_counter()
    results = Path(args.results_dir)
    for script in ("loss_speed.py", "step_overhead.py"):
        run([sys.executable, str(HERE / script), "--device", "cuda", "--results-dir", str(results)])
    if args.work_dir:
        rows = train_throughput(args, Path(args.work_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="sar-gpu-check-") as tmp:
            rows = train_throughput(args, Path(tmp))
    out = replace_rows(results / CSV_NAME, rows)
    print("\n| arm | model | batch/GPU | amp | R (images/s per GPU) |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['impl']} | {row['model']} | {row['B']} | {row['amp']} | {row['images_per_s']} |")
    print(f"\n{len(rows)} training rows written to {out}; gpu-check took {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
