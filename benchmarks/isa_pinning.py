"""What pinning torch's CPU kernels to one ISA level costs, and whether it changes the numbers.

Two CPU machines of one kind can still differ in the instruction set torch's kernels use (AVX-512 on
one, AVX2 on another: `torch.backends.cpu.get_cpu_capability()`), and kernels of different ISA levels
round differently, so the same seed trains to slightly different weights. Pinning both to the lower level
(ATen's `ATEN_CPU_CAPABILITY=avx2`, oneDNN's `ONEDNN_MAX_CPU_ISA=AVX2`) makes them compute alike, at
some cost in speed. This trains the same cpu-profile run (Fashion-MNIST baseline, seed 0, shortened to
--epochs, one thread) in a fresh process under each setting, alternately, --repeats times, and writes one
row per setting to <results-dir>/benchmarks.csv (`ratio_vs_ours`: its median wall time over the
unpinned one's) and whether each setting reproduced its own loss curve and matched the other's:

    .venv/bin/python benchmarks/isa_pinning.py              # 3 epochs, 2 repeats each way, about 2 min
    .venv/bin/python benchmarks/isa_pinning.py --quick      # smoke profile: proves the script runs
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_speed import common_parser, finish_args, scale_fields, start, timing_row, write_results  # noqa: E402

SETTINGS = {"unpinned": {}, "pinned avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def _train(setting: str, args, folder: Path) -> tuple[float, list[float]]:
    """Wall ms of one training process under `setting`, and its per-epoch losses."""
    profile = ["--profile", "smoke"] if args.quick else ["--profile", "cpu", "--dataset", "fashion-mnist-2k"]
    cmd = [sys.executable, "-m", "sarlib.train", *profile, "--regularizer", "none", "--seed", "0",
           "--epochs", str(args.epochs), "--threads", "1", "--no-progress", "--output-dir", str(folder)]
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    begin = time.perf_counter()
    subprocess.run(cmd, env={**env, **SETTINGS[setting]}, check=True, stdout=subprocess.DEVNULL)
    wall = (time.perf_counter() - begin) * 1000.0
    losses = [json.loads(line)["loss"] for line in (folder / "log.jsonl").read_text().splitlines()]
    return wall, losses


def main(argv=None) -> list[dict]:
    p = common_parser(__doc__, unit="runs per setting", quick="the smoke profile, 1 epoch",
                      defaults={"repeats": (2, 1), "ref_repeats": (1, 1), "warmup": (0, 0)})
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 3, quick 1)")
    args = finish_args(p, p.parse_args(argv))
    args.epochs = args.epochs or (1 if args.quick else 3)
    start("isa_pinning", args, f"1 run x {args.epochs} epochs per setting, {args.repeats} repeat(s)")
    wall = time.perf_counter()
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    curves: dict[str, list[list[float]]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for setting in SETTINGS:  # alternating, so a drift in the machine's speed hits both alike
                ms, losses = _train(setting, args, Path(tmp) / f"{setting.replace(' ', '-')}-{k}")
                times[setting].append(ms)
                curves[setting].append(losses)
    ours = statistics.median(times["unpinned"])
    rows = []
    for setting, runs in curves.items():
        repeatable = all(c == runs[0] for c in runs)
        same_as_unpinned = runs[0] == curves["unpinned"][0]
        rows.append(timing_row("isa_pinning", "cpu", 32, 4, (7, 7), setting, times[setting], ours,
                               epochs=args.epochs, repeatable=repeatable, same_as_unpinned=same_as_unpinned,
                               **scale_fields(args.quick)))
        med = statistics.median(times[setting])
        print(f"  {setting}: median {med / 1000:.1f} s ({med / ours:.2f}x), "
              f"loss curve {'identical' if repeatable else 'different'} across its repeats, "
              f"{'identical to' if same_as_unpinned else 'different from'} the unpinned one")
    write_results(args, rows, wall)
    return rows


if __name__ == "__main__":
    main()
