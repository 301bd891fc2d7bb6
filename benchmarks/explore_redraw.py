"""How long the attention explorer takes to answer a selection, on the committed results.

A new image or head only redraws (each run's maps are computed once per run); a run not shown before
costs one forward pass over the explorer's test images first. This opens `Explorer(results)` headless
(matplotlib's Agg backend, the widgets without a browser) and times --repeats of each kind of selection,
writing one row per kind to <results-dir>/benchmarks.csv (`ratio_vs_ours`: over a new image's time):

    .venv/bin/python benchmarks/explore_redraw.py              # 20 selections of each kind, about 1 min
    .venv/bin/python benchmarks/explore_redraw.py --quick      # 2 of each: proves the script runs
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_speed import common_parser, finish_args, scale_fields, start, timing_row, write_results  # noqa: E402

from sarlib.report.explore import Explorer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _timed(change) -> float:
    begin = time.perf_counter()
    change()
    return (time.perf_counter() - begin) * 1000.0


def main(argv=None) -> list[dict]:
    p = common_parser(__doc__, unit="selections per kind", quick="2 selections of each kind",
                      defaults={"repeats": (20, 2), "ref_repeats": (1, 1), "warmup": (0, 0)})
    p.add_argument("--explore", default=str(REPO / "results"), help="the results folder explored")
    args = finish_args(p, p.parse_args(argv))
    start("explore_redraw", args, f"{args.repeats} selections of each kind")
    wall = time.perf_counter()
    ex = Explorer(args.explore)
    heads = list(ex.head.options)
    images = [_timed(lambda k=k: setattr(ex.index, "value", (k + 1) % (ex.index.max + 1))) for k in range(args.repeats)]
    head = [_timed(lambda k=k: setattr(ex.head, "value", heads[(k + 1) % len(heads)])) for k in range(args.repeats)]
    others = [e for _, e in ex._choices() if e.status == "finished" and e not in (ex.left.value, ex.right.value)]
    runs = [_timed(lambda e=e: setattr(ex.right, "value", e)) for e in others[: args.repeats]]
    ours = statistics.median(images)
    rows = [timing_row("explore_redraw", "cpu", len(ex._data(ex.left.value)[0]), len(heads) - 1, (0, 0), kind, times, ours,
                       **scale_fields(args.quick))
            for kind, times in (("new image", images), ("new head", head), ("run not shown before", runs)) if times]
    for r in rows:
        print(f"  {r['impl']}: median {r['median_ms']:.0f} ms ({r['ratio_vs_ours']:.2f}x), max {r['max_ms']:.0f} ms")
    write_results(args, rows, wall)
    return rows


if __name__ == "__main__":
    main()
