"""Train one ViT with or without the spatial-entropy regularizer (SAR).

Single process (CPU or one GPU):
    python -m sarlib.train --profile smoke
    python -m sarlib.train --profile cpu --regularizer sar --no-skip --output-dir results/runs/sar
One node, 8 GPUs (the paper's global batch of 1024 = 8 x 128):
    torchrun --standalone --nproc_per_node=8 -m sarlib.train --profile paper --dataset imagenet100 \\
        --data-root /data/imagenet --output-dir results/runs/in100_sar
Several nodes (run on every node, NODE_RANK = 0..N-1):
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK --rdzv_backend=c10d \\
        --rdzv_endpoint=$MASTER_HOST:29500 -m sarlib.train --profile paper --data-root /data/imagenet ...

Every TrainConfig field is a flag (--model-kwargs takes JSON). Running again with the same
--output-dir resumes from the last finished epoch, or prints the finished run's metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from typing import Any, Sequence

from ..data import DatasetLayoutError, describe_layouts
from ..utils.text import one_line
from .config import PROFILES, TrainConfig, load_profile
from .engine import NonFiniteLossError
from .loop import train
from .rundir import RunDirectoryError


def _field_type(field: dataclasses.Field) -> tuple[type, bool]:
    """(scalar type, optional?) of a dataclass field annotated as a string under `from __future__`."""
    hint = typing.get_type_hints(TrainConfig)[field.name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return (dict if typing.get_origin(hint) is dict else hint), False


def _parse_optional(kind: type):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sarlib.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Dataset layouts under --data-root:\n" + describe_layouts(),
    )
    parser.add_argument("--profile", choices=PROFILES, default="cpu",
                        help="the profile whose fields every other flag overrides (default: cpu)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if field.name == "profile":  # set by --profile above
            continue
        flag = "--" + field.name.replace("_", "-")
        kind, optional = _field_type(field)
        default = getattr(defaults, field.name)
        if kind is bool:
            # explicit pair: argparse's BooleanOptionalAction would read `--no-skip` as a negation
            parser.add_argument(flag, dest=field.name, action="store_const", const=True, default=None,
                                help=f"(TrainConfig default: {default}; --no-{flag[2:]} to turn off)")
            parser.add_argument("--no-" + flag[2:], dest=field.name, action="store_const", const=False,
                                help=argparse.SUPPRESS)
        elif kind is dict:
            parser.add_argument(flag, type=json.loads, default=None, metavar="JSON", help=f"(default: {default})")
        else:
            parser.add_argument(flag, type=_parse_optional(kind) if optional else kind, default=None,
                                help=f"(TrainConfig default: {default})")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return load_profile(args.profile, **overrides), args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, args = config_from_args(argv)
    except ValueError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    try:
        metrics = train(cfg)
    except DatasetLayoutError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    # OSError: a full disk (DiskFullError), a missing or unreadable file; ValueError: bad values, corrupt
    # checkpoints, JSON files and images; RunDirectoryError: a busy or mismatched run directory
    except (ValueError, TypeError, OSError, NonFiniteLossError, RunDirectoryError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
