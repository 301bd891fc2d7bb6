"""Two runs side by side with one thread each, or one after the other with two threads?

The cpu profile trains many tiny ViTs on a 2-core machine; `sarlib.study.execute(jobs=N)` can
run N of them at once as separate processes, splitting the CPU threads between them. This times the
same two runs of the cpu profile (baseline, seeds 0 and 1, shortened to --epochs) both ways, wall clock
for the pair, and writes one row per mode to <results-dir>/benchmarks.csv:

    .venv/bin/python benchmarks/jobs_vs_threads.py              # 2 runs x 6 epochs each way, ~3 min
    .venv/bin/python benchmarks/jobs_vs_threads.py --quick      # smoke profile: proves the script runs

`ratio_vs_ours` of the "sequential" row is its wall time over the side-by-side one (> 1: side by side
is faster). Timings need an otherwise idle machine: the row records the 1-minute load.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_speed import common_parser, finish_args, scale_fields, start, timing_row, write_results  # noqa: E402

from sarlib import study as ex  # noqa: E402


def _time(jobs: int, threads: int, args, root: Path) -> float:
    profile = "smoke" if args.quick else "cpu"
    runs = ex.plan("table2", profile=profile, seeds=[0, 1], arms=["baseline"], runs_root=root,
                   overrides=dict(epochs=args.epochs, threads=threads, progress=False))
    begin = time.perf_counter()
    ex.execute(runs, target="jobs_vs_threads", jobs=jobs, progress=False)
    return (time.perf_counter() - begin) * 1000.0


def main(argv=None) -> list[dict]:
    p = common_parser(__doc__, unit="pairs", quick="the smoke profile, 1 epoch",
                      defaults={"repeats": (1, 1), "ref_repeats": (1, 1), "warmup": (0, 0)})
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 6, quick 1)")
    args = finish_args(p, p.parse_args(argv))
    args.epochs = args.epochs or (1 if args.quick else 6)
    start("jobs_vs_threads", args, f"2 runs x {args.epochs} epochs, {args.repeats} repeat(s)")
    wall = time.perf_counter()
    side, seq = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            side.append(_time(2, 1, args, Path(a)))  # the profile's setting: 2 processes x 1 thread
            seq.append(_time(1, 2, args, Path(b)))  # one process at a time with both threads
    extra = dict(epochs=args.epochs, **scale_fields(args.quick))
    ours = min(side)
    rows = [timing_row("jobs_vs_threads", "cpu", 64, 4, (8, 8), "2 jobs x 1 thread", side, ours, **extra),
            timing_row("jobs_vs_threads", "cpu", 64, 4, (8, 8), "sequential, 2 threads", seq, ours, **extra)]
    print(f"  side by side (2 jobs x 1 thread): {min(side) / 1000:.1f} s; one after the other with 2 threads: "
          f"{min(seq) / 1000:.1f} s ({min(seq) / ours:.2f}x)")
    write_results(args, rows, wall)
    return rows


if __name__ == "__main__":
    main()
