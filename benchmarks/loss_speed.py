"""
Forward+backward time of `sarlib.spatial_entropy` against the per-map OpenCV reference (reference.py).

$ python benchmarks/loss_speed.py                        # CPU, plus CUDA when present; full grid
$ python benchmarks/loss_speed.py --device cuda --repeats 30
$ python benchmarks/loss_speed.py --quick --out /tmp/bench.csv   # reduced grid, seconds (CI, tests)

Grid: B in {64, 256} x heads in {3, 6, 12} x patch grids 14x14 and 28x28, on each device. Before a
shape is timed the two implementations must agree on it (loss to 1e-5 relative, gradients allclose);
otherwise the script aborts with a non-zero exit and times nothing more. Each timed call is a full
forward + backward on a fresh leaf tensor, bracketed by torch.cuda.synchronize on CUDA. Ours gets
`--warmup` untimed calls and `--repeats` timed ones; the reference (seconds per call on big shapes) gets
`--ref-repeats` (at least 3 unless --quick), and the agreement check doubles as its warm-up. Repeats of
the two are interleaved so that background load hits both alike. Reported: median ms per call and
reference/ours.

Inputs (`--maps`): "noise" = i.i.d. N(0, 1) logits (many small components per map, like an untrained
model: the reference's worst case); "smooth" = noise blurred twice by a 3x3 box (a few blobs per map,
closer to a trained model). The mean number of components per map is reported with every row.

Prints a markdown table and appends one row per (device, shape, implementation) to the CSV (`--out`,
default results/benchmarks.csv), atomically: read, concatenate, write a temp file, os.replace.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import reference_spatial_entropy  # noqa: E402

import sarlib  # noqa: E402
from sarlib.experiments import git_commit, write_csv  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "benchmarks.csv"

FULL_BATCHES = (64, 256)
FULL_HEADS = (3, 6, 12)
FULL_GRIDS = ((14, 14), (28, 28))
QUICK_SHAPES = ((8, 3, (14, 14)), (4, 3, (28, 28)))

VALUE_RTOL = 1e-5
GRAD_RTOL = 1e-4


# ---------------------------------------------------------------------------------------------------
# helpers shared with step_overhead.py


def resolve_devices(choice: str) -> list[str]:
    """'cpu' | 'cuda' | 'all' -> list of devices to run; 'cuda' without a GPU is an error."""
    if choice == "cpu":
        return ["cpu"]
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch.cuda.is_available() is False (no GPU or no CUDA build)")
        return ["cuda"]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def load_1m() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def warn_if_loaded() -> None:
    """Timings on a shared CPU: with all cores busy, torch's intra-op threads fight the other processes."""
    load, cores = load_1m(), os.cpu_count() or 1
    if load == load and load > cores - 0.5 and torch.get_num_threads() > 1:
        print(
            f"  warning: 1-min load {load} on {cores} cores (the average includes anything run just before, this "
            f"suite too); with {torch.get_num_threads()} torch threads, ops "
            "that enter OpenMP regions can stall for a scheduler time slice (ms), so CPU timings are inflated. "
            "Rerun when idle, or compare with --threads 1.",
            flush=True,
        )


def common_fields(device: str) -> dict:
    return {
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "threads": torch.get_num_threads(),
        "load_1m": load_1m(),
    }


def timing_row(benchmark: str, device: str, batch: int, heads: int, grid: tuple[int, int], impl: str,
               times_ms: list[float], ours_ms: float, **extra) -> dict:
    """One CSV row: where and what was timed, median/min/max over the timed calls, ratio to ours."""
    med = statistics.median(times_ms)
    return {
        "benchmark": benchmark,
        **common_fields(device),
        "B": batch,
        "heads": heads,
        "grid": f"{grid[0]}x{grid[1]}",
        "impl": impl,
        "median_ms": round(med, 4),
        "ratio_vs_ours": round(med / ours_ms, 3),
        "min_ms": round(min(times_ms), 4),
        "max_ms": round(max(times_ms), 4),
        "repeats": len(times_ms),
        **extra,
    }


def append_rows(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Append rows to a CSV; the whole file is rewritten atomically so a kill never truncates it."""
    import pandas as pd

    path = Path(path)
    new = pd.DataFrame(rows)
    if path.exists() and path.stat().st_size > 0:
        new = pd.concat([pd.read_csv(path), new], ignore_index=True)
    write_csv(new, path)
    return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------


def make_logits(batch: int, heads: int, grid: tuple[int, int], kind: str, seed: int) -> torch.Tensor:
    """Deterministic (B, heads, P) float32 logits on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch * heads, 1, *grid, generator=gen)
    if kind == "smooth":
        box = torch.full((1, 1, 3, 3), 1.0 / 9.0)
        for _ in range(2):
            x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), box)
        x = x / x.std()
    elif kind != "noise":
        raise ValueError(f"unknown --maps {kind!r}")
    return x.reshape(batch, heads, grid[0] * grid[1]).contiguous()


def components_per_map(x: torch.Tensor, grid: tuple[int, int]) -> float:
    """Mean number of 8-connected foreground components per map (a label = 1 + index of its first cell)."""
    b, heads, p = x.shape
    flat = x.reshape(b * heads, p)
    mask = (flat > flat.mean(dim=1, keepdim=True)).view(b * heads, *grid)
    labels = sarlib.label_components(mask).view(b * heads, p)
    roots = labels == torch.arange(1, p + 1, device=x.device)
    return roots.sum().item() / (b * heads)


def forward_backward(fn, x: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    inp = x.detach().clone().requires_grad_(True)
    loss = fn(inp, grid)
    loss.backward()
    return loss.detach(), inp.grad


def check_agreement(x: torch.Tensor, grid: tuple[int, int], label: str) -> None:
    """Abort (raise) unless ours and the reference agree on values and gradients for this input."""
    ours, g_ours = forward_backward(sarlib.spatial_entropy, x, grid)
    ref, g_ref = forward_backward(reference_spatial_entropy, x, grid)
    ours_v, ref_v = float(ours), float(ref)
    value_ok = abs(ours_v - ref_v) <= VALUE_RTOL * max(abs(ref_v), 1e-6)
    atol = 1e-5 * float(g_ref.abs().max()) + 1e-12
    grad_ok = bool(torch.allclose(g_ours, g_ref, rtol=GRAD_RTOL, atol=atol))
    if not (value_ok and grad_ok):
        worst = float((g_ours - g_ref).abs().max())
        raise RuntimeError(
            f"\n\n*** MISMATCH on {label}: sarlib.spatial_entropy and the reference disagree ***\n"
            f"    loss ours={ours_v!r} reference={ref_v!r} (rel tol {VALUE_RTOL}); "
            f"max |grad diff|={worst:.3g} (rtol {GRAD_RTOL}, atol {atol:.3g}); value_ok={value_ok} grad_ok={grad_ok}\n"
            "    Benchmark aborted: timings of a wrong loss mean nothing.\n"
        )


def time_call(fn, x: torch.Tensor, grid: tuple[int, int], device: str) -> float:
    """Milliseconds for one forward+backward of fn on a fresh leaf copy of x (copy not timed)."""
    inp = x.detach().clone().requires_grad_(True)
    sync(device)
    start = time.perf_counter()
    loss = fn(inp, grid)
    loss.backward()
    sync(device)
    return (time.perf_counter() - start) * 1e3


def bench_shape(batch, heads, grid, device, args) -> list[dict]:
    x = make_logits(batch, heads, grid, args.maps, seed=args.seed + 1000 * batch + 10 * heads + grid[0]).to(device)
    label = f"{device} B={batch} heads={heads} grid={grid[0]}x{grid[1]} maps={args.maps}"
    check_agreement(x, grid, label)  # also the reference's warm-up
    comps = components_per_map(x, grid)
    for _ in range(args.warmup):
        time_call(sarlib.spatial_entropy, x, grid, device)
    times = {"ours": [], "reference": []}
    for i in range(max(args.repeats, args.ref_repeats)):
        if i < args.repeats:
            times["ours"].append(time_call(sarlib.spatial_entropy, x, grid, device))
        if i < args.ref_repeats:
            times["reference"].append(time_call(reference_spatial_entropy, x, grid, device))
    ours_ms = statistics.median(times["ours"])
    extra = {"maps": args.maps, "components_per_map": round(comps, 2), "quick": bool(args.quick)}
    rows = [timing_row("loss_speed", device, batch, heads, grid, impl, ts, ours_ms, **extra)
            for impl, ts in times.items()]
    print(
        f"  {label}: ours {ours_ms:.2f} ms, reference {rows[1]['median_ms']:.1f} ms "
        f"({rows[1]['ratio_vs_ours']:.1f}x), {comps:.1f} components/map, load {rows[0]['load_1m']}",
        flush=True,
    )
    return rows


def common_parser(doc: str, *, unit: str, defaults: dict[str, tuple[int, int]], quick: str
                  ) -> argparse.ArgumentParser:
    """Options both benchmarks take; `defaults` maps repeats/ref_repeats/warmup to (full, quick)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all", help="all = cpu + cuda if present")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed {} of ours (default {}, quick {})".format(unit, *defaults["repeats"]))
    p.add_argument("--ref-repeats", type=int, default=None,
                   help="timed {} of the reference (default {}, quick {})".format(unit, *defaults["ref_repeats"]))
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed {} before timing (default {}, quick {})".format(unit, *defaults["warmup"]))
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="CSV to append to (default results/benchmarks.csv)")
    p.set_defaults(_defaults=defaults)
    return p


def finish_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Fill the repeat counts left unset from the (full, quick) defaults and check them."""
    for key, (full, quick) in args._defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.repeats < 1 or args.ref_repeats < 1 or args.warmup < 0:
        p.error("--repeats and --ref-repeats must be >= 1, --warmup >= 0")
    return args


def start(name: str, args: argparse.Namespace, details: str) -> list[str]:
    """Apply --threads, print the run's header and load warnings; return the devices to measure."""
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = resolve_devices(args.device)
    print(f"{name}: torch {torch.__version__}, threads {torch.get_num_threads()}, devices {devices}, {details}, "
          f"load {load_1m()}", flush=True)
    if "cuda" not in devices:
        print("  GPU: unmeasured (torch.cuda.is_available() is False)", flush=True)
    if "cpu" in devices:
        warn_if_loaded()
    return devices


def parse_args(argv=None) -> argparse.Namespace:
    p = common_parser(__doc__, unit="calls", quick="reduced grid: B=8 x 3 heads 14x14, B=4 x 3 heads 28x28",
                      defaults={"repeats": (15, 3), "ref_repeats": (3, 1), "warmup": (2, 1)})
    p.add_argument("--maps", choices=("noise", "smooth"), default="noise", help="input logits (see docstring)")
    return finish_args(p, p.parse_args(argv))


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    devices = start("loss_speed", args, f"maps={args.maps}, repeats ours {args.repeats} / reference {args.ref_repeats}")
    if args.quick:
        shapes = list(QUICK_SHAPES)
    else:
        shapes = [(b, h, g) for g in FULL_GRIDS for h in FULL_HEADS for b in FULL_BATCHES]
    rows: list[dict] = []
    wall = time.perf_counter()
    for device in devices:
        for batch, heads, grid in shapes:
            rows += bench_shape(batch, heads, grid, device, args)
    table = []
    for ours, ref in zip(rows[0::2], rows[1::2]):
        table.append(
            [
                ours["device"],
                ours["B"],
                ours["heads"],
                ours["grid"],
                ours["components_per_map"],
                f"{ours['median_ms']:.2f}",
                f"{ref['median_ms']:.1f}",
                f"{ref['ratio_vs_ours']:.1f}x",
            ]
        )
    print()
    print(
        markdown_table(
            ["device", "B", "heads", "grid", "components/map", "ours ms", "reference ms", "reference/ours"], table
        )
    )
    out = append_rows(args.out, rows)
    print(f"\n{len(rows)} rows appended to {out} ({time.perf_counter() - wall:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
