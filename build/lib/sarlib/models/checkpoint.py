"""Reading checkpoints without running code, and fitting foreign weights to our models (as timm keeps
its checkpoint-key cleaning beside the models).

Every file is read with `torch.load(..., weights_only=True)`: tensors and plain values only, so a
crafted `.pth` cannot execute anything; one that needs other globals is refused, naming them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import torch
from timm.layers import resample_abs_pos_embed

from ..utils.text import one_line
from .vit import unwrap

__all__ = ["CheckpointError", "load_checkpoint", "load_init_weights"]


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file, what is wrong and the fix."""


def _unsafe_globals(path: Path, err: BaseException) -> list[str]:
    """The callables a pickle would need beyond tensors and plain values (empty for a damaged file)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a legacy (non-zip) pickle or a damaged file: torch's message names the global
        return re.findall(r"GLOBAL ([\w.]+)", str(err))


def load_checkpoint(path: Path, *, fix: str, needs: tuple[str, ...] = (), allow: Sequence[Any] = ()) -> dict[str, Any]:
    """torch.load a checkpoint into a dict with weights_only=True, so no file can run code; any unreadable
    or refused file raises CheckpointError naming it and `fix`. `allow`: the exact extra globals a caller
    trusts (a run's own checkpoint of an older format, see sarlib.train.checkpoint)."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); {fix}")
    try:
        with torch.serialization.safe_globals(list(allow)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports truncation, garbage and refused globals through many types
        unsafe = _unsafe_globals(path, err)
        if unsafe:
            raise CheckpointError(
                f"{path} needs {', '.join(unsafe[:3])} to load, which could run code, so it is refused (only "
                f"tensors and plain values are read); {fix}") from None
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({one_line(err, limit=100)}); {fix}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict; {fix}")
    missing = [k for k in needs if k not in obj]
    if missing:
        raise CheckpointError(f"{path} is not a sarlib training checkpoint (no {', '.join(missing)} entries); {fix}")
    return obj


# wrappers whose prefixes are stripped from fine-tuning checkpoints: DDP, torch.compile, Lightning-style
_PREFIXES = ("module.", "_orig_mod.", "model.")


_HEADS = ("head.", "head_dist.")


def _state_dict_of(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def _strip_prefixes(state: dict[str, Any], own: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    out, stripped = {}, set()
    for key, value in state.items():
        while key not in own and key.startswith(_PREFIXES):
            prefix = next(p for p in _PREFIXES if key.startswith(p))
            stripped.add(prefix)
            key = key[len(prefix):]
        out[key] = value
    return out, stripped


def load_init_weights(model: torch.nn.Module, path: str) -> str:
    """Fine-tuning start from a sarlib checkpoint or a state_dict; returns a one-line report.

    Wrapper prefixes are stripped; a classifier of another size is re-initialized and pos_embed is
    resampled to the model's grid. Every other weight of the model must be in the file with its shape,
    otherwise CheckpointError names the first mismatches.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"init checkpoint {path} does not exist; pass --init-checkpoint <file.pth>")
    fix = ("pass a checkpoint of the same architecture (a sarlib checkpoint.pth or a timm/DeiT state_dict); from a "
           "file you trust, load it yourself and save only its state_dict")
    own = model.state_dict()
    state, stripped = _strip_prefixes(_state_dict_of(load_checkpoint(source, fix=fix)), own)
    notes = [f"stripped {' and '.join(repr(p) for p in sorted(stripped))}"] if stripped else []
    heads = [k for k in own if k.startswith(_HEADS)]
    if heads and not any(k in state for k in heads):
        notes.append("no classifier in the file: initialized")
    elif any(k in state and state[k].shape != own[k].shape for k in heads):
        old = next(state[k].shape[0] for k in heads if k in state)
        notes.append(f"classifier re-initialized ({old} -> {own['head.weight'].shape[0]} classes)")
        state = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    if "pos_embed" in state and "pos_embed" in own and state["pos_embed"].shape != own["pos_embed"].shape:
        before = tuple(state["pos_embed"].shape[1:2])
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], new_size=list(unwrap(model).patch_embed.grid_size),
            num_prefix_tokens=0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens)
        notes.append(f"pos_embed resampled ({before[0]} -> {own['pos_embed'].shape[1]} tokens)")
    missing = [k for k in own if k not in state and not k.startswith(_HEADS)]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        what = f"{len(missing)} of the model's {len(own)} weights are missing (e.g. {', '.join(missing[:3])})" if missing \
            else f"{len(wrong)} weights have other shapes (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} in the file, " \
                 f"{tuple(own[wrong[0]].shape)} in the model)"
        raise CheckpointError(f"{path} does not fit {type(unwrap(model)).__name__}: {what}; {fix}, with the same "
                              "--model and --model-kwargs")
    unused = sorted(set(state) - set(own))
    if unused:
        notes.append(f"{len(unused)} unused entries ignored (e.g. {', '.join(unused[:2])})")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    loaded = sum(1 for k in own if k in state)
    return f"init checkpoint {path}: loaded {loaded} of {len(own)} weights" + "".join(f"; {n}" for n in notes)
