"""
Cost of SAR in the engine's own training step (`sarlib.train.train_step`: forward with the [CLS] logits,
the loss (+ lambda * the regularizer), backward, AdamW step), as every epoch of a run executes it.

$ python benchmarks/step_overhead.py                      # CPU profile, plus GPU when present
$ python benchmarks/step_overhead.py --device cuda --repeats 30
$ python benchmarks/step_overhead.py --quick --results-dir /tmp/bench   # small batch, few steps (CI, tests)

Three arms, each with its own copy of the same weights and the same fixed batch (data loading is not
timed), built by the engine's set-up (`sarlib.train.setup.build_parts`) from the profile named below:
  none       the baseline step (no regularizer)
  ours       + lambda * sarlib.spatial_entropy(cls_logits, grid)
  reference  + lambda * the per-map OpenCV reference (benchmarks/reference.py)
Overhead = median step time of the arm / median of `none` - 1, in percent.

Devices:
  cuda  the `paper` profile's step (DeiT-S, 224 px, 14x14 grid, 6 heads, drop-path 0.1, mixup/CutMix,
        the no-skip block), batch 256, 1000 classes, bf16 autocast.
  cpu   the `cpu` profile's step (its tiny ViT, batch size and per-batch shift), 10 classes; fp32 (the
        engine uses AMP on CUDA only).
Arms are interleaved step by step so that background load hits all of them alike; `--warmup` untimed
steps per arm first. The reference arm is slow (one host round trip per map), so it gets
`--ref-repeats` timed steps. Writes one row per (device, arm) into `<--results-dir>/benchmarks.csv` (or
`--out`), replacing the rows of an earlier run on the same machine and configuration, and prints a
markdown table. `--quick` rows carry scale=quick, meaningful=False.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_speed import (  # noqa: E402
    common_parser,
    finish_args,
    markdown_table,
    scale_fields,
    start,
    sync,
    timing_row,
    write_results,
)
from reference import reference_spatial_entropy  # noqa: E402

from sarlib.train import load_profile, train_step  # noqa: E402
from sarlib.train.distributed import DistInfo  # noqa: E402
from sarlib.train.setup import build_parts  # noqa: E402

ARMS = ("none", "ours", "reference")
# (profile, fields changed for the benchmark, classes) per device
SETUPS = {
    "cuda": ("paper", dict(amp_dtype="bfloat16", batch_size=256, num_workers=0), 1000),
    "cpu": ("cpu", dict(), 10),
}


def build(device: str, arm: str, args):
    """The engine's parts for one arm, on `device`; every arm starts from the same weights (seeded)."""
    profile, fields, classes = SETUPS[device]
    if args.batch:
        fields = {**fields, "batch_size": args.batch}
    elif args.quick:
        fields = {**fields, "batch_size": 32 if device == "cuda" else 16}
    cfg = load_profile(profile, **fields, device=device, regularizer="none" if arm == "none" else "sar")
    torch.manual_seed(args.seed)
    parts = build_parts(cfg, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device(device)), classes,
                        resuming=False)
    if arm == "reference":
        parts.regularize = reference_spatial_entropy
    return cfg, parts


def bench_device(device: str, args) -> list[dict]:
    built = {arm: build(device, arm, args) for arm in args.arms}
    cfg, first = next(iter(built.values()))
    assert all(p.regularize is not None for a, (_, p) in built.items() if a != "none")
    grid, b, size = first.grid, cfg.batch_size, cfg.img_size
    heads = first.model.blocks[-1].attn.num_heads
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(b, 3, size, size, generator=gen).to(device)
    targets = torch.randint(0, SETUPS[device][2], (b,), generator=gen).to(device)
    steps = {arm: (lambda parts=parts: train_step(parts, images, targets, args.lam)) for arm, (_, parts) in built.items()}
    amp = "bf16" if cfg.amp and device == "cuda" else "off"
    print(
        f"  {device}: {cfg.model} ({cfg.profile} profile), batch {b}, {size}px, grid {grid[0]}x{grid[1]}, "
        f"{heads} heads, amp={amp}, no_skip={cfg.no_skip}, mixup={cfg.mixup > 0 or cfg.cutmix > 0}",
        flush=True,
    )
    for arm in args.arms:
        for _ in range(args.warmup):
            steps[arm]()
    sync(device)
    times = {arm: [] for arm in args.arms}
    budget = {arm: (args.ref_repeats if arm == "reference" else args.repeats) for arm in args.arms}
    for i in range(max(budget.values())):
        for arm in args.arms:
            if i >= budget[arm]:
                continue
            sync(device)
            start = time.perf_counter()
            steps[arm]()
            sync(device)
            times[arm].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times["none"]) if "none" in times else float("nan")
    ours = statistics.median(times["ours"]) if "ours" in times else float("nan")
    rows = []
    for arm, ts in times.items():
        med = statistics.median(ts)
        rows.append(timing_row(
            "step_overhead", device, b, heads, grid, arm, ts, ours,
            overhead_pct=round((med / base - 1.0) * 100.0, 2), model=cfg.model,
            model_kwargs=repr(cfg.model_kwargs), img_size=size, amp=amp, lam=args.lam,
            preset_source=f"sarlib.train.train_step, {cfg.profile} profile", **scale_fields(args.quick),
        ))
        print(f"    {arm:9s} {med:9.1f} ms  ({rows[-1]['overhead_pct']:+.1f}% vs none)", flush=True)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    p = common_parser(__doc__, unit="steps per arm", quick="batch 16 (CPU) / 32 (GPU), 2 repeats",
                      defaults={"repeats": (20, 2), "ref_repeats": (5, 1), "warmup": (2, 1)})
    p.add_argument("--batch", type=int, default=None, help="override the batch size")
    p.add_argument("--lam", type=float, default=0.01, help="SAR weight (lambda0 of the authors)")
    p.add_argument("--arms", default=",".join(ARMS), help="comma list of none,ours,reference")
    args = p.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad or not args.arms:
        p.error(f"--arms: unknown {bad}; choose from {ARMS}")
    return finish_args(p, args)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    devices = start("step_overhead", args, f"arms {args.arms}, repeats {args.repeats} / reference {args.ref_repeats}")
    rows: list[dict] = []
    wall = time.perf_counter()
    for device in devices:
        rows += bench_device(device, args)
    table = []
    for device in devices:
        by_arm = {r["impl"]: r for r in rows if r["device"] == device}
        first = next(iter(by_arm.values()))
        cells = []
        for arm in ARMS:
            r = by_arm.get(arm)
            if r is None:
                cells.append("-")
            elif arm == "none":
                cells.append(f"{r['median_ms']:.1f}")
            else:
                cells.append(f"{r['median_ms']:.1f} ({r['overhead_pct']:+.1f}%)")
        table.append([device, first["model"], first["B"], first["grid"], first["amp"], *cells])
    print()
    print(
        markdown_table(
            ["device", "model", "batch", "grid", "amp", "none ms", "ours ms (overhead)", "reference ms (overhead)"],
            table,
        )
    )
    if args.quick:
        print("\nNote: --quick times a small batch for a few steps to prove that the script runs; its rows are "
              "written with scale=quick, meaningful=False and must not be quoted.")
    write_results(args, rows, wall)
    return rows


if __name__ == "__main__":
    main()
