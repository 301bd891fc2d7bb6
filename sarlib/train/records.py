"""The two files a run writes for others to read, each declared once: the epoch record (one line of
`log.jsonl`) and `metrics.json`. The loop checks what it writes against these, and every reader checks
what it reads, so a file that was edited, cut or written by something else is refused in one line
before its numbers are used.

A field is (type, required, low, high): a required field must be present and not None; a number must be
finite and within [low, high] (None: unbounded).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EPOCH_RECORD", "METRICS", "METRICS_RENAMED", "check_record"]

Field = tuple[type, bool, float | None, float | None]
_PERCENT: tuple[float, float] = (0.0, 100.0)

# log.jsonl: one record per epoch; the evaluation fields appear on evaluated epochs only
EPOCH_RECORD: dict[str, Field] = {
    "epoch": (int, True, 0, None),
    "loss": (float, True, None, None),
    "ce": (float, True, None, None),
    "reg_term": (float, False, 0, None),  # the regularizer's mean over the epoch (None without one)
    "lambda": (float, True, 0, None),  # the weight this epoch trained with (lambda_schedule)
    "reg_skips": (int, True, 0, None),
    "lr": (float, True, 0, None),
    "epoch_seconds": (float, True, 0, None),
    "images_per_s": (float, True, 0, None),
    "top1": (float, False, *_PERCENT),
    "top5": (float, False, *_PERCENT),
    "train_top1": (float, False, *_PERCENT),
    "top1_ema": (float, False, *_PERCENT),
    "entropy": (float, False, 0, None),
    "regions": (float, False, 0, None),
    "jaccard": (float, False, 0, 1),
    "wall_seconds": (float, False, 0, None),
}

# metrics.json: a finished run's summary (sarlib.train.loop)
METRICS: dict[str, Field] = {
    "top1_best": (float, True, *_PERCENT),
    "best_epoch": (int, False, 0, None),
    "top1_final": (float, True, *_PERCENT),
    "top5_final": (float, False, *_PERCENT),
    "jaccard": (float, False, 0, 1),
    "top1_ema_final": (float, False, *_PERCENT),
    "train_top1_final": (float, False, *_PERCENT),
    "entropy": (float, False, 0, None),
    "regions": (float, False, 0, None),
    "reg_term": (float, False, 0, None),
    "jaccard_protocol": (str, False, None, None),
    "epochs": (int, True, 1, None),
    "reg_skips": (int, False, 0, None),
    "images_per_s": (float, False, 0, None),
    "train_seconds": (float, False, 0, None),
    "wall_seconds": (float, False, 0, None),
    "wall_seconds_this_process": (float, False, 0, None),
    "world_size": (int, False, 1, None),
    "device": (str, True, None, None),
    # what the run was computed with: versions, the lock's hash, the machine (sarlib.utils.environment)
    "environment": (dict, False, None, None),
    "complete": (bool, True, None, None),
}
# keys an earlier version wrote under another name: read under today's
METRICS_RENAMED = {"reg_final": "reg_term"}


def _typed(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def check_record(record: Any, schema: dict[str, Field]) -> str | None:
    """What is wrong with `record` under `schema`, in a few words, or None if nothing is."""
    if not isinstance(record, dict):
        return f"holds a JSON {type(record).__name__}, not an object"
    unknown = sorted(set(record) - set(schema))
    if unknown:
        return f"has keys a run never writes ({', '.join(unknown)})"
    for key, (kind, required, low, high) in schema.items():
        value = record.get(key)
        if value is None:
            if required:
                return f"lacks {key}"
            continue
        if not _typed(value, kind):
            return f"has {key} = {value!r}, not {'a number' if kind is float else 'a ' + kind.__name__}"
        if kind in (int, float):
            if not math.isfinite(value):
                return f"has {key} = {value!r}, not a finite number"
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
                return f"has {key} = {value!r}, outside {bounds}"
    return None
