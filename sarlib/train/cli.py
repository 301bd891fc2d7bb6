"""Train one ViT with or without the spatial-entropy regularizer (SAR).

Single process (CPU or one GPU):
    python -m sarlib.train --profile smoke
    python -m sarlib.train --profile cpu --regularizer sar --no-skip --output-dir results/runs/sar
    python -m sarlib.train --config results/runs/sar/config.json --output-dir results/runs/sar-again
    python -m sarlib.train --profile cpu --dataset fashion-mnist-2k --print-config --explain
One node, 8 GPUs (the paper's global batch of 1024 = 8 x 128):
    torchrun --standalone --nproc_per_node=8 -m sarlib.train --profile paper --dataset imagenet100 \\
        --data-root /data/imagenet --output-dir results/runs/in100_sar
Several nodes (run on every node, NODE_RANK = 0..N-1):
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK --rdzv_backend=c10d \\
        --rdzv_endpoint=$MASTER_HOST:29500 -m sarlib.train --profile paper --data-root /data/imagenet ...

Every TrainConfig field is a flag (--model-kwargs takes JSON; "none" sets an optional one to None).
Later sources win: the field's default, the profile, the profile's settings for the dataset's family,
--config FILE, then the flags. Running again with the same --output-dir resumes from the last finished
epoch, or shows the finished run's result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from ..data import DatasetLayoutError, describe_layouts
from ..utils.files import shown_path
from ..utils.text import one_line
from .config import GROUPS, PROFILES, TrainConfig, field_types, flag, resolve_config
from .engine import NonFiniteLossError
from .loop import train
from .rundir import CHECKPOINT, CONFIG, LOG, METRICS_JSON, RunDirectoryError

__all__ = ["build_parser", "config_from_args", "main", "read_config_file"]

DEFAULT_PROFILE = "cpu"
COMMAND_LINE = "command line"


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (naming the flag, pointing at --help), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parse_optional(kind: type):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def _command_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that choose and show a config rather than set a field."""
    group = parser.add_argument_group("config", "where the values come from")
    group.add_argument("--profile", choices=PROFILES, default=None,
                       help=f"the profile every other source overrides (default: the --config file's own profile, "
                            f"else {DEFAULT_PROFILE}); its values are the defaults shown below")
    group.add_argument("--config", metavar="FILE", default=None,
                       help="a JSON (e.g. a run's config.json) or YAML file of fields; flags override it")
    group.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    group.add_argument("--explain", action="store_true",
                       help="with --print-config: each field's value and the source that set it")


def read_config_file(path: str) -> dict[str, Any]:
    """The fields of a --config file: a JSON or YAML object (YAML needs pyyaml: the `suite` extra)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ValueError(f"--config {path}: expected a .json, .yaml or .yml file")
    try:
        text = file.read_text()
    except OSError as err:
        raise ValueError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    if suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"--config {path}: not valid JSON ({err})") from None
    else:
        try:
            import yaml  # optional: pyyaml (the `suite` extra), needed only for YAML configs
        except ImportError:
            raise ValueError(f"--config {path} is YAML, which needs pyyaml: pip install pyyaml (or \".[suite]\"), "
                             "or pass the config as JSON") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"--config {path}: not valid YAML ({one_line(err)})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path} holds a {type(values).__name__}, not a mapping of config fields")
    return values


def _sources(argv: Sequence[str] | None) -> tuple[str, list[tuple[str, dict[str, Any]]], argparse.Namespace]:
    """The profile and the --config layer, read before the full parser exists (its defaults depend on them)."""
    pre = _Parser(prog="python -m sarlib.train", add_help=False)
    _command_flags(pre)
    known, _ = pre.parse_known_args(argv)
    layers: list[tuple[str, dict[str, Any]]] = []
    profile = known.profile
    if known.config is not None:
        values = read_config_file(known.config)
        # the file's profile chooses the profile unless --profile does; either way the field names it
        # (a value that is not a profile's name is refused by resolve_config, never read as "no profile")
        saved = values.pop("profile", None)
        profile = profile if profile is not None else saved
        layers.append((f"config {known.config}", values))
    return DEFAULT_PROFILE if profile is None else profile, layers, known


def build_parser(defaults: TrainConfig | None = None, source: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The parser, one argument group per field group; each flag's help shows its value under `defaults`
    (the profile the command chose; the default profile's without it) and the source that set it."""
    if defaults is None:
        defaults, source = resolve_config(DEFAULT_PROFILE)
    parser = _Parser(
        prog="python -m sarlib.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Dataset layouts under --data-root:\n" + describe_layouts(),
    )
    _command_flags(parser)
    groups = {name: parser.add_argument_group(name, text) for name, text in GROUPS.items()}
    for field in dataclasses.fields(TrainConfig):
        if field.name == "profile":  # set by --profile
            continue
        meta, name = field.metadata, field.name
        kind, optional = field_types()[name]
        value = getattr(defaults, name)
        shown = json.dumps(value) if isinstance(value, dict) or value == "" else value
        origin = (source or {}).get(name, "default")
        # a short list of choices is the metavar; a long one is in the help text only
        short = meta["choices"] is not None and len(meta["choices"]) <= 6
        metavar = "{" + ",".join(map(str, meta["choices"])) + "}" if short else None
        valid = "; ".join(text for text in (
            meta["range"] and meta["range"].describe(kind is int),
            meta["choices"] and not short and "one of " + ", ".join(meta["choices"]),
            meta["none"] and f"none: {meta['none']}", meta["note"]) if text)
        valid = f" [{valid}]" if valid else ""
        help_text = f"{meta['help']}{valid} (default: {shown}{'' if origin == 'default' else f'; {origin}'})"
        group, option = groups[meta["group"]], "--" + flag(name)
        if kind is bool:
            # an explicit pair: argparse's BooleanOptionalAction would read `--no-skip` as a negation
            group.add_argument(option, dest=name, action="store_const", const=True, default=None,
                               help=help_text.replace(" (default:", f"; --no-{flag(name)} turns it off (default:"))
            group.add_argument("--no-" + flag(name), dest=name, action="store_const", const=False,
                               help=argparse.SUPPRESS)
        elif kind is dict:
            group.add_argument(option, type=json.loads, default=None, metavar="JSON", help=help_text)
        else:
            # choices are checked by TrainConfig.validate, whose message names the flag and the fix
            group.add_argument(option, type=_parse_optional(kind) if optional else kind, default=None,
                               metavar=metavar or kind.__name__.upper(), help=help_text)
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The resolved config of a command line, and its parsed arguments; `args.source` maps each field to
    the layer that set it ("default", "profile cpu", "config FILE", "command line")."""
    profile, layers, _ = _sources(argv)
    defaults, source = resolve_config(profile, layers)
    args = build_parser(defaults, source).parse_args(argv)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    cfg, args.source = resolve_config(profile, [*layers, (COMMAND_LINE, flags)])
    return cfg, args


def explain(cfg: TrainConfig, source: dict[str, str]) -> str:
    """One line per field: its name, its value (as JSON) and the layer that set it."""
    values = {k: json.dumps(v) for k, v in cfg.to_dict().items()}
    width, value_width = max(map(len, values)), min(max(map(len, values.values())), 40)
    return "\n".join(f"{k:<{width}}  {v:<{value_width}}  {source[k]}" for k, v in values.items())


def _summary(metrics: dict[str, Any], run_dir: Path) -> list[str]:
    """The end of a run on a few rounded lines: accuracy, the mechanism metrics, time, and its files."""
    epochs = metrics["epochs"]
    line = f"result: top-1 {metrics['top1_final']:.2f} final, {metrics['top1_best']:.2f} best"
    if metrics.get("best_epoch") is not None and metrics["best_epoch"] >= 0:
        line += f" (epoch {metrics['best_epoch'] + 1}/{epochs})"
    if metrics.get("train_top1_final") is not None:
        line += f"; train top-1 {metrics['train_top1_final']:.2f}"
    mechanism = [f"{key} {metrics[key]:.3f}" for key in ("entropy", "regions", "jaccard") if metrics.get(key) is not None]
    wall = metrics.get("wall_seconds", metrics.get("train_seconds", 0.0))
    minutes, seconds = divmod(round(wall), 60)
    speed = f", {metrics['images_per_s']:.0f} img/s" if metrics.get("images_per_s") else ""
    lines = [line + (f"; {', '.join(mechanism)}" if mechanism else ""),
             f"{epochs} epochs in {minutes} min {seconds:02d} s{speed}; its files:"]
    lines += [f"  {shown_path(run_dir / name)}" for name in (CONFIG, LOG, CHECKPOINT, METRICS_JSON)
              if (run_dir / name).is_file()]
    return lines


# the shell's status for a command stopped by Ctrl-C (128 + SIGINT)
INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, args = config_from_args(argv)
    except ValueError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    if args.explain and not args.print_config:
        print("error: --explain explains the printed config; add --print-config", file=sys.stderr)
        return 2
    if args.print_config:
        print(explain(cfg, args.source) if args.explain else json.dumps(cfg.to_dict(), indent=2))
        return 0
    # the lines below follow --progress like the step bar: a caller that turns progress off gets errors only
    say = (lambda line: print(line, flush=True)) if cfg.progress is not False else None
    trained: list[str] = []
    try:
        metrics = train(cfg, echo=None if say is None else lambda line: (trained.append(line), say(line)))
    except DatasetLayoutError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    # OSError: a full disk (DiskFullError), a missing or unreadable file; ValueError: bad values, corrupt
    # checkpoints, JSON files and images; RunDirectoryError: a busy or mismatched run directory
    except (ValueError, TypeError, OSError, NonFiniteLossError, RunDirectoryError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # every finished epoch is in the checkpoint (written atomically), so nothing of it is lost
        print(f"interrupted: {shown_path(cfg.output_dir)} keeps every finished epoch; run the same command "
              "again to resume", file=sys.stderr)
        return INTERRUPTED
    if say is not None:
        run_dir = Path(cfg.output_dir)
        if not trained:  # nothing was trained: the run directory already held this finished run
            say(f"{shown_path(run_dir)} holds this run, finished: its result (delete it or pick another "
                "--output-dir to train again)")
        for line in _summary(metrics, run_dir):
            say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
