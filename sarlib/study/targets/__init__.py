"""The registry of targets: one module per target in this package, each defining `TARGET`.

    from sarlib.study.targets import TARGETS
    TARGETS["table2"].arms_for("cpu", "fashion-mnist-2k")   # ['baseline', 'sar+no-skip', 'cnn']

A module added here (and its notebook, notebooks/<name>.ipynb) is a new target: `make reproduce-<name>`,
the README's tables and the documentation's lists pick it up (docs/development.md, "Adding a target").
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import CALIBRATION_CRITERION, HEADLINE, STUDIES, Claim, PlanRequest, Target, grid

__all__ = ["CALIBRATION_CRITERION", "HEADLINE", "STUDIES", "TARGETS", "Claim", "PlanRequest", "Target", "grid"]


def _discover() -> dict[str, Target]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        target = getattr(module, "TARGET", None)
        if not isinstance(target, Target):
            raise TypeError(f"{module.__name__} defines no TARGET = Target(...)")
        if target.name != info.name.replace("_", "-"):
            # the Makefile derives `reproduce-<name>` from the module's file name
            raise ValueError(f"{module.__name__} registers {target.name!r}; name the module after its target "
                             f"({target.name.replace('-', '_')}.py)")
        found.append(target)
    return {t.name: t for t in sorted(found, key=lambda t: (t.order, t.name))}


# every target, in the order of the README and `make help`
TARGETS: dict[str, Target] = _discover()

