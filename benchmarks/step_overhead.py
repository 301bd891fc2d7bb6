"""
Cost of SAR in a full training step: forward, CE (+ lambda * SAR), backward, AdamW step.

$ python benchmarks/step_overhead.py                      # CPU preset, plus GPU when present
$ python benchmarks/step_overhead.py --device cuda --repeats 30
$ python benchmarks/step_overhead.py --quick --results-dir /tmp/bench   # small batch, few steps (CI, tests)

Three arms on the same model and the same fixed batch (data loading is not timed):
  none       CE only; a plain timm model built with the same arguments and weights (no [CLS] hook)
  ours       CE + lambda * sarlib.spatial_entropy(cls_logits, grid)
  reference  CE + lambda * the per-map OpenCV reference (benchmarks/reference.py)
Overhead = median step time of the arm / median of `none` - 1, in percent.

Devices:
  cuda  DeiT-S (deit_small_patch16_224, 224 px, 14x14 grid, 6 heads, drop-path 0.1), batch 256,
        1000 classes, bf16 autocast.
  cpu   the `cpu` preset's tiny ViT and batch size, from sarlib.train.config.load_preset("cpu"), 10 classes;
        fp32 (sarlib's engine uses AMP on CUDA only).
Arms are interleaved step by step so that background load hits all of them alike; `--warmup` untimed
steps per arm first. The reference arm is slow (one host round trip per map), so it gets
`--ref-repeats` timed steps. Writes one row per (device, arm) into `<--results-dir>/benchmarks.csv` (or
`--out`), replacing the rows of an earlier run on the same machine and configuration, and prints a
markdown table. `--quick` rows carry scale=quick, meaningful=False.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

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

import sarlib  # noqa: E402
from sarlib.train.config import load_preset  # noqa: E402

ARMS = ("none", "ours", "reference")
GPU_SETUP = {
    "model": "deit_small_patch16_224",
    "model_kwargs": {"drop_path_rate": 0.1},
    "img_size": 224,
    "batch_size": 256,
    "num_classes": 1000,
    "source": "DeiT-S",
}
def cpu_setup() -> dict:
    """The `cpu` preset's model and batch size, so the CPU row measures what `make reproduce-*` trains."""
    preset = load_preset("cpu")
    kwargs = dict(preset.model_kwargs, drop_path_rate=float(preset.drop_path))
    if preset.no_skip:
        kwargs["no_skip"] = True
    return {
        "model": preset.model,
        "model_kwargs": kwargs,
        "img_size": int(preset.img_size),
        "batch_size": int(preset.batch_size),
        "num_classes": 10,
        "source": "sarlib.train.config cpu preset",
    }


def build(setup: dict, device: str, seed: int):
    """(plain timm model for `none`, sarlib model with [CLS] capture, same weights)."""
    torch.manual_seed(seed)
    kwargs = dict(setup["model_kwargs"])
    no_skip = bool(kwargs.pop("no_skip", False))
    sar_model = sarlib.create_model(
        setup["model"], num_classes=setup["num_classes"], img_size=setup["img_size"], no_skip=no_skip, **kwargs
    )
    if no_skip:  # the plain arm must have the same architecture: reuse a copy without the hook
        import copy

        plain = copy.deepcopy(sar_model)
        plain.blocks[-1].attn.qkv._forward_hooks.clear()
    else:
        plain = timm.create_model(
            setup["model"], num_classes=setup["num_classes"], img_size=setup["img_size"], **kwargs
        )
        plain.load_state_dict(sar_model.state_dict())
    return plain.to(device).train(), sar_model.to(device).train()


def make_step(model, arm: str, grid, images, targets, device: str, amp: bool, lam: float):
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
    loss_fn = {"ours": sarlib.spatial_entropy, "reference": reference_spatial_entropy}.get(arm)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        ctx = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with ctx:
            if loss_fn is None:
                logits = model(images)
                loss = F.cross_entropy(logits, targets)
            else:
                logits, cls_logits = sarlib.forward_with_attention(model, images)
                loss = F.cross_entropy(logits, targets)
        if loss_fn is not None:
            loss = loss + lam * loss_fn(cls_logits, grid)  # both compute in float32 internally
        loss.backward()
        opt.step()

    return step


def bench_device(device: str, args) -> list[dict]:
    setup = dict(GPU_SETUP) if device == "cuda" else cpu_setup()
    if args.batch:
        setup["batch_size"] = args.batch
    elif args.quick:
        setup["batch_size"] = 32 if device == "cuda" else 16
    amp = device == "cuda"
    plain, sar_model = build(setup, device, args.seed)
    grid = sarlib.patch_grid(sar_model)
    heads = sar_model.blocks[-1].attn.num_heads
    gen = torch.Generator().manual_seed(args.seed)
    b, size = setup["batch_size"], setup["img_size"]
    images = torch.randn(b, 3, size, size, generator=gen).to(device)
    targets = torch.randint(0, setup["num_classes"], (b,), generator=gen).to(device)
    # separate models for the SAR arms, so that each arm's optimizer state evolves on its own weights
    models = {"none": plain, "ours": sar_model}
    if "reference" in args.arms:
        import copy

        models["reference"] = copy.deepcopy(sar_model)
        sarlib.enable_cls_attention(models["reference"])  # rebinds the hook to the copy (idempotent)
    steps = {arm: make_step(models[arm], arm, grid, images, targets, device, amp, args.lam) for arm in args.arms}
    print(
        f"  {device}: {setup['model']} ({setup['source']}), batch {b}, {size}px, grid {grid[0]}x{grid[1]}, "
        f"{heads} heads, amp={'bf16' if amp else 'off'}",
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
            overhead_pct=round((med / base - 1.0) * 100.0, 2), model=setup["model"],
            model_kwargs=repr(setup["model_kwargs"]), img_size=size, amp="bf16" if amp else "off", lam=args.lam,
            preset_source=setup["source"], **scale_fields(args.quick),
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
