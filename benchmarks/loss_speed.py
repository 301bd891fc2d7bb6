"""
Forward+backward time of `sarlib.spatial_entropy` against the per-map OpenCV reference (reference.py).

$ python benchmarks/loss_speed.py                        # CPU, plus CUDA when present; full grid
$ python benchmarks/loss_speed.py --device cuda --repeats 30
$ python benchmarks/loss_speed.py --quick --results-dir /tmp/bench   # reduced grid, seconds (CI, tests)

Grid: B in {64, 256} x heads in {3, 6, 12} x patch grids 14x14 and 28x28, on each device. Before a
shape is timed the two implementations must agree on it (loss to 1e-5 relative, gradients allclose);
otherwise the script aborts with a non-zero exit and times nothing more. Each timed call is a full
forward + backward on a fresh leaf tensor, bracketed by torch.cuda.synchronize on CUDA. Ours gets
`--warmup` untimed calls and `--repeats` timed ones; the reference (seconds per call on big shapes) gets
`--ref-repeats` (at least 3 unless --quick), and the agreement check doubles as its warm-up. Repeats of
all implementations are interleaved so that background load hits them alike. Reported: median ms per
call and reference/ours.

Implementations (column `impl`):
  ours               sarlib.spatial_entropy as shipped: labels from label_components(method="auto"),
                     i.e. one batched scipy.ndimage.label call on the CPU, the union-find on CUDA
  ours-union-find    the same loss with the union-find labeller forced (CPU only; on CUDA it is `ours`)
  scipy-label-batched  labelling alone, no loss: one scipy.ndimage.label call over all B*heads masks
                     (CPU only), the floor that any exact CPU path pays
  reference          the per-map OpenCV reference
`label_method` records which labeller each row used.

Inputs (`--maps`): "noise" = i.i.d. N(0, 1) logits (many small components per map, like an untrained
model: the reference's worst case); "smooth" = noise blurred twice by a 3x3 box (a few blobs per map,
closer to a trained model). The mean number of components per map is reported with every row.

Prints a markdown table and writes one row per (device, shape, implementation) into
`<--results-dir>/benchmarks.csv` (or `--out`), replacing the rows of an earlier run on the same machine
and configuration (see `replace_rows`), atomically. `--quick` rows carry scale=quick, meaningful=False.
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

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import reference_spatial_entropy  # noqa: E402

import sarlib  # noqa: E402
from sarlib.sar.components import _PLANEWISE_EIGHT  # noqa: E402
from sarlib.study import git_commit, write_csv  # noqa: E402
from sarlib.utils.files import ResultsFolderError, claim_results_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO / "results"
CSV_NAME = "benchmarks.csv"

# The configuration of a row: a later run with the same values replaces it (one row per machine and
# configuration). Columns a benchmark does not write are NaN for it and compare equal.
CONFIG_KEYS = (
    "benchmark", "device", "device_name", "threads", "scale", "B", "heads", "grid", "impl", "maps",
    "model", "model_kwargs", "img_size", "amp", "lam",
)

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


def scale_fields(quick: bool) -> dict:
    """--quick proves that a script runs: tiny shapes, 1-3 repeats. Its timings must not be quoted."""
    return {"scale": "quick" if quick else "full", "meaningful": not quick}


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


def replace_rows(path: str | os.PathLike, rows: list[dict], keys: tuple[str, ...] = CONFIG_KEYS) -> Path:
    """Merge rows into a CSV, one row per configuration: a row whose `keys` match a stored row takes its
    place (so rerunning a benchmark leaves the file the same size, and its diff shows only the changed
    numbers); new configurations go at the end; stored duplicates of a replaced key are dropped. Other
    machines' and other configurations' rows are kept. The file is rewritten atomically."""
    import pandas as pd

    path = Path(path)
    new = pd.DataFrame(rows)
    if not (path.exists() and path.stat().st_size > 0):
        write_csv(new, path)
        return path
    old = pd.read_csv(path)
    # Compare keys after concatenation, so that both sides share one dtype per column (an int column
    # read back as float next to NaN would otherwise never match "64" against "64.0").
    both = pd.concat([old, new], ignore_index=True)
    cols = [k for k in keys if k in both.columns]
    ident = ["|".join(map(str, values)) for values in both[cols].itertuples(index=False)]
    old_ids, new_ids = ident[: len(old)], ident[len(old):]
    latest = {key: len(old) + i for i, key in enumerate(new_ids)}  # a key measured twice: the last wins
    order, placed = [], set()
    for i, key in enumerate(old_ids):
        if key not in latest:
            order.append(i)
        elif key not in placed:
            order.append(latest[key])
            placed.add(key)
    order += [latest[key] for key in dict.fromkeys(new_ids) if key not in placed]
    write_csv(both.iloc[order].reset_index(drop=True), path)
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


def union_find_entropy(logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """sarlib's loss with the union-find labeller forced (the CPU default is SciPy)."""
    return sarlib.spatial_entropy(logits, grid, label_method="union-find")


# The losses timed forward + backward, by `impl`; "scipy-label-batched" is timed by time_labelling.
LOSSES = {"ours": sarlib.spatial_entropy, "ours-union-find": union_find_entropy, "reference": reference_spatial_entropy}
LABEL_ANCHOR = "scipy-label-batched"


def implementations(device: str) -> list[str]:
    """What runs on this device: the extra CPU rows compare our two labellers and SciPy's floor."""
    if device == "cpu":
        return ["ours", "ours-union-find", LABEL_ANCHOR, "reference"]
    return ["ours", "reference"]  # on CUDA, "ours" already is the union-find


def label_method(impl: str, device: str) -> str:
    if impl == "ours":
        return "scipy" if device == "cpu" else "union-find"
    return {"ours-union-find": "union-find", LABEL_ANCHOR: "scipy", "reference": "opencv"}[impl]


def forward_backward(fn, x: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    inp = x.detach().clone().requires_grad_(True)
    loss = fn(inp, grid)
    loss.backward()
    return loss.detach(), inp.grad


def check_agreement(x: torch.Tensor, grid: tuple[int, int], label: str, impl: str = "ours") -> None:
    """Abort (raise) unless `impl` and the reference agree on values and gradients for this input."""
    ours, g_ours = forward_backward(LOSSES[impl], x, grid)
    ref, g_ref = forward_backward(reference_spatial_entropy, x, grid)
    ours_v, ref_v = float(ours), float(ref)
    value_ok = abs(ours_v - ref_v) <= VALUE_RTOL * max(abs(ref_v), 1e-6)
    atol = 1e-5 * float(g_ref.abs().max()) + 1e-12
    grad_ok = bool(torch.allclose(g_ours, g_ref, rtol=GRAD_RTOL, atol=atol))
    if not (value_ok and grad_ok):
        worst = float((g_ours - g_ref).abs().max())
        raise RuntimeError(
            f"\n\n*** MISMATCH on {label}: {impl} (sarlib.spatial_entropy) and the reference disagree ***\n"
            f"    loss {impl}={ours_v!r} reference={ref_v!r} (rel tol {VALUE_RTOL}); "
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


def threshold_masks(x: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """The loss's foreground masks, (B*heads, h, w) bool on the host: the labelling anchor's input."""
    flat = x.detach().reshape(-1, x.shape[-1]).float().cpu()
    return (flat > flat.mean(dim=1, keepdim=True)).view(-1, *grid).numpy()


def time_labelling(masks: np.ndarray) -> float:
    """Milliseconds for one scipy.ndimage.label call over every mask at once (no relabelling, no loss)."""
    start = time.perf_counter()
    ndimage.label(masks, structure=_PLANEWISE_EIGHT)
    return (time.perf_counter() - start) * 1e3


def bench_shape(batch, heads, grid, device, args) -> list[dict]:
    x = make_logits(batch, heads, grid, args.maps, seed=args.seed + 1000 * batch + 10 * heads + grid[0]).to(device)
    label = f"{device} B={batch} heads={heads} grid={grid[0]}x{grid[1]} maps={args.maps}"
    impls = implementations(device)
    for impl in impls:
        if impl in LOSSES and impl != "reference":
            check_agreement(x, grid, label, impl)  # also the reference's warm-up
    comps = components_per_map(x, grid)
    masks = threshold_masks(x, grid)

    def run(impl: str) -> float:
        return time_labelling(masks) if impl == LABEL_ANCHOR else time_call(LOSSES[impl], x, grid, device)

    for _ in range(args.warmup):
        for impl in impls:
            if impl != "reference":
                run(impl)
    budget = {impl: (args.ref_repeats if impl == "reference" else args.repeats) for impl in impls}
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for i in range(max(budget.values())):
        for impl in impls:
            if i < budget[impl]:
                times[impl].append(run(impl))
    ours_ms = statistics.median(times["ours"])
    extra = {"maps": args.maps, "components_per_map": round(comps, 2), **scale_fields(args.quick)}
    rows = [timing_row("loss_speed", device, batch, heads, grid, impl, ts, ours_ms,
                       label_method=label_method(impl, device), **extra)
            for impl, ts in times.items()]
    by = {r["impl"]: r for r in rows}
    parts = [f"ours {ours_ms:.2f} ms ({by['ours']['label_method']} labels)"]
    if "ours-union-find" in by:
        parts.append(f"union-find {by['ours-union-find']['median_ms']:.2f} ms")
    if LABEL_ANCHOR in by:
        parts.append(f"scipy.ndimage.label alone {by[LABEL_ANCHOR]['median_ms']:.2f} ms")
    parts.append(f"reference {by['reference']['median_ms']:.1f} ms ({by['reference']['ratio_vs_ours']:.1f}x)")
    print(f"  {label}: " + ", ".join(parts) + f", {comps:.1f} components/map, load {rows[0]['load_1m']}", flush=True)
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
    p.add_argument("--results-dir", default=str(DEFAULT_RESULTS),
                   help=f"the profile's results folder; rows go to <dir>/{CSV_NAME} (default results/)")
    p.add_argument("--out", default=None, help=f"CSV to merge rows into instead of <results-dir>/{CSV_NAME}")
    p.add_argument("--run-out", default=None, help="also write only this run's rows to this CSV (replaced whole)")
    p.set_defaults(_defaults=defaults)
    return p


def write_results(args: argparse.Namespace, rows: list[dict], wall_start: float) -> Path:
    """Merge the rows into the benchmark CSV (one row per machine and configuration), and --run-out."""
    out = replace_rows(args.out or Path(args.results_dir) / CSV_NAME, rows)
    if args.run_out:
        import pandas as pd

        write_csv(pd.DataFrame(rows), args.run_out)
    note = "; --quick rows are marked meaningful=False" if args.quick else ""
    print(f"\n{len(rows)} rows written to {out} (rows of the same machine and configuration replaced{note}; "
          f"{time.perf_counter() - wall_start:.0f} s)")
    return out


def finish_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Fill the repeat counts left unset from the (full, quick) defaults and check them."""
    for key, (full, quick) in args._defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.repeats < 1 or args.ref_repeats < 1 or args.warmup < 0:
        p.error("--repeats and --ref-repeats must be >= 1, --warmup >= 0")
    claim_or_exit(None if args.out else args.results_dir)
    return args


def claim_or_exit(results_dir: str | None) -> None:
    """The rows' folder must be one sarlib may write into (checked before minutes of measuring, not after)."""
    if results_dir is not None:
        try:
            claim_results_dir(results_dir)
        except ResultsFolderError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None


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
    print()
    print(summary_table(rows))
    for note in notes(rows, args.quick):
        print(f"\n{note}")
    write_results(args, rows, wall)
    return rows


def summary_table(rows: list[dict]) -> str:
    """One line per (device, shape): every implementation's median ms and the reference/ours speed-up."""
    shapes: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        shapes.setdefault((r["device"], r["B"], r["heads"], r["grid"]), {})[r["impl"]] = r
    table = []
    for (device, batch, heads, grid), by in shapes.items():
        def ms(impl: str) -> str:
            return f"{by[impl]['median_ms']:.2f}" if impl in by else "-"

        ref = by["reference"]
        flag = "" if ref["ratio_vs_ours"] >= 1 else " (see note)"
        table.append([device, batch, heads, grid, by["ours"]["components_per_map"],
                      f"{ms('ours')} ({by['ours']['label_method']})", ms("ours-union-find"), ms(LABEL_ANCHOR),
                      f"{ref['median_ms']:.1f}", f"{ref['ratio_vs_ours']:.1f}x{flag}"])
    header = ["device", "B", "heads", "grid", "components/map", "ours ms (labels)", "ours-union-find ms",
              "scipy.ndimage.label alone ms", "reference ms", "reference/ours"]
    return markdown_table(header, table)


def notes(rows: list[dict], quick: bool) -> list[str]:
    """Say why a row is not what the full grid shows, so that nobody quotes it."""
    out = []
    if quick:
        out.append("Note: --quick times tiny shapes with 1-3 calls to prove that the script runs; its rows are "
                   "written with scale=quick, meaningful=False and must not be quoted.")
    slower = [r for r in rows if r["impl"] == "reference" and r["ratio_vs_ours"] < 1]
    if slower:
        shapes = ", ".join(f"{r['device']} B={r['B']} x {r['heads']} heads {r['grid']}" for r in slower)
        threads, load = slower[0]["threads"], slower[0]["load_1m"]
        if threads > 1:
            cause = (f"with {threads} torch threads, every op of ours large enough to go parallel wakes a second "
                     f"thread, which waits for a free core when the machine is busy (1-min load {load} on "
                     f"{os.cpu_count()} cores), while the reference's per-map ops are too small to go parallel; "
                     "rerun with --threads 1 or on an idle machine")
        else:
            cause = (f"at {min(r['B'] * r['heads'] for r in slower)} maps, ours' fixed cost per call (a few dozen "
                     "tensor ops of a few microseconds each) is not yet amortized")
        out.append(f"Note: the reference beat ours on {shapes}: {cause}. The full grid (B >= 64) is the "
                   "comparison that matters for training.")
    return out


if __name__ == "__main__":
    main()
